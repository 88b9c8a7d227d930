"""Background noise synthesised by Openline (no audio files): office, call-center, coffee-shop.

Each kind is a mix of
- a *bed*: continuous coloured noise (FFT-shaped white noise, sqrt-Hann overlap-add so
  block boundaries are seamless) with slow amplitude drift, like room tone or HVAC;
- *babble*: band-limited noise with a speech-band spectrum, amplitude-modulated at
  syllable rate (3-6 Hz) and gated into phrases, several "voices" at once - it reads as
  distant murmur without containing any intelligible speech;
- sparse *events*: keyboard typing bursts, cup/spoon clinks, an espresso-steamer hiss.

Everything is a deterministic function of ``seed``, and the generator is stateful:
``read(n)`` continues exactly where the previous call stopped, so it can feed 20 ms frames.
The output RMS is calibrated to ``level`` (0.0-0.25 of full scale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from openline.audio.pcm import Int16Array

NoiseKind = Literal["office", "call-center", "coffee-shop"]
NOISE_KINDS: tuple[str, ...] = get_args(NoiseKind)
MAX_LEVEL = 0.25

FloatArray = npt.NDArray[np.float32]
Shape = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


def _bandpass(lo: float, hi: float) -> Shape:
    def shape(f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        f = np.maximum(f, 1.0)
        return 1.0 / (1.0 + (lo / f) ** 4) / (1.0 + (f / hi) ** 4)

    return shape


def _pink(hi: float) -> Shape:
    def shape(f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 1.0 / np.sqrt(np.maximum(f, 40.0)) / (1.0 + (f / hi) ** 2)

    return shape


def _speech(formants: tuple[float, ...]) -> Shape:
    """Speech-band carrier: 150-3800 Hz with soft formant bumps."""
    base = _bandpass(150.0, 3800.0)

    def shape(f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        bumps = sum(np.exp(-0.5 * ((f - fc) / (0.18 * fc)) ** 2) for fc in formants)
        return base(f) * (0.25 + bumps)

    return shape


class _ShapedNoise:
    """Endless coloured noise: white blocks shaped in the frequency domain, overlap-added."""

    def __init__(self, rng: np.random.Generator, rate: int, shape: Shape, hop: int = 1024):
        self._rng = rng
        self._hop = hop
        size = 2 * hop
        gains = shape(np.fft.rfftfreq(size, 1.0 / rate).astype(np.float64))
        # Normalise so the shaped noise has unit variance whatever the shape.
        self._gains = gains / np.sqrt(np.mean(gains**2))
        # sqrt of a periodic Hann: squares sum to 1 at 50% overlap -> constant variance.
        self._window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size))
        self._tail = np.zeros(hop)
        self._ready = np.zeros(0)

    def read(self, n: int) -> npt.NDArray[np.float64]:
        parts = [self._ready]
        have = self._ready.size
        while have < n:
            white = self._rng.standard_normal(2 * self._hop)
            block = np.fft.irfft(np.fft.rfft(white) * self._gains, 2 * self._hop) * self._window
            parts.append(self._tail + block[: self._hop])
            self._tail = block[self._hop :]
            have += self._hop
        out = np.concatenate(parts)
        self._ready = out[n:]
        return out[:n]


@dataclass(frozen=True)
class _Recipe:
    bed_shape: Shape
    bed_gain: float
    voices: int
    babble_gain: float
    typing_per_s: float
    clinks_per_s: float
    hiss_per_s: float


_RECIPES: dict[str, _Recipe] = {
    "office": _Recipe(_pink(2500.0), 1.0, 2, 0.25, 0.35, 0.0, 0.0),
    "call-center": _Recipe(_pink(5000.0), 0.35, 5, 1.0, 0.12, 0.0, 0.0),
    "coffee-shop": _Recipe(_pink(9000.0), 0.7, 7, 0.8, 0.0, 0.3, 0.03),
}


class NoiseGenerator:
    """Stateful background-noise source of one ``kind`` at ``sample_rate``.

    ``level`` is the target RMS as a fraction of full scale, 0.0-0.25 (0.25 is very loud,
    about -12 dBFS). ``read(n)`` returns float32 samples; ``mix_into`` adds the next
    samples to an int16 buffer.
    """

    def __init__(
        self, kind: str, sample_rate: int, level: float = 0.05, seed: int | None = 0
    ) -> None:
        if kind not in _RECIPES:
            raise ValueError(f"unknown noise kind {kind!r} (known: {', '.join(NOISE_KINDS)})")
        if not 0.0 <= level <= MAX_LEVEL:
            raise ValueError(f"noise level must be within 0.0-{MAX_LEVEL}, got {level}")
        self.kind = kind
        self.sample_rate = sample_rate
        self.level = level
        self._raw = _RawNoise(_RECIPES[kind], sample_rate, seed)
        # Calibrate the raw mix's RMS on a throwaway twin so ``level`` means what it says.
        probe = _RawNoise(_RECIPES[kind], sample_rate, None if seed is None else seed + 7919)
        self._scale = 1.0 / max(float(np.sqrt(np.mean(probe.read(sample_rate * 4) ** 2))), 1e-9)

    def read(self, n: int) -> FloatArray:
        """Next ``n`` samples as float32 in [-1, 1]."""
        if n <= 0:
            return np.zeros(0, dtype=np.float32)
        out = self._raw.read(n) * (self._scale * self.level)
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    def read_int16(self, n: int) -> Int16Array:
        """Next ``n`` samples as int16."""
        return np.clip(np.rint(self.read(n) * 32767.0), -32768, 32767).astype(np.int16)

    def mix_into(self, samples: npt.ArrayLike) -> Int16Array:
        """Add the next ``len(samples)`` noise samples to an int16 buffer (clipped)."""
        arr = np.asarray(samples, dtype=np.int16)
        mixed = arr.astype(np.float32) + self.read(arr.size) * 32767.0
        return np.clip(np.rint(mixed), -32768, 32767).astype(np.int16)


class _RawNoise:
    """Uncalibrated mix for one recipe; keeps absolute sample time for continuity."""

    def __init__(self, recipe: _Recipe, rate: int, seed: int | None) -> None:
        self._r = recipe
        self._rate = rate
        # One independent random stream per component, so the output does not depend on
        # how reads are chunked (each component draws in its own fixed order).
        bed_rng, c1_rng, c2_rng, self._rng, *event_rngs = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)
        )
        self._pos = 0
        self._bed = _ShapedNoise(bed_rng, rate, recipe.bed_shape)
        formant_sets = ((500.0, 1500.0, 2500.0), (700.0, 1900.0, 2900.0))
        self._carriers = [
            _ShapedNoise(rng, rate, _speech(fs))
            for rng, fs in zip((c1_rng, c2_rng), formant_sets, strict=True)
        ]
        self._voices = [
            (
                self._rng.uniform(3.0, 5.5),  # syllable rate, Hz
                self._rng.uniform(0.08, 0.3),  # phrase rate, Hz
                self._rng.uniform(0, 2 * np.pi, 3),  # phases
                self._rng.uniform(0.4, 1.0),  # loudness (distance)
            )
            for _ in range(recipe.voices)
        ]
        self._drift = self._rng.uniform(0, 2 * np.pi, 2)
        self._events: list[tuple[int, npt.NDArray[np.float64]]] = []
        self._event_rngs = dict(zip(("typing", "clink", "hiss"), event_rngs, strict=True))
        self._next: dict[str, float] = {}
        for name, rate_per_s in self._event_rates().items():
            self._next[name] = self._gap(name, rate_per_s)

    def _event_rates(self) -> dict[str, float]:
        r = self._r
        rates = {"typing": r.typing_per_s, "clink": r.clinks_per_s, "hiss": r.hiss_per_s}
        return {k: v for k, v in rates.items() if v > 0}

    def _gap(self, name: str, per_s: float) -> float:
        return float(self._event_rngs[name].exponential(1.0 / per_s)) * self._rate

    def read(self, n: int) -> npt.NDArray[np.float64]:
        t = (self._pos + np.arange(n)) / self._rate
        drift = 1.0 + 0.15 * np.sin(2 * np.pi * 0.07 * t + self._drift[0])
        drift += 0.1 * np.sin(2 * np.pi * 0.23 * t + self._drift[1])
        out = self._r.bed_gain * drift * self._bed.read(n)
        if self._voices:
            out += self._r.babble_gain * self._babble(t, n)
        out += self._render_events(n)
        self._pos += n
        return out

    def _babble(self, t: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.float64]:
        envs = [np.zeros(n), np.zeros(n)]
        for i, (syl, phrase, ph, loud) in enumerate(self._voices):
            wobble = 0.8 * np.sin(2 * np.pi * 0.3 * t + ph[2])
            syllables = (0.5 + 0.5 * np.sin(2 * np.pi * syl * t + ph[0] + wobble)) ** 2
            gate = np.clip((np.sin(2 * np.pi * phrase * t + ph[1]) + 0.3) * 3.0, 0.0, 1.0)
            envs[i % 2] += loud * syllables * gate
        total = sum(env * c.read(n) for env, c in zip(envs, self._carriers, strict=True))
        return np.asarray(total) / np.sqrt(max(len(self._voices), 1) / 2.0)

    def _render_events(self, n: int) -> npt.NDArray[np.float64]:
        end = self._pos + n
        rates = self._event_rates()
        for name, at in list(self._next.items()):
            while at < end:
                self._events.append((int(at), self._make_event(name)))
                at += self._gap(name, rates[name])
            self._next[name] = at
        out = np.zeros(n)
        alive: list[tuple[int, npt.NDArray[np.float64]]] = []
        for start, wave in self._events:
            lo, hi = max(start, self._pos), min(start + wave.size, end)
            if hi > lo:
                out[lo - self._pos : hi - self._pos] += wave[lo - start : hi - start]
            if start + wave.size > end:
                alive.append((start, wave))
        self._events = alive
        return out

    def _make_event(self, name: str) -> npt.NDArray[np.float64]:
        rng = self._event_rngs[name]
        if name == "typing":
            return _typing_burst(rng, self._rate)
        if name == "clink":
            return _clink(rng, self._rate)
        return _hiss(rng, self._rate)


def _click(rng: np.random.Generator, rate: int) -> npt.NDArray[np.float64]:
    n = max(int(0.012 * rate), 8)
    t = np.arange(n) / rate
    noise = np.diff(rng.standard_normal(n + 1))  # differentiated noise = bright click
    thump = np.sin(2 * np.pi * rng.uniform(150, 300) * t) * 0.6
    return (noise + thump) * np.exp(-t / 0.0025)


def _typing_burst(rng: np.random.Generator, rate: int) -> npt.NDArray[np.float64]:
    keys = int(rng.integers(3, 16))
    offsets = np.cumsum(rng.uniform(0.08, 0.25, keys)) * rate
    wave = np.zeros(int(offsets[-1]) + int(0.02 * rate))
    for off in offsets:
        click = _click(rng, rate) * rng.uniform(1.0, 2.5)
        start = int(off)
        wave[start : start + click.size] += click[: wave.size - start]
    return wave


def _clink(rng: np.random.Generator, rate: int) -> npt.NDArray[np.float64]:
    n = int(rng.uniform(0.15, 0.35) * rate)
    t = np.arange(n) / rate
    base = rng.uniform(2200, 3400)
    wave = np.zeros(n)
    for ratio, amp in ((1.0, 1.0), (1.73, 0.6), (2.61, 0.35)):
        freq = base * ratio * rng.uniform(0.98, 1.02)
        if freq < 0.45 * rate:  # keep partials below Nyquist (8 kHz telephony)
            wave += amp * np.sin(2 * np.pi * freq * t) * np.exp(-t / rng.uniform(0.04, 0.09))
    return wave * rng.uniform(1.5, 3.0)


def _hiss(rng: np.random.Generator, rate: int) -> npt.NDArray[np.float64]:
    n = int(rng.uniform(2.0, 4.0) * rate)
    hiss = np.diff(rng.standard_normal(n + 1)) * 0.5
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.3 * rate))
    return hiss * fade * 0.8
