"""Fault tolerance: non-finite losses, and kills during adapter writes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from lightning import Trainer
from torch.utils.data import DataLoader

from lightning_modules.lora import ADAPTER_WEIGHTS
from lightning_modules.module import AudioLDMLoRA


def batches(nan_at: int | set[int], count: int = 3) -> list[dict]:
    nan_at = {nan_at} if isinstance(nan_at, int) else nan_at
    out = []
    for i in range(count):
        mel = torch.randn(2, 16, 64) - 4
        if i in nan_at:
            mel[0, 3, 7] = float("nan")
        out.append({"mel": mel, "caption": ["a", "b"], "path": [f"clip{i}a.wav", f"clip{i}b.wav"]})
    return out


def fit(module: AudioLDMLoRA, data: list[dict], tmp_path: Path) -> Trainer:
    trainer = Trainer(max_steps=len(data), accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(data, batch_size=None))
    return trainer


def test_nonfinite_loss_is_skipped_and_counted(tiny_model_dir: Path, tmp_path: Path) -> None:
    module = AudioLDMLoRA(pretrained_model=str(tiny_model_dir), learning_rate=1e-2)
    fit(module, batches(nan_at=1), tmp_path)
    assert module.nonfinite_steps == 1
    assert all(torch.isfinite(p).all() for p in module.unet.parameters())


def test_skipped_steps_do_not_touch_the_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    module = AudioLDMLoRA(pretrained_model=str(tiny_model_dir), learning_rate=1e-2, weight_decay=0.5)
    before = {n: p.clone() for n, p in module.unet.named_parameters() if p.requires_grad}
    fit(module, batches(nan_at={0, 1, 2}), tmp_path)
    assert module.nonfinite_steps == 3
    for name, param in module.unet.named_parameters():
        if name in before:
            assert torch.equal(param, before[name]), name  # no update, not even weight decay


def test_nonfinite_loss_can_stop_with_the_batch_sources(tiny_model_dir: Path, tmp_path: Path) -> None:
    module = AudioLDMLoRA(pretrained_model=str(tiny_model_dir), nonfinite_loss="stop")
    with pytest.raises(FloatingPointError, match=r"global step 1 on a batch from clip1a.wav, clip1b.wav"):
        fit(module, batches(nan_at=1), tmp_path)


WRITER = """
import sys, torch
from diffusers import UNet2DConditionModel
from lightning_modules.lora import add_lora, lora_parameters, save_adapter
unet = UNet2DConditionModel.from_pretrained(sys.argv[1], subfolder="unet")
add_lora(unet, rank=8, alpha=8, targets="all_linear")
for p in lora_parameters(unet):
    p.data.fill_(0.01)
save_adapter(unet, sys.argv[2], {"version": 0})
print("ready", flush=True)
i = 0
while True:
    i += 1
    for p in lora_parameters(unet):
        p.data.fill_(0.01 * (i + 1))
    save_adapter(unet, sys.argv[2], {"version": i})
"""


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.6])
def test_kill_during_adapter_write_leaves_a_complete_adapter(tiny_model_dir: Path, tmp_path: Path, delay: float) -> None:
    target = tmp_path / "adapter"
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tiny_model_dir), str(target)], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (target / ADAPTER_WEIGHTS).is_file() and (target / "adapter_info.json").is_file()
    assert sorted(p.name for p in target.iterdir()) == sorted([ADAPTER_WEIGHTS, "adapter_info.json"])
    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    unet.load_lora_adapter(str(target), prefix=None, weight_name=ADAPTER_WEIGHTS, use_safetensors=True)
    values = {round(float(p.detach().flatten()[0]), 6) for n, p in unet.named_parameters() if "lora_" in n}
    assert len(values) == 1  # every tensor from the same version: nothing half-written
