"""The tiny offline AudioLDM2 (the ground of the AudioLDM2 backbone): AudioLDM2Pipeline loads it, and its parts run
the real conditioning chain (docs/model-facts.md, 'AudioLDM2 conditioning') with the real cross-attention layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AudioLDM2Pipeline

from audioldm_demo.commands.build_tiny import main as build_tiny
from audioldm_demo.tiny_audioldm2 import GPT2_WIDTH, MAX_NEW_TOKENS, T5_WIDTH
from lightning_modules.backbone import load_backbone

PROMPTS = ["gugak music", "a slow techno loop with bright synth and warm bass"]


@pytest.fixture(scope="module")
def tiny_audioldm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built by the command users run."""
    directory = tmp_path_factory.mktemp("models") / "tiny-audioldm2"
    assert build_tiny(["--model", "audioldm2", str(directory)]) == 0
    return directory


def test_the_pipeline_loads_every_component(tiny_audioldm2: Path) -> None:
    pipe = AudioLDM2Pipeline.from_pretrained(tiny_audioldm2)
    classes = {name: type(getattr(pipe, name)).__name__ for name in (
        "text_encoder", "text_encoder_2", "tokenizer_2", "projection_model", "language_model", "unet", "vocoder")}
    assert classes == {"text_encoder": "ClapModel", "text_encoder_2": "T5EncoderModel", "tokenizer_2": "T5Tokenizer",
                       "projection_model": "AudioLDM2ProjectionModel", "language_model": "GPT2LMHeadModel",
                       "unet": "AudioLDM2UNet2DConditionModel", "vocoder": "SpeechT5HifiGan"}
    assert pipe.language_model.config.max_new_tokens == MAX_NEW_TOKENS
    audio = pipe(PROMPTS[:1], num_inference_steps=2, audio_length_in_s=0.64,
                 generator=torch.Generator().manual_seed(0)).audios
    assert audio.shape == (1, int(0.64 * 16000))  # the reference pipeline runs offline on it


def test_its_parts_run_the_conditioning_chain_into_both_streams(tiny_audioldm2: Path) -> None:
    pipe = AudioLDM2Pipeline.from_pretrained(tiny_audioldm2)
    with torch.no_grad():
        clap_tokens = pipe.tokenizer(PROMPTS, padding="max_length", truncation=True, return_tensors="pt")
        clap = pipe.text_encoder.get_text_features(**clap_tokens).pooler_output[:, None, :]
        t5_tokens = pipe.tokenizer_2(PROMPTS, padding=True, truncation=True, return_tensors="pt")
        t5 = pipe.text_encoder_2(**t5_tokens).last_hidden_state
        assert t5.shape[-1] == T5_WIDTH and t5_tokens.attention_mask.sum(1).tolist()[0] < t5.shape[1]  # padded
        projected = pipe.projection_model(hidden_states=clap, hidden_states_1=t5,
                                          attention_mask=torch.ones(clap.shape[:2], dtype=torch.long),
                                          attention_mask_1=t5_tokens.attention_mask)
        states, mask = projected.hidden_states, projected.attention_mask
        for _ in range(MAX_NEW_TOKENS):  # GPT2 feeds its last hidden state back; no token is sampled
            output = pipe.language_model(inputs_embeds=states, attention_mask=mask, output_hidden_states=True)
            last = output.hidden_states[-1][:, -1:]
            states, mask = torch.cat([states, last], 1), torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        generated = states[:, -MAX_NEW_TOKENS:]
        assert generated.shape == (2, MAX_NEW_TOKENS, GPT2_WIDTH)
        latents = torch.randn(2, 8, 16, 16, generator=torch.Generator().manual_seed(0))
        out = pipe.unet(latents, torch.tensor(10), encoder_hidden_states=generated, encoder_hidden_states_1=t5,
                        encoder_attention_mask_1=t5_tokens.attention_mask).sample
    assert out.shape == latents.shape and torch.isfinite(out).all()
    widths = {m.to_k.in_features for name, m in pipe.unet.named_modules() if name.endswith("attn2")}
    assert widths == {GPT2_WIDTH, T5_WIDTH, 64}  # the GPT2 stream, the T5 stream, self-attention (64 channels)


def test_the_framework_loads_it_as_audioldm2(tiny_audioldm2: Path) -> None:
    backbone = load_backbone(str(tiny_audioldm2))
    assert backbone.kind == "audioldm2" and type(backbone.language_model).__name__ == "GPT2Model"
    assert backbone.latent_shape(1, 0.64) == (1, 8, 16, 16)
