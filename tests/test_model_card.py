"""``audioldm-lora model-card``: the card is built offline from adapter_info.json and metrics; the upload is faked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from audioldm_lora.commands import model_card as card_command
from lightning_modules.lora import ADAPTER_WEIGHTS
from tests.adapter_helpers import tiny_adapter

REPORT = {  # the shape of `audioldm-lora evaluate`'s metrics.json
    "generated": {"source": "samples/lora", "clips": 12},
    "reference": {"source": "data/test", "clips": 12},
    "rows": {
        "all": {"n_generated": 12, "n_reference": 12, "kad": 1.23456, "fad": 4.5, "clap_score": 0.31, "note": None,
                "kad_ci": [0.5, 2.0], "fad_ci": None},
        "boom_bap": {"n_generated": 4, "n_reference": 4, "kad": -0.5, "fad": 6.0, "clap_score": None, "note": "x"},
    },
}


@pytest.fixture()
def adapter(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path) -> Path:
    data = {"root": str(synthetic_root), "duration": 1.28, "batch_size": 4, "genres": None}
    return tiny_adapter(tiny_model_dir, tmp_path / "adapter", seed=3, genres=["boom_bap", "gugak"],
                        data_config=data, trainable_parameters=5120)


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_card_from_adapter_info_and_metrics(adapter: Path, tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(REPORT))
    argv = [str(adapter), "--metrics", str(metrics), "--base-model", "cvssp/audioldm-s-full-v2",
            "--license", "cc-by-nc-sa-4.0"]
    assert card_command.main(argv) == 0
    card = (adapter / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "diffusers" and meta["base_model"] == "cvssp/audioldm-s-full-v2"
    assert meta["license"] == "cc-by-nc-sa-4.0" and meta["base_model_relation"] == "adapter"
    assert {"audioldm", "lora", "text-to-audio", "boom-bap", "gugak"} <= set(meta["tags"])
    for row in ("| rank | 2 |", "| alpha | 4.0 |", "| update scale (alpha / rank; / sqrt(rank) with rsLoRA) | 2 |",
                "| optimizer steps | 30 |", "| genres | boom_bap, gugak |", "| trainable parameters | 5,120 |",
                "| clip duration (s) | 1.28 |"):
        assert row in card, row
    assert "to_k, to_out.0, to_q, to_v" in card
    assert "| data size | 10 source files (boom_bap: 5, gugak: 5; counted when this card was written) |" in card
    assert "| training data | genres |" in card and str(adapter.parent) not in card  # no local path is published
    assert "| set | n_generated | n_reference | kad | fad | clap_score |" in card
    assert "| all | 12 | 12 | 1.2346 [0.5000, 2.0000] | 4.5000 | 0.3100 |" in card  # with its interval
    assert "| boom_bap | 4 | 4 | -0.5000 | 6.0000 | – |" in card
    assert 'pipe.unet.load_lora_adapter("path/to/this/folder", prefix=None' in card


def test_a_comparison_table_shows_each_interval_and_marks_what_is_not_significant() -> None:
    from lightning_modules.model_card import metrics_table

    rows = {"rows": {"gugak": {"reference_set": "gugak", "n_generated": 48, "kad_base": 67.7, "kad_lora": 30.7,
                               "kad_delta": -37.0, "kad_delta_ci": [-48.2, -24.5], "kad_delta_significant": True,
                               "kad_clips_needed": 9},
                     "techno": {"reference_set": "techno", "n_generated": 48, "kad_base": 11.0, "kad_lora": 12.8,
                                "kad_delta": 1.8, "kad_delta_ci": [-0.3, 4.5], "kad_delta_significant": False,
                                "kad_clips_needed": 67}}}
    lines = metrics_table(rows)
    assert lines[0] == "| set | n_generated | kad_base | kad_lora | kad_delta |"
    assert "| gugak | 48 | 67.7000 | 30.7000 | -37.0000 [-48.2000, -24.5000] |" in lines
    assert "| techno | 48 | 11.0000 | 12.8000 | 1.8000 [-0.3000, 4.5000] n.s. |" in lines


def test_card_of_a_local_base_leaves_base_model_out_of_the_front_matter(adapter: Path, tiny_model_dir: Path) -> None:
    assert card_command.main([str(adapter)]) == 0
    card = (adapter / "README.md").read_text()
    assert "base_model" not in front_matter(card)  # the Hub refuses a local path there
    assert "The base was a local model; give its hub id with `--base-model`" in card
    assert str(tiny_model_dir) not in card and 'from_pretrained("path/to/the/base")' in card  # no local path
    assert "No evaluation metrics were supplied" in card


class FakeHfApi:
    """Records what would be uploaded; never touches the network."""

    calls: ClassVar[list[tuple[str, dict]]] = []
    uploaded: ClassVar[list[str]] = []
    fail: ClassVar[bool] = False

    def __init__(self, token: str | None = None) -> None:
        self.token = token

    def create_repo(self, **kwargs):
        FakeHfApi.calls.append(("create_repo", kwargs))
        if FakeHfApi.fail:
            raise ConnectionError("no network")

    def upload_folder(self, **kwargs):
        FakeHfApi.calls.append(("upload_folder", kwargs))
        FakeHfApi.uploaded = sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"})()


def test_push_to_hub_uploads_the_adapter_with_its_card(adapter: Path, monkeypatch, capsys) -> None:
    import huggingface_hub

    FakeHfApi.calls, FakeHfApi.fail = [], False
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    assert card_command.main([str(adapter), "--push-to-hub", "me/boom-bap-lora", "--private"]) == 0
    (_, create), (_, upload) = FakeHfApi.calls
    assert create == {"repo_id": "me/boom-bap-lora", "repo_type": "model", "private": True, "exist_ok": True}
    assert upload["folder_path"] == str(adapter) and upload["repo_id"] == "me/boom-bap-lora"
    assert FakeHfApi.uploaded == ["README.md", "adapter_info.json", ADAPTER_WEIGHTS]
    assert 'load_lora_adapter("me/boom-bap-lora"' in (adapter / "README.md").read_text()
    assert "https://huggingface.co/me/boom-bap-lora/commit/abc" in capsys.readouterr().out

    FakeHfApi.calls, FakeHfApi.fail = [], True
    assert card_command.main([str(adapter), "--push-to-hub", "me/boom-bap-lora"]) == 2
    error = capsys.readouterr().err
    assert "Uploading" in error and "me/boom-bap-lora failed: no network" in error and "huggingface-cli login" in error


def test_bad_card_input(adapter: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    assert card_command.main([str(adapter), "--metrics", str(bad)]) == 2
    assert "bad.json is not valid JSON" in capsys.readouterr().err
    words = tmp_path / "words.json"
    words.write_text(json.dumps({"all": {"note": "nothing numeric"}}))
    assert card_command.main([str(adapter), "--metrics", str(words)]) == 2
    assert "no numbers" in capsys.readouterr().err
    shutil.rmtree(adapter)
    assert card_command.main([str(adapter)]) == 2
    assert "does not exist" in capsys.readouterr().err
