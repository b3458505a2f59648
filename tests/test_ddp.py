"""DDP on two CPU processes (gloo) through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import tiny_args
from tests.resume_helpers import checkpoint_at, tiny_config

REPO = Path(__file__).resolve().parents[1]
AUDIOLDM2_CONFIG = str(REPO / "configs" / "tiny_audioldm2.yaml")


@pytest.mark.slow
def test_ddp_fit_on_two_cpu_processes(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path) -> None:
    """configs/tiny.yaml on 2 gloo ranks, with the CLAP text-encoder site besides the UNet's: each rank reads its own
    files, rank zero alone writes, the callbacks split their clips over the ranks, and both sites train and export."""
    probe = tmp_path / "probe"
    args = tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path / "run",
                     "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
                     "--trainer.max_steps=2", "--trainer.val_check_interval=null", "--trainer.check_val_every_n_epoch=1",
                     "--data.init_args.batch_size=2", "--adapter_export.every_n_steps=1",
                     "--model.init_args.adapters.text_encoder.targets=WqWv",
                     "--model.init_args.adapters.text_encoder.rank=2",
                     "--trainer.callbacks+=tests.probes.RecordSources",
                     f"--trainer.callbacks.output_dir={probe}",
                     "--trainer.callbacks+=tests.probes.RankZeroWritesAlone",
                     f"--trainer.callbacks.output_dir={probe}")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "audioldm_lora", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 4  # 2 steps x batch 2 per rank
    assert not set(seen[0]) & set(seen[1])  # the DistributedSampler gives each rank its own files
    runs = list((tmp_path / "run").glob("tiny/version_*"))
    assert len(runs) == 1  # one logger directory, from rank zero
    adapters = sorted(p.name for p in (runs[0] / "adapters").iterdir() if not p.name.startswith("."))
    assert adapters == ["final", "step-1", "step-2"]
    assert len(list(runs[0].glob("metrics.csv"))) == 1
    # A/B sampling split its 3 prompt x seed pairs over the 2 ranks; rank zero wrote every pair it gathered.
    wavs = sorted(p.name for p in (runs[0] / "samples" / "step-000000").glob("*.wav"))
    assert len(wavs) == 6 and {w.split("_seed")[0] for w in wavs} == {"boom_bap_music", "chiptune_music",
                                                                        "gugak_music"}, wavs
    assert sorted(p.suffix for p in (runs[0] / "evaluation").glob("step-*")) == [".json", ".md", ".npz"]
    # Rank 1 generated and embedded its share of the evaluation and A/B clips, but wrote no file of the run.
    assert json.loads((probe / "rank1-writes.json").read_text()) == []
    assert_text_site_trained(runs[0] / "adapters" / "final", "audioldm", "text_encoder")


def assert_text_site_trained(final: Path, backbone: str, text_site: str) -> None:
    """The exported adapter has the UNet and ``text_site`` sites, and the text-encoder LoRA trained under DDP (DDP
    fails on a trainable parameter without a gradient; B starts at zero)."""
    from safetensors.torch import load_file

    info = json.loads((final / "adapter_info.json").read_text())
    assert set(info["sites"]) == {"unet", text_site} and info["backbone"] == backbone
    weights = load_file(final / text_site / "adapter_model.safetensors")
    lora_b = [tensor for name, tensor in weights.items() if "lora_B" in name]
    assert lora_b and all(tensor.abs().max() > 0 for tensor in lora_b)


@pytest.mark.slow
def test_ddp_fit_trains_and_exports_audioldm2s_t5_site(tiny_audioldm2_dir: Path, synthetic_root: Path,
                                                       tmp_path: Path) -> None:
    """AudioLDM2's shipped tiny recipe under DDP on 2 CPU processes with the T5 text-encoder site: it gets gradients
    through the conditioning on each rank, trains, and rank zero exports it in peft's format (AudioLDM's CLAP site:
    the test above)."""
    args = tiny_args("fit", tiny_audioldm2_dir, synthetic_root, tmp_path / "run",
                     "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
                     "--trainer.max_steps=2", "--trainer.val_check_interval=null", "--trainer.check_val_every_n_epoch=1",
                     "--data.init_args.batch_size=2", "--adapter_export.every_n_steps=0",
                     "--model.init_args.adapters.text_encoder_2.targets=WqWv",
                     "--model.init_args.adapters.text_encoder_2.rank=2", config=AUDIOLDM2_CONFIG)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "audioldm_lora", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_text_site_trained(next((tmp_path / "run").glob("*/version_*")) / "adapters" / "final", "audioldm2",
                             "text_encoder_2")


@pytest.mark.slow
def test_ddp_resume_equals_the_uninterrupted_ddp_run(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path) -> None:
    """2 gloo ranks, configs/tiny.yaml's callbacks on: 12 steps straight equal a resume from the same run's step-5
    checkpoint (2-step epochs per rank: mid-epoch) and 7 more. Each rank's random stream and loader position are in
    the checkpoint."""
    from safetensors.torch import load_file

    import torch

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    config = tiny_config(tmp_path / "tiny.yaml", checkpoint_every=5)

    def run(run_dir: Path, steps: int, *extra: str) -> Path:
        args = tiny_args("fit", tiny_model_dir, synthetic_root, run_dir, "--trainer.accelerator=cpu",
                         "--trainer.devices=2", "--trainer.strategy=ddp", f"--trainer.max_steps={steps}",
                         "--data.init_args.batch_size=2", "--model.init_args.caption_dropout=0.5", *extra,
                         config=config)
        result = subprocess.run([sys.executable, "-m", "audioldm_lora", *args], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return next(run_dir.glob("tiny/version_*"))

    straight = run(tmp_path / "straight", 12)
    checkpoint = checkpoint_at(tmp_path / "straight", 5)
    assert torch.load(checkpoint, weights_only=False)["global_step"] == 5
    resumed = run(tmp_path / "resumed", 12, f"--ckpt_path={checkpoint}")
    expected = load_file(straight / "adapters" / "final" / "pytorch_lora_weights.safetensors")
    actual = load_file(resumed / "adapters" / "final" / "pytorch_lora_weights.safetensors")
    assert expected.keys() == actual.keys() and expected
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=0, rtol=0, msg=key)
