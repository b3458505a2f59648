"""A tiny, random-initialised AudioLDM2 in diffusers format, built offline and deterministically.

Every component of ``cvssp/audioldm2-music`` is there, at toy width, so that ``AudioLDM2Pipeline.from_pretrained``
loads the folder and every shape-dependent path runs as on the real model (docs/model-facts.md, 'AudioLDM2
components' and 'AudioLDM2 conditioning'): a CLAP model (text and audio towers; only its text features are used), a
T5 encoder with a T5 tokenizer trained locally, the projection model, GPT2 (``max_new_tokens`` 8; as
``GPT2LMHeadModel``, the class diffusers 0.42.1 declares and the one its generation loop runs with), the AudioLDM2 UNet
whose transformers read self-attention, the GPT2 stream and the T5 stream (``cross_attention_dim`` ``[None, 24,
16]``: the two streams have different widths, as 768 and 1024 do in the real model), and the tiny AudioLDM's VAE,
vocoder, RoBERTa tokenizer and scheduler.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from diffusers import AudioLDM2Pipeline
from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    ClapAudioConfig,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapTextConfig,
    GPT2Config,
    GPT2LMHeadModel,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

from audioldm_demo.tiny import (
    TEXT_PROJECTION_DIM,
    build_scheduler,
    build_tokenizer,
    build_vae,
    build_vocoder,
    caption_corpus,
)
from datamodules.atomic_files import staged_directory
from lightning_modules.quiet_loading import quiet_weight_loading

log = logging.getLogger(__name__)

T5_WIDTH = 16
GPT2_WIDTH = 24
MAX_NEW_TOKENS = 8


def build_t5_tokenizer(vocab_size: int = 200) -> T5TokenizerFast:
    """A unigram T5 tokenizer trained on the caption corpus (the real one: Flan-T5's 32,100 pieces, 128 tokens)."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", show_progress=False)
    tokenizer.train_from_iterator(caption_corpus(), trainer=trainer)
    eos = tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos)]
    )
    return T5TokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                           model_max_length=128, extra_ids=0)


def build_clap(vocab_size: int) -> ClapModel:
    """CLAP with a 2-layer text tower and a 2-stage audio tower, both projecting to 32 (the real: 512)."""
    text = ClapTextConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, projection_dim=TEXT_PROJECTION_DIM, max_position_embeddings=514,
                          pad_token_id=1, bos_token_id=0, eos_token_id=2)
    audio = ClapAudioConfig(depths=[1, 1], num_attention_heads=[1, 2], hidden_size=32, patch_embeds_hidden_size=16,
                            spec_size=64, window_size=4, patch_size=4, num_mel_bins=64,
                            projection_dim=TEXT_PROJECTION_DIM)
    return ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(),
                                projection_dim=TEXT_PROJECTION_DIM))


def build_unet_audioldm2() -> AudioLDM2UNet2DConditionModel:
    """Two levels, attention at the lowest: per transformer slot self-attention, the GPT2 stream, the T5 stream."""
    layout = [None, GPT2_WIDTH, T5_WIDTH]
    return AudioLDM2UNet2DConditionModel(
        sample_size=32, in_channels=8, out_channels=8, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=[layout, layout], attention_head_dim=8, norm_num_groups=8,
    )


def build_tiny_audioldm2(out_dir: str | Path, seed: int = 0, overwrite: bool = False) -> Path:
    """Write a complete tiny AudioLDM2 directory to ``out_dir`` (atomically: built aside, then renamed into place).

    The same seed gives bit-identical weights. Returns the directory.
    """
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass overwrite=True (--overwrite) to rebuild it.")
    tokenizer, tokenizer_2 = build_tokenizer(), build_t5_tokenizer()
    builders = {
        "text_encoder": lambda: build_clap(len(tokenizer)),
        "text_encoder_2": lambda: T5EncoderModel(T5Config(
            vocab_size=len(tokenizer_2), d_model=T5_WIDTH, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
            pad_token_id=tokenizer_2.pad_token_id, eos_token_id=tokenizer_2.eos_token_id, decoder_start_token_id=0)),
        "projection_model": lambda: AudioLDM2ProjectionModel(
            text_encoder_dim=TEXT_PROJECTION_DIM, text_encoder_1_dim=T5_WIDTH, langauge_model_dim=GPT2_WIDTH),
        "language_model": lambda: GPT2LMHeadModel(GPT2Config(
            n_embd=GPT2_WIDTH, n_layer=1, n_head=2, n_positions=256, vocab_size=16, bos_token_id=0, eos_token_id=0,
            max_new_tokens=MAX_NEW_TOKENS)),
        "vae": build_vae,
        "unet": build_unet_audioldm2,
        "vocoder": build_vocoder,
    }
    parts = {}
    for offset, (name, build) in enumerate(builders.items()):
        torch.manual_seed(seed + offset)
        parts[name] = build()
    pipeline = AudioLDM2Pipeline(tokenizer=tokenizer, tokenizer_2=tokenizer_2, feature_extractor=ClapFeatureExtractor(),
                                 scheduler=build_scheduler(), **parts)
    with staged_directory(out_dir, mode="folder", overwrite=overwrite) as staging, quiet_weight_loading():
        pipeline.save_pretrained(staging)
    log.info("Built tiny AudioLDM2 in %s", out_dir)
    return out_dir
