"""Whisper's log-mel features in numpy, as Hugging Face's WhisperFeatureExtractor computes them.

80 mel bins (Slaney scale and norm, 0-8 kHz), a 400-sample (25 ms) periodic
Hann window, a 160-sample (10 ms) hop, a centred STFT with reflect padding,
power spectrum, log10 with a 1e-10 floor, the last frame dropped, the range
clipped to 8 (80 dB) below the maximum and scaled as `(x + 4) / 4`. With
`normalize` the waveform is first made zero-mean and unit-variance, as
`do_normalize=True` does. Smart Turn was trained on exactly these features.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
N_MELS = 80

Features = npt.NDArray[np.float32]


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    mel = 3.0 * hz / 200.0
    log_region = hz >= 1000.0
    mel[log_region] = 15.0 + np.log(hz[log_region] / 1000.0) * (27.0 / np.log(6.4))
    return mel


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    hz = 200.0 * mel / 3.0
    log_region = mel >= 15.0
    hz[log_region] = 1000.0 * np.exp(np.log(6.4) / 27.0 * (mel[log_region] - 15.0))
    return hz


@lru_cache(maxsize=4)
def mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = SAMPLE_RATE) -> npt.NDArray[np.float64]:
    """Triangular Slaney-normalised filters, shape (n_fft // 2 + 1, n_mels)."""
    fft_freqs = np.linspace(0.0, rate // 2, n_fft // 2 + 1)
    low, high = _hz_to_mel(np.array([0.0, rate / 2.0]))
    edges = _mel_to_hz(np.linspace(float(low), float(high), n_mels + 2))
    slopes = edges[None, :] - fft_freqs[:, None]
    widths = np.diff(edges)
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    filters *= 2.0 / (edges[2 : n_mels + 2] - edges[:n_mels])
    filters.setflags(write=False)
    return filters


@lru_cache(maxsize=1)
def _window() -> npt.NDArray[np.float64]:
    n = np.arange(N_FFT)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)  # periodic Hann


def normalize(audio: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Zero mean, unit variance (with the extractor's 1e-7 guard against silence)."""
    x = np.asarray(audio, dtype=np.float64)
    out: npt.NDArray[np.float64] = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    return out


def log_mel(audio: npt.ArrayLike, *, normalize_audio: bool = True) -> Features:
    """Log-mel features of 16 kHz mono audio: shape (80, len(audio) // 160)."""
    x = normalize(audio) if normalize_audio else np.asarray(audio, dtype=np.float64)
    if len(x) < N_FFT // 2 + 1:
        raise ValueError(f"need at least {N_FFT // 2 + 1} samples for the reflect padding, got {len(x)}")
    padded = np.pad(x, N_FFT // 2, mode="reflect")
    frames = 1 + (len(padded) - N_FFT) // HOP
    strides = (padded.strides[0] * HOP, padded.strides[0])
    framed = np.lib.stride_tricks.as_strided(padded, shape=(frames, N_FFT), strides=strides, writeable=False)
    power = np.abs(np.fft.rfft(framed * _window(), axis=1)) ** 2
    mel = np.maximum(1e-10, power @ mel_filters()).T
    spec = np.log10(mel)[:, :-1]
    spec = np.maximum(spec, spec.max() - 8.0)
    features: Features = ((spec + 4.0) / 4.0).astype(np.float32)
    return features
