"""Log-mel figures: a labelled side-by-side A/B pair on one colour scale, and one clip's (the app's, which puts its
two clips on one scale by passing both clips' limits)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from datamodules.features import FRAMES_PER_SECOND, log_mel_spectrogram, normalize_waveform  # noqa: E402


def mel_limits(waveforms: list[torch.Tensor]) -> tuple[list[torch.Tensor], float, float]:
    """The log-mels ``[bins, frames]`` of 16 kHz waveforms and the smallest and largest value over all of them."""
    mels = [log_mel_spectrogram(normalize_waveform(w.float().cpu())).T for w in waveforms]
    return mels, min(float(m.min()) for m in mels), max(float(m.max()) for m in mels)


def mel_figure(mel: torch.Tensor, title: str, vmin: float, vmax: float):
    """One log-mel ``[bins, frames]`` (from :func:`mel_limits`) drawn between ``vmin`` and ``vmax``."""
    figure, axis = plt.subplots(figsize=(6, 3), constrained_layout=True)
    seconds = mel.shape[1] / FRAMES_PER_SECOND
    image = axis.imshow(mel.numpy(), origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma",
                        extent=(0.0, seconds, 0, mel.shape[0]))
    axis.set_title(title[:70])
    axis.set_xlabel("time (s)")
    axis.set_ylabel("mel bin")
    figure.colorbar(image, ax=axis, label="log mel magnitude")
    return figure


def ab_mel_figure(a: torch.Tensor, b: torch.Tensor, title: str, labels: tuple[str, str] = ("A: LoRA", "B: base")):
    """Two log-mels (of 16 kHz waveforms) with shared vmin/vmax so colours compare across A and B."""
    mels, vmin, vmax = mel_limits([a, b])
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True, constrained_layout=True)
    image = None
    for axis, mel, label in zip(axes, mels, labels):
        seconds = mel.shape[1] / FRAMES_PER_SECOND
        image = axis.imshow(mel.numpy(), origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma",
                            extent=(0.0, seconds, 0, mel.shape[0]))
        axis.set_title(label)
        axis.set_xlabel("time (s)")
    axes[0].set_ylabel("mel bin")
    figure.colorbar(image, ax=axes, label="log mel magnitude")
    figure.suptitle(title[:90])
    return figure
