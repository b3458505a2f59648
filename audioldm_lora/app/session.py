"""The app's model and what one request does, without Gradio: check the settings, mix the adapters at the request's
weights, sample the adapted clip and the base clip (adapters off, same seed), and write both with their mel images
and the adapted clip's sidecar.

Sampling is :func:`audioldm_lora.commands.generate.sample_clips`, what ``audioldm-lora generate`` runs, and the sidecar
is :func:`audioldm_lora.commands.generate.sidecar_settings` plus the clip's prompt and seed, so a clip from the app
and the same clip from ``generate`` are one and the same (a test checks it).
"""

from __future__ import annotations

import math
import re
import threading
from contextlib import nullcontext
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audioldm_lora.tool_convention import ToolInputError
from lightning_modules.sampling_settings import SCHEDULER_NAMES

if TYPE_CHECKING:
    from lightning_modules.adapter_files import AdapterFile
    from lightning_modules.backbone import Backbone

MAX_STEPS = 1000
"""The most sampler steps a request may ask for (DDPM's whole schedule; more is a typo, and would hold the queue)."""


class AppInputError(ToolInputError):
    """A request the app refuses (a bad setting, an unknown adapter); the message says which and what to do."""


@dataclass(frozen=True)
class AppRequest:
    """One Generate: the prompt, the sampling settings and the weight of each adapter (0: off)."""

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 50
    guidance: float = 2.5
    scheduler: str = "ddim"
    duration: float = 5.12
    weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClipPair:
    """The files of one Generate: adapted and base clip, their mel images and the adapted clip's sidecar."""

    adapted: Path
    base: Path
    adapted_mel: Path
    base_mel: Path
    sidecar: Path


def weight_parameter(name: str) -> str:
    """The API parameter of adapter ``name``'s weight: ``weight_<name>`` with '-' spelt '_' (a Python name)."""
    return "weight_" + re.sub(r"\W", "_", name)


