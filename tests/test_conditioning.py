"""The conditioning's shape contract: variable-length masked streams are padded and aligned when two conditionings
meet (caption dropout, guidance), and a UNet with masked cross-attention computes the same output as unpadded."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel

from lightning_modules.backbone import align_conditioning, concat_conditioning, select_conditioning

STREAMS = {"encoder_hidden_states": "encoder_attention_mask"}
WIDTH = 16


def masked_stream(batch: int, length: int, seed: int) -> dict[str, torch.Tensor]:
    """A text stream [B, L, D] with its all-ones mask [B, L] and a fixed-shape tensor beside them."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "encoder_hidden_states": torch.randn(batch, length, WIDTH, generator=generator),
        "encoder_attention_mask": torch.ones(batch, length, dtype=torch.long),
        "pooled": torch.randn(batch, 4, generator=generator),
    }


@pytest.fixture(scope="module")
def unet() -> UNet2DConditionModel:
    """A tiny UNet whose cross-attention reads a masked text stream (as AudioLDM2's does)."""
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=WIDTH, attention_head_dim=4, norm_num_groups=8,
    ).eval()


def run_unet(unet: UNet2DConditionModel, cond: dict[str, torch.Tensor], latents: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return unet(latents, torch.tensor(10), encoder_hidden_states=cond["encoder_hidden_states"],
                    encoder_attention_mask=cond["encoder_attention_mask"]).sample


def test_guidance_halves_of_other_lengths_give_each_halfs_own_output(unet: UNet2DConditionModel) -> None:
    uncond, cond = masked_stream(2, 3, seed=1), masked_stream(2, 7, seed=2)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    both = concat_conditioning(uncond, cond, STREAMS)
    assert both["encoder_hidden_states"].shape == (4, 7, WIDTH) and both["pooled"].shape == (4, 4)
    assert both["encoder_attention_mask"][:2].tolist() == [[1, 1, 1, 0, 0, 0, 0]] * 2
    together = run_unet(unet, both, torch.cat([latents, latents]))
    torch.testing.assert_close(together[:2], run_unet(unet, uncond, latents), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(together[2:], run_unet(unet, cond, latents), atol=1e-5, rtol=1e-4)
    # Without the mask the padding would change the output: the mask is what makes padding safe.
    unmasked = {**both, "encoder_attention_mask": torch.ones_like(both["encoder_attention_mask"])}
    assert (run_unet(unet, unmasked, torch.cat([latents, latents]))[:2] - together[:2]).abs().max() > 1e-4


def test_caption_dropout_selects_rows_of_a_shorter_unconditional_stream(unet: UNet2DConditionModel) -> None:
    cond, empty = masked_stream(3, 6, seed=4), masked_stream(1, 2, seed=5)
    drop = torch.tensor([False, True, False])
    mixed = select_conditioning(cond, drop, empty, STREAMS)
    assert mixed["encoder_hidden_states"].shape == (3, 6, WIDTH)
    assert mixed["encoder_attention_mask"].tolist() == [[1] * 6, [1, 1, 0, 0, 0, 0], [1] * 6]
    torch.testing.assert_close(mixed["pooled"][1], empty["pooled"][0])
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    out = run_unet(unet, mixed, latents)
    torch.testing.assert_close(out[1:2], run_unet(unet, empty, latents[1:2]), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out[0:1], run_unet(unet, {k: v[:1] for k, v in cond.items()}, latents[:1]),
                               atol=1e-5, rtol=1e-4)


def test_an_undeclared_shape_difference_is_refused() -> None:
    first, second = masked_stream(1, 3, seed=7), masked_stream(1, 5, seed=8)
    with pytest.raises(ValueError, match=r"'encoder_hidden_states' has per-row shape \(3, 16\) in one batch and "
                                         r"\(5, 16\) in the other; .*declared with its mask"):
        align_conditioning(first, second)
    with pytest.raises(ValueError, match="other keys"):
        align_conditioning(first, {"pooled": second["pooled"]}, STREAMS)
    fixed = {"class_labels": torch.ones(2, 8)}  # AudioLDM's conditioning passes through untouched
    assert align_conditioning(fixed, fixed)[0]["class_labels"] is fixed["class_labels"]
