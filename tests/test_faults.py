"""Fault tolerance: non-finite losses, and kills during adapter and checkpoint writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from lightning import Trainer
from torch.utils.data import DataLoader

from callbacks.checkpoint_io import AtomicCheckpointIO
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


def kill_writer_midway(script: str, args: list[str], delay: float, env: dict[str, str] | None = None) -> None:
    """Run a writer loop in a fresh Python, wait for its first complete write ("ready"), then ``kill -9`` it
    ``delay`` seconds into its later rewrites."""
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()



WRITER = """
import sys, torch
from diffusers import UNet2DConditionModel
from lightning_modules.audioldm import UNET_PRESETS
from lightning_modules.adapter_sites import write_adapter_folder
from lightning_modules.lora import add_lora, lora_parameters
unet = UNet2DConditionModel.from_pretrained(sys.argv[1], subfolder="unet")
add_lora(unet, rank=8, alpha=8, targets="all_linear", presets=UNET_PRESETS)
for p in lora_parameters(unet):
    p.data.fill_(0.01)
write_adapter_folder({"unet": (unet, "diffusers")}, sys.argv[2], {"version": 0})
print("ready", flush=True)
i = 0
while True:
    i += 1
    for p in lora_parameters(unet):
        p.data.fill_(0.01 * (i + 1))
    write_adapter_folder({"unet": (unet, "diffusers")}, sys.argv[2], {"version": i})
"""


@pytest.mark.parametrize("delay", [0.2, pytest.param(0.05, marks=pytest.mark.slow), pytest.param(0.6, marks=pytest.mark.slow)])
def test_kill_during_adapter_write_leaves_a_complete_adapter(tiny_model_dir: Path, tmp_path: Path, delay: float) -> None:
    target = tmp_path / "adapter"
    kill_writer_midway(WRITER, [str(tiny_model_dir), str(target)], delay)
    assert (target / ADAPTER_WEIGHTS).is_file() and (target / "adapter_info.json").is_file()
    assert sorted(p.name for p in target.iterdir()) == sorted([ADAPTER_WEIGHTS, "adapter_info.json"])
    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    unet.load_lora_adapter(str(target), prefix=None, weight_name=ADAPTER_WEIGHTS, use_safetensors=True)
    values = {round(float(p.detach().flatten()[0]), 6) for n, p in unet.named_parameters() if "lora_" in n}
    assert len(values) == 1  # every tensor from the same version: nothing half-written


CHECKPOINT_WRITER = """
import sys, torch
from callbacks.checkpoint_io import AtomicCheckpointIO
io = AtomicCheckpointIO()
state = torch.zeros(8_000_000)  # 32 MB: every write takes long enough to be killed in the middle
io.save_checkpoint({"version": 0, "state_dict": {"w": state}}, sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    i += 1
    state.fill_(float(i))
    io.save_checkpoint({"version": i, "state_dict": {"w": state}}, sys.argv[1])
"""


@pytest.mark.parametrize("delay", [0.4, pytest.param(0.1, marks=pytest.mark.slow), pytest.param(1.0, marks=pytest.mark.slow)])
def test_kill_during_checkpoint_write_leaves_a_complete_checkpoint(tmp_path: Path, delay: float) -> None:
    """The checkpoint at its path is always a whole one and loads with ``weights_only=True``.

    TMPDIR points to another file system where there is one (/dev/shm): there Lightning's own writer copies its
    temporary file into the checkpoint path, and a kill during the copy leaves a truncated checkpoint.
    """
    target = tmp_path / "checkpoints" / "last.ckpt"
    env = {**os.environ, "TMPDIR": "/dev/shm" if Path("/dev/shm").is_dir() else str(tmp_path)}
    kill_writer_midway(CHECKPOINT_WRITER, [str(target)], delay, env)
    state = torch.load(target, map_location="cpu", weights_only=True)
    weights = state["state_dict"]["w"]
    assert weights.shape == (8_000_000,)
    assert torch.all(weights == float(state["version"]))  # one version throughout, nothing torn
    assert [p.name for p in target.parent.iterdir() if not p.name.startswith(".")] == ["last.ckpt"]


def test_checkpoint_writes_replace_the_file_instead_of_rewriting_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that opened the old checkpoint still reads it whole after a save: the new file was renamed into
    place. Lightning's writer fails this when $TMPDIR is another file system (it copies into the same file)."""
    if Path("/dev/shm").is_dir():
        monkeypatch.setattr(tempfile, "tempdir", "/dev/shm")
    target = tmp_path / "last.ckpt"
    writer = AtomicCheckpointIO()
    writer.save_checkpoint({"version": 0, "w": torch.zeros(1000)}, target)
    old = target.read_bytes()
    with open(target, "rb") as reader:
        writer.save_checkpoint({"version": 1, "w": torch.ones(1000)}, target)
        assert reader.read() == old
    assert torch.load(target, weights_only=True)["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_checkpoint_io_refuses_storage_options(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="storage_options"):
        AtomicCheckpointIO().save_checkpoint({}, tmp_path / "x.ckpt", storage_options={"a": 1})
