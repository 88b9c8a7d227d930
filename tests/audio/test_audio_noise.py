"""Synthesised background noise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from openline.audio.noise import NOISE_KINDS, NoiseGenerator


def band_profile(x: np.ndarray, rate: int) -> np.ndarray:
    """Fraction of energy in octave-ish bands (a coarse spectral fingerprint)."""
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / rate)
    edges = [0, 125, 250, 500, 1000, 2000, 4000, 8000]
    bands = np.array(
        [power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in itertools.pairwise(edges)]
    )
    return bands / bands.sum()


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("level", [0.02, 0.1, 0.25])
def test_level_is_respected(kind: str, level: float) -> None:
    gen = NoiseGenerator(kind, 16000, level=level, seed=3)
    x = np.concatenate([gen.read(320) for _ in range(400)])  # 8 s in 20 ms frames
    assert x.dtype == np.float32
    assert np.abs(x).max() <= 1.0
    assert level * 0.6 <= float(np.sqrt(np.mean(x**2))) <= level * 1.4


def test_kinds_sound_different_and_are_deterministic() -> None:
    profiles = {}
    for kind in NOISE_KINDS:
        a = NoiseGenerator(kind, 16000, level=0.1, seed=5).read(16000 * 6)
        b = np.concatenate([NoiseGenerator(kind, 16000, level=0.1, seed=5).read(16000 * 6)])
        assert np.array_equal(a, b)
        profiles[kind] = band_profile(a, 16000)
    kinds = list(NOISE_KINDS)
    for i, k1 in enumerate(kinds):
        for k2 in kinds[i + 1 :]:
            distance = float(np.abs(profiles[k1] - profiles[k2]).sum())
            assert distance > 0.1, (k1, k2, distance)


def test_chunked_reads_equal_one_read_and_zero_level_is_silent() -> None:
    whole = NoiseGenerator("coffee-shop", 8000, level=0.1, seed=9).read(8000)
    gen = NoiseGenerator("coffee-shop", 8000, level=0.1, seed=9)
    chunks = np.concatenate([gen.read(n) for n in (1, 159, 160, 3000, 4680)])
    assert np.allclose(whole, chunks, atol=1e-6)
    silent = NoiseGenerator("office", 8000, level=0.0)
    assert not silent.read_int16(800).any()
    base = np.full(160, 1000, dtype=np.int16)
    assert not np.array_equal(NoiseGenerator("office", 8000, 0.1).mix_into(base), base)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        NoiseGenerator("jungle", 16000)
    with pytest.raises(ValueError):
        NoiseGenerator("office", 16000, level=0.3)