class AppSession:
    """The base model with its adapters loaded once, and the pairs it generates into ``out_dir``."""

    def __init__(self, backbone: "Backbone", base: str, adapters: list["AdapterFile"], out_dir: Path) -> None:
        """
        Args:
            backbone: the base model with ``adapters`` loaded (:func:`audioldm_lora.adapter_inputs.load_model`).
            base: the base model's hub id or folder, as the sidecar records it.
            adapters: the loaded adapters; each one's ``spec.weight`` is its slider's starting weight.
            out_dir: where each request's files go (one folder per request).
        """
        parameters = [weight_parameter(a.spec.name) for a in adapters]
        if len(set(parameters)) != len(parameters):
            raise AppInputError(f"Adapter names {[a.spec.name for a in adapters]} give the same API parameter twice "
                                "('-' and '_' are one); name them apart with --adapter NAME=PATH=WEIGHT.")
        self.backbone = backbone
        self.base = base
        self.adapters = adapters
        self.out_dir = Path(out_dir)
        self._lock = threading.Lock()  # one request at a time on the model, whatever the web server does
        self._count = 0

    @property
    def adapter_names(self) -> list[str]:
        return [a.spec.name for a in self.adapters]

    def check(self, request: AppRequest) -> None:
        """Refuse a request that cannot be sampled, naming the setting and its allowed values.

        Raises:
            AppInputError: an empty prompt, steps out of 1..MAX_STEPS, a non-finite guidance, an unknown scheduler,
                a duration the model cannot make, an unknown adapter or a non-finite weight.
        """
        if not isinstance(request.prompt, str) or not request.prompt.strip():
            raise AppInputError("The prompt is empty; describe the music to generate.")
        if not 1 <= request.steps <= MAX_STEPS:
            raise AppInputError(f"Steps must be between 1 and {MAX_STEPS}, got {request.steps}.")
        if not math.isfinite(request.guidance):
            raise AppInputError(f"Guidance must be a finite number, got {request.guidance}.")
        if request.scheduler not in SCHEDULER_NAMES:
            raise AppInputError(f"Unknown scheduler {request.scheduler!r}; choose one of {sorted(SCHEDULER_NAMES)}.")
        if not (math.isfinite(request.duration) and request.duration > 0):
            raise AppInputError(f"Duration must be a positive number of seconds, got {request.duration}.")
        try:
            self.backbone.check_duration(request.duration)
        except ValueError as error:
            raise AppInputError(f"Duration: {error}") from error
        unknown = sorted(set(request.weights) - set(self.adapter_names))
        if unknown:
            raise AppInputError(f"Unknown adapter(s) {unknown}; this app holds {self.adapter_names}.")
        for name, weight in request.weights.items():
            if not math.isfinite(weight):
                raise AppInputError(f"The weight of adapter {name!r} must be a finite number, got {weight}.")

    def _mix(self, weights: dict[str, float]) -> None:
        """Every site's adapters at the request's weights (an adapter the request leaves out keeps its start)."""
        from lightning_modules.peft_files import mix_adapters

        for site, module in self.backbone.adapter_sites().items():
            on_site = [a for a in self.adapters if site in a.sites]
            if on_site:
                mix_adapters(module, [a.spec.name for a in on_site],
                             [float(weights.get(a.spec.name, a.spec.weight)) for a in on_site])

    def generate(self, request: AppRequest, progress: Callable[[float, str], None] | None = None) -> ClipPair:
        """Sample the adapted and the base clip of ``request`` and write them, with their mel images and the
        sidecar, into a new folder under ``out_dir``."""
        from datamodules.audio import save_audio
        from datamodules.clip_folder import clip_stem, write_sidecar
        from audioldm_lora.commands.generate import sample_clips, sidecar_settings
        from lightning_modules.adapter_sites import adapters_disabled

        self.check(request)
        weights = {a.spec.name: float(request.weights.get(a.spec.name, a.spec.weight)) for a in self.adapters}
        with self._lock:
            self._count += 1
            folder = self.out_dir / f"{self._count:05d}"
            folder.mkdir(parents=True, exist_ok=True)
            self._mix(weights)
            clips = {}
            for arm, offset in (("adapted", 0.0), ("base", 0.5)):
                def step(index: int, offset: float = offset, arm: str = arm) -> None:
                    if progress is not None:
                        progress(offset + 0.5 * (index + 1) / request.steps, f"{arm} clip, step {index + 1}")

                with adapters_disabled(self.backbone) if arm == "base" else nullcontext():
                    clips[arm] = sample_clips(self.backbone, [request.prompt], [request.seed], request.duration,
                                              request.steps, request.guidance, request.scheduler,
                                              request.negative_prompt or None, step)[0]
        stem = clip_stem(0, request.prompt, request.seed)
        paths = {arm: folder / f"{stem}_{arm}.wav" for arm in clips}
        rate = self.backbone.sampling_rate
        for arm, waveform in clips.items():
            save_audio(paths[arm], waveform, rate)
        adapters = [{**a.spec.describe(), "weight": weights[a.spec.name]} for a in self.adapters]
        settings = sidecar_settings(self.backbone, self.base, adapters, request.negative_prompt or None,
                                    request.steps, request.guidance, request.scheduler, request.duration)
        sidecar = write_sidecar(paths["adapted"], {"index": 0, "prompt": request.prompt, "seed": request.seed,
                                                   "file": paths["adapted"].name, **settings})
        mels = _mel_images(clips, folder, stem, request.prompt)
        return ClipPair(paths["adapted"], paths["base"], mels["adapted"], mels["base"], sidecar)


def _mel_images(clips: dict[str, Any], folder: Path, stem: str, prompt: str) -> dict[str, Path]:
    """Each clip's log-mel as a PNG, both on one colour scale so that they compare (the A/B callback's figures)."""
    import matplotlib.pyplot as plt

    from callbacks.media import save_figure
    from callbacks.mel_figure import mel_figure, mel_limits

    mels, vmin, vmax = mel_limits(list(clips.values()))
    paths = {}
    for (arm, _), mel in zip(clips.items(), mels):
        figure = mel_figure(mel, f"{arm}: {prompt}", vmin, vmax)
        try:
            paths[arm] = save_figure(figure, folder / f"{stem}_{arm}_mel.png")
        finally:
            plt.close(figure)
    return paths
