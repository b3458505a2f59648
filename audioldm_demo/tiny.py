"""A tiny, random-initialised AudioLDM in diffusers format, built offline and deterministically.

It keeps the real geometry (16 kHz, hop 160, 64 mel bins, vocoder upsampling product 160, VAE factor 4) so that
every shape-dependent code path runs as it does on cvssp/audioldm-s-full-v2, and it loads through the same
``from_pretrained`` code (:func:`lightning_modules.backbone.load_backbone`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import diffusers
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers, decoders
from transformers import (
    ClapTextConfig,
    ClapTextModelWithProjection,
    RobertaTokenizerFast,
    SpeechT5HifiGan,
    SpeechT5HifiGanConfig,
)

from datamodules.atomic_files import staged_directory
from lightning_modules.quiet_loading import quiet_weight_loading

log = logging.getLogger(__name__)

TEXT_PROJECTION_DIM = 32
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
# A small English corpus of music captions: enough for a byte-level BPE to learn useful merges for test prompts.
_CORPUS_WORDS = (
    "music genre hip hop boom bap trap lofi jazz rock pop classical korean traditional gugak pansori drum bass "
    "piano guitar synth violin strings vocals beat tempo slow fast calm energetic happy sad bright dark warm loop "
    "melody harmony rhythm groove swing ambient electronic acoustic orchestral subgenre of the is a with and in"
).split()


def caption_corpus() -> list[str]:
    """The lines every tiny tokenizer is trained on: each rotation of the caption words."""
    return [" ".join(_CORPUS_WORDS[i:] + _CORPUS_WORDS[:i]) for i in range(len(_CORPUS_WORDS))]


def build_tokenizer(vocab_size: int = 400) -> RobertaTokenizerFast:
    """Train a byte-level BPE RoBERTa-style tokenizer locally (no hub), deterministic for a fixed corpus."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(caption_corpus(), trainer=trainer)
    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", tokenizer.token_to_id("</s>")), ("<s>", tokenizer.token_to_id("<s>"))
    )
    return RobertaTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=512,
    )


def build_text_encoder(
    vocab_size: int, initializer_factor: float = 1.0, projection_dim: int = TEXT_PROJECTION_DIM
) -> ClapTextModelWithProjection:
    """A 2-layer CLAP text encoder with a 32-d projection by default (the real one: 12 layers, 512-d).

    ``initializer_factor`` scales CLAP's random init; at 1.0 every prompt gets nearly the same embedding (cosine
    > 0.99), which the toy model (:mod:`audioldm_demo.toy_base`), whose frozen random encoder must tell genres
    apart, avoids with a larger factor.
    """
    config = ClapTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        projection_dim=projection_dim,
        max_position_embeddings=514,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        initializer_factor=initializer_factor,
    )
    return ClapTextModelWithProjection(config)


def build_vae(
    block_out_channels: tuple[int, ...] = (16, 32, 32),
    latent_channels: int = 8,
    scaling_factor: float = 0.9392935633659363,  # cvssp/audioldm-s-full-v2's value; the tiny VAE has no learned one
) -> AutoencoderKL:
    """A VAE over the [B, 1, frames, 64] log-mel image; by default 3 levels (spatial factor 4), 8 latent channels."""
    levels = len(block_out_channels)
    return AutoencoderKL(
        in_channels=1,
        out_channels=1,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def build_unet(
    block_out_channels: tuple[int, ...] = (32, 64), latent_channels: int = 8, text_embed_dim: int = TEXT_PROJECTION_DIM
) -> UNet2DConditionModel:
    """A UNet with AudioLDM's conditioning: CLAP embedding through a simple projection, concatenated.

    One level per entry of ``block_out_channels`` (2 by default), attention at the lowest resolution only.
    """
    plain = len(block_out_channels) - 1
    return UNet2DConditionModel(
        sample_size=32,
        in_channels=latent_channels,
        out_channels=latent_channels,
        down_block_types=("DownBlock2D",) * plain + ("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * plain,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=1,
        cross_attention_dim=tuple(block_out_channels),
        attention_head_dim=8,
        norm_num_groups=8,
        class_embed_type="simple_projection",
        projection_class_embeddings_input_dim=text_embed_dim,
        class_embeddings_concat=True,
    )


def build_vocoder() -> SpeechT5HifiGan:
    """A small HiFi-GAN; upsample_rates multiply to 160 so that one mel frame is 10 ms at 16 kHz."""
    config = SpeechT5HifiGanConfig(
        model_in_dim=64,
        sampling_rate=16000,
        upsample_initial_channel=32,
        upsample_rates=[5, 4, 8],
        upsample_kernel_sizes=[10, 8, 16],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        normalize_before=False,
        initializer_range=0.1,  # the real 0.01 leaves a 3-layer random vocoder at ~1e-6 amplitude; 0.1 gives ~0.5
    )
    return SpeechT5HifiGan(config)


def build_scheduler() -> DDIMScheduler:
    """AudioLDM's scheduler configuration (scaled-linear betas 0.0015..0.0195, epsilon prediction)."""
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.0015,
        beta_end=0.0195,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )


MODEL_INDEX = {
    "_class_name": "AudioLDMPipeline",
    "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "ClapTextModelWithProjection"],
    "tokenizer": ["transformers", "RobertaTokenizerFast"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "vocoder": ["transformers", "SpeechT5HifiGan"],
}


def build_tiny_audioldm(out_dir: str | Path, seed: int = 0, overwrite: bool = False) -> Path:
    """Write a complete tiny AudioLDM directory to ``out_dir`` (atomically: built aside, then renamed into place).

    The same seed gives bit-identical weights. Returns the directory.
    """
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass overwrite=True (--overwrite) to rebuild it.")
    with staged_directory(out_dir, mode="folder", overwrite=overwrite) as staging, quiet_weight_loading():
        tokenizer = build_tokenizer()
        tokenizer.save_pretrained(staging / "tokenizer")
        builders = {
            "text_encoder": lambda: build_text_encoder(len(tokenizer)),
            "vae": build_vae,
            "unet": build_unet,
            "vocoder": build_vocoder,
        }
        for offset, (name, build) in enumerate(builders.items()):
            torch.manual_seed(seed + offset)
            build().save_pretrained(staging / name)
        build_scheduler().save_pretrained(staging / "scheduler")
        (staging / "model_index.json").write_text(
            json.dumps({**MODEL_INDEX, "_diffusers_version": diffusers.__version__}, indent=2) + "\n"
        )
    log.info("Built tiny AudioLDM in %s", out_dir)
    return out_dir
