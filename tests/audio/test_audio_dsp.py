"""Resampling, WAV, mixing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openline.audio.mix import apply_gain, dbfs, mix, rms, to_stereo
from openline.audio.resample import StreamingResampler, resample
from openline.audio.wav import read_wav, read_wav_bytes, write_wav, write_wav_bytes


def sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    x = samples.astype(np.float64) * np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize(
    ("src", "dst"), [(8000, 16000), (16000, 8000), (22050, 16000), (44100, 24000)]
)
def test_resample_preserves_frequency_and_length(src: int, dst: int) -> None:
    out = resample(sine(440.0, src, 1.0), src, dst)
    assert out.dtype == np.float32
    assert abs(out.size - dst) <= 2
    assert peak_hz(out, dst) == pytest.approx(440.0, abs=2.0)
    assert rms(out) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_streaming_resampler_matches_one_shot() -> None:
    src = (sine(1000.0, 8000, 1.0) * 32767).astype(np.int16)
    stream = StreamingResampler(8000, 16000, dtype=np.int16)
    pieces = [stream.process(src[i : i + 160]) for i in range(0, src.size, 160)]
    pieces.append(stream.flush())
    out = np.concatenate(pieces)
    assert out.dtype == np.int16
    assert abs(out.size - 16000) <= 2
    assert peak_hz(out, 16000) == pytest.approx(1000.0, abs=2.0)
    # Chunking must not add clicks: compare against the whole-buffer conversion.
    whole = resample(src, 8000, 16000)
    n = min(out.size, whole.size)
    diff = np.abs(out[:n].astype(int) - whole[:n].astype(int))
    assert np.percentile(diff, 99) < 200


def test_streaming_same_rate_is_passthrough() -> None:
    stream = StreamingResampler(16000, 16000)
    chunk = np.arange(320, dtype=np.int16)
    assert np.array_equal(stream.process(chunk), chunk)
    assert stream.flush().size == 0


def test_wav_round_trip_mono_and_stereo(tmp_path: Path) -> None:
    mono = (sine(300, 16000, 0.2) * 20000).astype(np.int16)
    back, rate = read_wav_bytes(write_wav_bytes(mono, 16000))
    assert rate == 16000 and np.array_equal(back, mono)
    stereo = to_stereo(mono, mono[::2])
    write_wav(tmp_path / "s.wav", stereo, 8000)
    back2, rate2 = read_wav(tmp_path / "s.wav")
    assert rate2 == 8000 and back2.shape == (mono.size, 2) and np.array_equal(back2, stereo)
    with pytest.raises(ValueError):
        read_wav_bytes(b"not a wav file at all")
    with pytest.raises(TypeError):
        write_wav_bytes(np.zeros(4, dtype=np.float32), 8000)


def test_mix_gain_clip_and_stereo_layout() -> None:
    a = np.full(4, 20000, dtype=np.int16)
    b = np.full(2, 20000, dtype=np.int16)
    mixed = mix(a, b)
    assert mixed.tolist() == [32767, 32767, 20000, 20000]  # summed, clipped, padded
    assert mix(a, b, gains=(0.5, 0.0)).tolist() == [10000] * 4
    assert apply_gain(a, 0.5).tolist() == [10000] * 4
    stereo = to_stereo(np.array([1, 2, 3], dtype=np.int16), np.array([9], dtype=np.int16))
    assert stereo.tolist() == [[1, 9], [2, 0], [3, 0]]  # caller left, assistant right
    assert dbfs(np.zeros(10, dtype=np.int16)) == float("-inf")
    assert dbfs(np.full(100, 16384, dtype=np.int16)) == pytest.approx(-6.02, abs=0.01)
