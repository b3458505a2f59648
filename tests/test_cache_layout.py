"""The latent cache stores the fields a backbone declares: variable-length streams with masks round-trip at their
own lengths, a cache written before layouts were recorded (a fixture) still trains an AudioLDM model, and a cache
for another backbone or layout is refused with the command that rebuilds it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from audioldm_demo.tiny import TEXT_PROJECTION_DIM
from datamodules import GenreAudioDataModule
from datamodules.errors import DataSourceError
from datamodules.latent_cache import Encoders, build_latent_cache, load_cache_index
from datamodules.latent_cache_reader import LatentCacheDataset
from lightning_modules.backbone import load_backbone
from lightning_modules.cache_fit import check_cache_fits

V1_CACHE = Path(__file__).parent / "fixtures" / "v1_latent_cache"
STREAMS = {"encoder_hidden_states": "encoder_attention_mask"}


def stream_encoders() -> Encoders:
    """A fake text encoder whose stream has one token per word of the caption (so lengths differ by caption)."""

    def encode_text(captions: list[str]) -> dict[str, torch.Tensor]:
        lengths = [len(caption.split()) for caption in captions]
        longest = max(lengths)
        states = torch.zeros(len(captions), longest, 3)
        mask = torch.zeros(len(captions), longest, dtype=torch.long)
        for row, (caption, length) in enumerate(zip(captions, lengths)):
            states[row, :length] = torch.tensor([[float(len(w)), float(i), float(sum(map(ord, w)) % 7)]
                                                 for i, w in enumerate(caption.split())])
            mask[row, :length] = 1
        return {"encoder_hidden_states": states, "encoder_attention_mask": mask}

    def encode_audio(mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = F.avg_pool2d(mel[:, None], 4)
        return mean, torch.zeros_like(mean)

    layout = {"backbone": "streamy", "text_fields": ["encoder_hidden_states", "encoder_attention_mask"],
              "text_streams": STREAMS}
    return Encoders(encode_audio, encode_text, {"name": "fake", "audio_id": "a", "text_id": "t", **layout})


def test_variable_length_streams_round_trip_at_their_own_lengths(synthetic_root: Path, tmp_path: Path) -> None:
    data = GenreAudioDataModule(root=str(synthetic_root), duration=0.64, batch_size=3,
                                caption_template="{genre} music, a loop of {genre}", cache_crops_per_file=1)
    data.setup("fit")
    cache = tmp_path / "cache"
    encoders = stream_encoders()
    build_latent_cache(cache, data.split_records(), encoders, 0.64, 1, data.identity(), batch_size=4)
    index = load_cache_index(cache)
    assert index["model"]["text_fields"] == ["encoder_hidden_states", "encoder_attention_mask"]
    dataset = LatentCacheDataset(cache, index, "train", random_crop=False)
    items = [dataset[i] for i in range(len(dataset))]
    for item in items:
        expected = encoders.encode_text([item["caption"]])
        length = len(item["caption"].split())
        assert item["encoder_attention_mask"].tolist() == [1.0] * length  # stored at its own length
        torch.testing.assert_close(item["encoder_hidden_states"], expected["encoder_hidden_states"][0])
    lengths = {len(item["caption"].split()) for item in items}
    assert len(lengths) > 1  # the genres' captions differ in length, so rows of a batch do
    batch = dataset.collate(items)
    longest = max(lengths)
    assert batch["encoder_hidden_states"].shape == (len(items), longest, 3)
    assert batch["encoder_attention_mask"].sum(dim=1).tolist() == [len(i["caption"].split()) for i in items]


def test_a_v1_cache_still_serves_an_audioldm_model(tiny_model_dir: Path) -> None:
    """The fixture was written by `audioldm-lora cache` before layouts were recorded."""
    index = json.loads((V1_CACHE / "index.json").read_text())
    assert "text_fields" not in index["model"] and "backbone" not in index["model"]
    backbone = load_backbone(str(tiny_model_dir))
    check_cache_fits(index["model"], backbone, index["model"]["name"])
    dataset = LatentCacheDataset(V1_CACHE, index, "train", random_crop=True)
    batch = dataset.collate([dataset[i] for i in range(len(dataset))])
    cond = backbone.conditioning_from_cache(batch)
    assert set(cond) == {"class_labels"} and cond["class_labels"].shape == (len(dataset), TEXT_PROJECTION_DIM)
    torch.testing.assert_close(cond["class_labels"].norm(dim=-1), torch.ones(len(dataset)))
    latents = backbone.latents_from_posterior(batch["latent_mean"], batch["latent_logvar"])
    assert latents.shape[1:] == backbone.latent_shape(1, 0.64)[1:]


def test_a_cache_for_another_backbone_or_model_is_refused_with_the_rebuild_command(tiny_model_dir: Path,
                                                                                    tmp_path: Path) -> None:
    model = json.loads((V1_CACHE / "index.json").read_text())["model"]
    backbone = load_backbone(str(tiny_model_dir))
    with pytest.raises(DataSourceError, match=r"built with /tmp/fixbase, but the model is other/model; rebuild it "
                                              r"with `audioldm-lora cache --config <your config>`"):
        check_cache_fits(model, backbone, "other/model")
    streamy = {**model, **stream_encoders().model, "name": model["name"]}
    with pytest.raises(DataSourceError, match=r"another backbone or layout \(backbone: streamy in the cache, audioldm "
                                              r"for this model; text_fields: .*rebuild it with"):
        check_cache_fits(streamy, backbone, model["name"])
