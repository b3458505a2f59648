"""How clips are sampled, as one record (no torch, no diffusers: tools parse and check it before loading a model).

``predict``, the A/B and evaluation callbacks, prior preservation, ``generate`` and the demo's report all sample
through :mod:`lightning_modules.sampler` with a :class:`SamplingSettings`; the LightningModule holds the run's
defaults (``AudioLDMLoRA.sampling``) and a callback overrides some fields with :meth:`SamplingSettings.with_overrides`
instead of reading module hyper-parameters by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from lightning_modules.errors import SettingError

SCHEDULER_NAMES: tuple[str, ...] = ("ddim", "ddpm", "pndm", "lms", "euler", "euler_a", "heun", "dpmsolver++", "unipc")
"""The sampler schedulers by name (:data:`lightning_modules.sampler.SCHEDULERS` builds them)."""


@dataclass(frozen=True)
class SamplingSettings:
    """Steps, guidance, scheduler and seconds per clip."""

    num_inference_steps: int = 50
    guidance_scale: float = 2.5
    scheduler: str = "ddim"
    duration: float = 10.24

    def __post_init__(self) -> None:
        if self.num_inference_steps < 1:
            raise SettingError(f"num_inference_steps must be at least 1, got {self.num_inference_steps}.")
        if not math.isfinite(self.guidance_scale):
            raise SettingError(f"guidance_scale must be a finite number, got {self.guidance_scale}.")
        if self.scheduler not in SCHEDULER_NAMES:
            raise SettingError(
                f"Unknown sampler scheduler {self.scheduler!r}; choose one of {sorted(SCHEDULER_NAMES)}."
            )

    def with_overrides(self, **overrides: object) -> "SamplingSettings":
        """A copy with every override that is not ``None``."""
        return replace(self, **{key: value for key, value in overrides.items() if value is not None})
