"""The project's sampler against diffusers' AudioLDMPipeline, the reference it must match."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_modules.backbone import load_backbone
from lightning_modules.sampler import SCHEDULERS, generate, seeded_generators

PROMPTS = ["boom bap hip hop music", "gugak music, plucked pentatonic melody"]


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path):
    from diffusers import AudioLDMPipeline

    pipe = AudioLDMPipeline.from_pretrained(tiny_model_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize(("guidance", "negative"), [(2.5, None), (1.0, None), (3.0, "noise")])
def test_sampler_equals_audioldm_pipeline(pipeline, tiny_model_dir: Path, guidance: float, negative: str | None) -> None:
    parts = load_backbone(str(tiny_model_dir))
    reference = pipeline(
        PROMPTS,
        num_inference_steps=6,
        audio_length_in_s=1.28,
        guidance_scale=guidance,
        negative_prompt=None if negative is None else [negative] * 2,
        generator=torch.Generator().manual_seed(7),
    ).audios
    ours = generate(
        parts, PROMPTS, 1.28, num_inference_steps=6, guidance_scale=guidance, negative_prompt=negative,
        generator=torch.Generator().manual_seed(7),
    )
    reference = torch.as_tensor(reference)
    assert ours.shape == reference.shape == (2, 20480)
    assert reference.abs().max() > 1e-2  # audible output, so the tolerance below means something
    assert (ours - reference).abs().max() < 1e-5
    other_seed = generate(parts, PROMPTS, 1.28, num_inference_steps=6, guidance_scale=guidance,
                          negative_prompt=negative, generator=torch.Generator().manual_seed(8))
    assert (other_seed - reference).abs().max() > 1e-3


def test_per_clip_seeds_make_clips_independent_of_their_batch(tiny_model_dir: Path) -> None:
    parts = load_backbone(str(tiny_model_dir))
    both = generate(parts, PROMPTS, 1.28, num_inference_steps=4, generator=seeded_generators([1, 2]))
    second = generate(parts, PROMPTS[1:], 1.28, num_inference_steps=4, generator=seeded_generators([2]))
    torch.testing.assert_close(both[1:], second, atol=1e-5, rtol=0)


def test_the_light_scheduler_list_names_every_scheduler() -> None:
    from lightning_modules.sampling_settings import SCHEDULER_NAMES, SamplingSettings

    assert tuple(SCHEDULERS) == SCHEDULER_NAMES
    with pytest.raises(ValueError, match="Unknown sampler scheduler 'magic'"):
        SamplingSettings(scheduler="magic")
    with pytest.raises(ValueError, match="num_inference_steps must be at least 1"):
        SamplingSettings().with_overrides(num_inference_steps=0)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_named_scheduler_runs(tiny_model_dir: Path, name: str) -> None:
    parts = load_backbone(str(tiny_model_dir))
    audio = generate(parts, PROMPTS[:1], 0.64, num_inference_steps=4, scheduler=name, generator=seeded_generators([0]))
    assert audio.shape == (1, 10240)
    assert torch.isfinite(audio).all()


def test_bad_sampler_arguments(tiny_model_dir: Path) -> None:
    parts = load_backbone(str(tiny_model_dir))
    with pytest.raises(ValueError, match="Unknown sampler scheduler 'magic'"):
        generate(parts, PROMPTS, 1.0, scheduler="magic")
    with pytest.raises(ValueError, match="shorter than the model's minimum"):
        generate(parts, PROMPTS, 0.01)
    with pytest.raises(ValueError, match="at least one prompt"):
        generate(parts, [], 1.0)
