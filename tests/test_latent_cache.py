"""The latent cache: hits, misses, invalidation, the batch contract, and `audioldm-lora cache` + fit from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from datamodules import GenreAudioDataModule
from datamodules.errors import DataSourceError
from datamodules.latent_cache import CacheReport, Encoders, build_latent_cache
from audioldm_demo.synthetic import synthesize_clip


class FakeEncoders:
    """Deterministic stand-ins for the VAE and text encoder that count their calls."""

    def __init__(self, model_id: str = "m1") -> None:
        self.audio_calls = self.text_calls = 0
        self.model_id = model_id

    def audio(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.audio_calls += mel.shape[0]
        mean = F.avg_pool2d(mel[:, None], 4).repeat(1, 2, 1, 1)
        return mean, torch.full_like(mean, -2.0)

    def text(self, captions: list[str]) -> torch.Tensor:
        self.text_calls += len(captions)
        return F.normalize(torch.tensor([[float(len(c)), float(sum(map(ord, c)) % 97), 1.0] for c in captions]), dim=-1)

    def encoders(self) -> Encoders:
        return Encoders(self.audio, lambda captions: {"text_embeds": self.text(captions)},
                        {"name": "fake", "audio_id": f"a-{self.model_id}", "text_id": f"t-{self.model_id}"})


def build(dm: GenreAudioDataModule, cache: Path, fake: FakeEncoders) -> CacheReport:
    dm.setup("fit")
    return build_latent_cache(cache, dm.split_records(), fake.encoders(), dm.hparams.duration,
                              dm.hparams.cache_crops_per_file, dm.identity(), dm.make_source().files_to_watch(), batch_size=4)


@pytest.fixture()
def data(synthetic_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "genres"
    shutil.copytree(synthetic_root, root)
    return root


def module(root: Path, **kwargs) -> GenreAudioDataModule:
    options = {"duration": 0.64, "val_fraction": 0.2, "batch_size": 2, "cache_crops_per_file": 3, **kwargs}
    return GenreAudioDataModule(root=str(root), **options)


def test_hits_misses_and_invalidation(data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake = FakeEncoders()
    first = build(module(data), cache, fake)
    assert first.items == {"train": 9, "val": 3, "test": 3} and not first.bad
    assert first.latents_computed == 9 * 3 + 3 + 3 and first.latents_reused == 0  # 3 crops per training file
    assert first.texts_computed == 3  # one caption per genre
    again = FakeEncoders()
    second = build(module(data), cache, again)
    assert (second.latents_reused, second.latents_computed, again.audio_calls, again.text_calls) == (33, 0, 0, 0)

    # new content in one file: only its latents are recomputed (the content hash is in the key)
    edited = data / "gugak" / "gugak_001.wav"
    sf.write(edited, synthesize_clip("gugak", 2.0, seed=999), 16000, subtype="PCM_16")
    third = build(module(data), cache, FakeEncoders())
    assert third.latents_computed in (1, 3) and third.latents_reused == 33 - third.latents_computed
    # another caption policy: text embeddings miss, latents hit
    fourth = build(module(data, caption_template="{genre} music, loop"), cache, FakeEncoders())
    assert fourth.texts_computed == 3 and fourth.latents_computed == 0
    # other preprocessing (duration) or another model: everything misses
    assert build(module(data, duration=1.28), cache, FakeEncoders()).latents_reused == 0
    assert build(module(data), cache, FakeEncoders("m2")).latents_reused == 0
    assert len(list(cache.glob("*.safetensors"))) <= 4  # unreferenced shards are deleted


def test_training_batches_follow_the_module_contract(data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    build(module(data), cache, FakeEncoders())
    dm = module(data, latent_cache=str(cache))
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"latent_mean", "latent_logvar", "text_embeds", "caption", "genre", "path", "offset", "skipped"}
    assert batch["latent_mean"].shape == batch["latent_logvar"].shape == (2, 2, 16, 16)
    torch.testing.assert_close(batch["text_embeds"].norm(dim=-1), torch.ones(2))
    assert (batch["latent_logvar"] == -2.0).all()
    offsets = {round(float(o), 3) for b in [dm._datasets["train"][0] for _ in range(40)] for o in [b["offset"]]}
    assert offsets == {0.0, 0.68, 1.36}  # one of the three cached crops per draw
    val = next(iter(dm.val_dataloader()))
    assert val["offset"].tolist() == [0.0, 0.0] and len(dm._datasets["test"]) == 3
    assert dm.genres == ["boom_bap", "chiptune", "gugak"] and dm.latent_cache_model["audio_id"] == "a-m1"
    assert len(dm.splits["train"]) == 9 and {Path(i.path).parent for i in dm.splits["val"]} <= set(data.iterdir())


def test_a_stale_cache_fails_with_the_fix(data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DataSourceError, match="No latent cache at .*audioldm-lora cache"):
        module(data, latent_cache=str(cache)).setup("fit")
    build(module(data), cache, FakeEncoders())
    with pytest.raises(DataSourceError, match=r"other settings \(\['duration'\]\)"):
        module(data, latent_cache=str(cache), duration=1.28).setup("fit")
    with pytest.raises(DataSourceError, match=r"another source or split \(\['val_fraction'\]\)"):
        GenreAudioDataModule(root=str(data), duration=0.64, val_fraction=0.5, cache_crops_per_file=3,
                             latent_cache=str(cache)).setup("fit")
    sf.write(data / "gugak" / "gugak_000.wav", synthesize_clip("gugak", 2.0, seed=5), 16000, subtype="PCM_16")
    with pytest.raises(DataSourceError, match="changed since the latent cache"):
        module(data, latent_cache=str(cache)).setup("fit")


@pytest.mark.parametrize("text_encoder_lora", [False, True], ids=["frozen-text-encoder", "adapted-text-encoder"])
def test_cache_command_and_fit_without_the_encoders(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                                    text_encoder_lora: bool) -> None:
    """Training from the cache never runs the VAE encoder; the text encoder runs only when it carries an adapter
    (then every step encodes the batch's captions and the "" of caption dropout, and the cached embeddings of the
    same cache are not used)."""
    from audioldm_lora.lightning_cli import build_cli
    from audioldm_lora.commands.cache import main
    from tests.cli_helpers import CONFIG, tiny_args

    cache = tmp_path / "cache"
    overrides = [f"--set+=model.init_args.pretrained_model={tiny_model_dir}", f"--set+=data.init_args.root={synthetic_root}"]
    assert main(["--config", CONFIG, *overrides, "--cache-dir", str(cache), "--crops-per-file", "2"]) == 0
    cli = build_cli(tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, "--trainer.max_steps=3",
                              f"--data.init_args.latent_cache={cache}", "--data.init_args.cache_crops_per_file=2",
                              "--trainer.val_check_interval=3",
                              *(["--model.init_args.adapters.text_encoder.targets=Wq"] if text_encoder_lora else []))[1:],
                    run=False)
    calls = {"vae": 0, "text": 0}

    def forbidden_vae(*args, **kwargs):
        calls["vae"] += 1
        raise AssertionError("the VAE encoder ran while training from the cache")

    text_forward = cli.model.text_encoder.forward

    def counted_text(*args, **kwargs):
        calls["text"] += 1
        return text_forward(*args, **kwargs)

    cli.model.vae.encode = forbidden_vae
    cli.model.text_encoder.forward = counted_text
    # The project's sampling and evaluation callbacks are tested elsewhere; here they would only cost time.
    cli.trainer.callbacks[:] = [c for c in cli.trainer.callbacks if not type(c).__module__.startswith("callbacks.")]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 3 and cli.trainer.callback_metrics["train/loss"].isfinite()
    assert calls["vae"] == 0
    if text_encoder_lora:  # captions and "" every training step, plus validation batches
        assert calls["text"] >= 2 * 3
        assert any(v.abs().sum() > 0 for k, v in cli.model.text_encoder.state_dict().items() if "lora_B" in k)
    else:
        assert calls["text"] <= 1  # at most the empty prompt, for caption dropout
    assert cli.datamodule.latent_cache_model["name"] == str(tiny_model_dir)
