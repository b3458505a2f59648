"""LoRA target presets of AudioLDM2's adapter sites, chosen by what each attention layer reads.

docs/model-facts.md, 'AudioLDM2 cross-attention layout': every transformer slot of the UNet holds one transformer
per entry of ``cross_attention_dim``; the first is self-attention only (its ``attn2`` attends to the latent too), the
others cross-attend to the GPT2 stream or to the T5 stream. What a transformer reads is read off its ``attn2``: the
key projection's input width is the GPT2 width (768), the T5 width (1024), or the latent's own width (self-attention).
So the presets hold for every AudioLDM2 checkpoint whatever its block layout (audioldm2, -large, -music), and they are
lists of full module names, which plain peft matches exactly.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention

PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")
SELF, GPT2, T5 = "self", "gpt2", "t5"
STREAM_LABELS = {SELF: "self-attention", GPT2: "cross-attention to the GPT2 stream",
                 T5: "cross-attention to the T5 stream"}

TEXT_ENCODER_2_PRESETS: dict[str, tuple[str, ...]] = {
    # The T5 encoder's self-attention query and value projections (``encoder.block.N.layer.0.SelfAttention.q``),
    # named as the CLAP text-encoder presets of AudioLDM are (docs/paper-recipe.md, 'Text-encoder presets').
    "Wq": ("SelfAttention.q",),
    "Wv": ("SelfAttention.v",),
    "WqWv": ("SelfAttention.q", "SelfAttention.v"),
}


def _in_features(layer: torch.nn.Module) -> int:
    """Input width of a linear layer, or of the base layer under a LoRA wrapper."""
    return int(getattr(layer, "in_features", None) or layer.get_base_layer().in_features)


def cross_attention_streams(unet: torch.nn.Module, gpt2_width: int, t5_width: int) -> dict[str, str]:
    """Each ``attn2`` of the UNet (its module name) -> what it reads: ``self``, ``gpt2`` or ``t5``.

    Raises:
        ValueError: the two streams have the same width (no public AudioLDM2 does), which makes them inseparable.
    """
    if gpt2_width == t5_width:
        raise ValueError(f"The GPT2 and T5 streams are both {gpt2_width} wide; the presets cannot tell them apart. "
                         "Give module names as the UNet's targets instead.")
    streams = {}
    for name, module in unet.named_modules():
        if isinstance(module, Attention) and name.endswith(".attn2"):
            width = _in_features(module.to_k)
            streams[name] = GPT2 if width == gpt2_width else T5 if width == t5_width else SELF
    return streams


def unet_presets(unet: torch.nn.Module, gpt2_width: int, t5_width: int) -> dict[str, tuple[str, ...]]:
    """The UNet's presets: preset name -> module names (or suffixes) peft matches.

    - ``paper``: query and value of every attention layer (the paper's recipe, as for AudioLDM);
    - ``attention``: query, key, value and output of every attention layer;
    - ``attention_proj``: ``attention`` and each transformer's input and output projections;
    - ``self``: self-attention only (every ``attn1``, and the ``attn2`` of self-attention transformers);
    - ``cross_gpt2`` / ``cross_t5``: the cross-attention layers reading the GPT2 / the T5 stream;
    - ``cross``: both.
    """
    streams = cross_attention_streams(unet, gpt2_width, t5_width)
    attn1 = sorted(name for name, module in unet.named_modules()
                   if isinstance(module, Attention) and name.endswith(".attn1"))

    def layers(names: list[str]) -> tuple[str, ...]:
        return tuple(f"{name}.{projection}" for name in names for projection in PROJECTIONS)

    def reading(*kinds: str) -> list[str]:
        return sorted(name for name, kind in streams.items() if kind in kinds)

    return {
        "paper": ("to_q", "to_v"),
        "attention": PROJECTIONS,
        "attention_proj": (*PROJECTIONS, "proj_in", "proj_out"),
        "self": layers(attn1) + layers(reading(SELF)),
        "cross_gpt2": layers(reading(GPT2)),
        "cross_t5": layers(reading(T5)),
        "cross": layers(reading(GPT2, T5)),
    }
