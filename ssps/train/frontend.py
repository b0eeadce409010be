"""Log-mel frontend on raw waveforms, exportable to ONNX.

Paper section IV-A: 40 log-mel bins, 25 ms Hamming window, 10 ms hop, 16 kHz, instance
normalisation. The window and the mel filterbank are buffers computed from the parameters
(not weights), so ``torch.onnx.export`` turns the module into an ONNX ``STFT`` + ``MatMul``
and inference needs no feature code of its own.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class FrontendConfig:
    sample_rate: int = 16000
    n_mels: int = 40
    n_fft: int = 512
    win_length: int = 400  # 25 ms at 16 kHz
    hop_length: int = 160  # 10 ms at 16 kHz
    f_min: float = 0.0
    f_max: float | None = None  # None: sample_rate / 2
    log_offset: float = 1e-6
    norm_eps: float = 1e-5

    def to_dict(self) -> dict:
        return {"type": "logmel", **asdict(self)}


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale (the torchaudio default)."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, no area normalisation: [n_freqs, n_mels]."""
    fft_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    mel_points = torch.linspace(
        hz_to_mel(torch.tensor(f_min, dtype=torch.float64)),
        hz_to_mel(torch.tensor(f_max, dtype=torch.float64)),
        n_mels + 2,
        dtype=torch.float64,
    )
    hz_points = mel_to_hz(mel_points)
    lower, centre, upper = hz_points[:-2], hz_points[1:-1], hz_points[2:]
    rising = (fft_freqs[:, None] - lower) / (centre - lower)
    falling = (upper - fft_freqs[:, None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


class LogMelFrontend(nn.Module):
    """waveform [batch, samples] -> normalised log-mel features [batch, n_mels, frames]."""

    def __init__(self, config: FrontendConfig | None = None):
        super().__init__()
        self.config = config = config or FrontendConfig()
        f_max = config.f_max if config.f_max is not None else config.sample_rate / 2
        # periodic=True is what torchaudio's MelSpectrogram uses (torch.hamming_window default).
        window = torch.hamming_window(config.win_length, periodic=True)
        filters = mel_filterbank(config.n_fft // 2 + 1, config.f_min, f_max, config.n_mels, config.sample_rate)
        # Not persistent: derived from the config, so checkpoints hold only learned weights.
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel_filters", filters, persistent=False)

    @property
    def frame_rate(self) -> float:
        return self.config.sample_rate / self.config.hop_length

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        # Features are computed in float32 even under bf16 autocast: log and variance of
        # power spectra lose too much in 8 mantissa bits.
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            spectrum = torch.stft(
                waveform.float(),
                n_fft=self.config.n_fft,
                hop_length=self.config.hop_length,
                win_length=self.config.win_length,
                window=self.window,
                center=True,
                pad_mode="reflect",
                return_complex=True,
            )
            power = torch.view_as_real(spectrum).pow(2).sum(-1)  # [batch, freqs, frames]
            mel = torch.matmul(power.transpose(1, 2), self.mel_filters).transpose(1, 2)
            log_mel = torch.log(mel + self.config.log_offset)
            return instance_norm(log_mel, self.config.norm_eps)


def instance_norm(features: torch.Tensor, eps: float) -> torch.Tensor:
    """Normalise each mel bin of each utterance to zero mean and unit variance over time."""
    mean = features.mean(dim=-1, keepdim=True)
    var = features.var(dim=-1, keepdim=True, unbiased=False)
    return (features - mean) / torch.sqrt(var + eps)


def frames_for(samples: int, hop_length: int) -> int:
    """Number of STFT frames torch.stft(center=True) gives for a signal length."""
    return 1 + math.floor(samples / hop_length)
