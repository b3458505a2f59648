"""Helpers of the resume and stop tests: a fit with the shipped tiny config, its last.ckpt, and exact equality."""

from __future__ import annotations

from pathlib import Path

import torch

from audioldm_lora.lightning_cli import build_cli
from callbacks.ab_sampling import ABSampling
from callbacks.evaluation import GenreEvaluation
from tests.cli_helpers import CONFIG, tiny_args

# Batch 3 over the fixture's 9 training files: 3 steps per epoch, so step 10 is in the middle of an epoch.
MID_EPOCH = ["--data.init_args.batch_size=3", "--model.init_args.caption_dropout=0.5",
             "--model.init_args.noise_offset=0.1"]


def fit(model_dir: Path, data_root: Path, run_dir: Path, max_steps: int, *extra: str, ckpt: Path | None = None,
        config: str | Path = CONFIG):
    """One ``lightning fit`` with the shipped tiny config (or ``config``); ``ckpt`` resumes."""
    resume = [f"--ckpt_path={ckpt}"] if ckpt is not None else []
    return build_cli(tiny_args("fit", model_dir, data_root, run_dir, f"--trainer.max_steps={max_steps}", *extra,
                               *resume, config=config))


def tiny_config(out: Path, config: str | Path = CONFIG, reference_dir: Path | None = None,
                checkpoint_every: int | None = None) -> Path:
    """configs/tiny.yaml (or ``config``) written to ``out`` with, optionally:

    - ``reference_dir`` given to GenreEvaluation: what a user of WebDataset shards sets, since an unindexed stream
      has no validation clips to compare with;
    - checkpoints every ``checkpoint_every`` steps, all kept (``save_top_k: -1``): an uninterrupted run then holds
      the checkpoint a resume starts from, written at the same point of the loop as the ``last.ckpt`` of a run
      stopped there (callbacks/resumable_checkpoint.py), which is what a pre-empted job resumes from.
    """
    import yaml

    document = yaml.safe_load(Path(config).read_text())
    callbacks = {c["class_path"]: c for c in document["trainer"]["callbacks"]}
    if reference_dir is not None:
        callbacks["callbacks.GenreEvaluation"]["init_args"]["reference_dir"] = str(reference_dir)
    if checkpoint_every is not None:
        callbacks["callbacks.ResumableCheckpoint"]["init_args"].update(every_n_train_steps=checkpoint_every,
                                                                       save_top_k=-1)
    out.write_text(yaml.safe_dump(document))
    return out


def last_checkpoint(run_dir: Path) -> Path:
    """The run's ``last.ckpt``."""
    (path,) = run_dir.glob("*/version_*/checkpoints/last.ckpt")
    return path


def checkpoint_at(run_dir: Path, step: int) -> Path:
    """The run's scheduled checkpoint of ``step`` (kept by a :func:`tiny_config` with ``checkpoint_every``)."""
    (path,) = run_dir.glob(f"*/version_*/checkpoints/*-step={step}.ckpt")
    return path


def lora_state(cli) -> dict[str, torch.Tensor]:
    """Every site's LoRA weights."""
    return {k: v.detach().clone() for k, v in cli.model.state_dict().items() if "lora_" in k}


def assert_same_training(straight, resumed, sites: set[str]) -> None:
    """LoRA weights, AdamW moments and the last evaluation's scores bit-identical (deterministic CPU kernels),
    after real training."""
    assert straight.trainer.global_step == resumed.trainer.global_step
    expected, actual = lora_state(straight), lora_state(resumed)
    assert expected.keys() == actual.keys()
    assert {key.split(".")[0] for key in expected} == sites
    assert any(v.abs().sum() > 0 for k, v in expected.items() if "lora_B" in k)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=0, rtol=0, msg=key)
    # The last validation's evaluation (configs/tiny.yaml's GenreEvaluation): the same scores, base and LoRA.
    reports = [next(c for c in run.trainer.callbacks if isinstance(c, GenreEvaluation)).last_report
               for run in (straight, resumed)]
    assert reports[0]["step"] == reports[1]["step"] == straight.trainer.global_step
    assert reports[0]["rows"] == reports[1]["rows"]
    assert_same_ab_rounds(straight, resumed)
    straight_opt = straight.trainer.optimizers[0].state_dict()["state"]
    resumed_opt = resumed.trainer.optimizers[0].state_dict()["state"]
    assert straight_opt.keys() == resumed_opt.keys() and straight_opt
    for index in straight_opt:
        for moment in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(resumed_opt[index][moment], straight_opt[index][moment], atol=0, rtol=0)


def assert_same_ab_rounds(straight, resumed) -> None:
    """A/B sampling (when the config has it): the resumed run logs the rounds the uninterrupted run logged after the
    step it resumed from (no second baseline at that step), with bit-identical A and B clips."""
    samplers = [[c for c in run.trainer.callbacks if isinstance(c, ABSampling)] for run in (straight, resumed)]
    if not samplers[0]:
        return
    start = torch.load(resumed.trainer.ckpt_path, weights_only=False)["global_step"]
    straight_rounds = {round_["step"]: round_ for round_ in samplers[0][0].history}
    resumed_rounds = {round_["step"]: round_ for round_ in samplers[1][0].history}
    assert list(resumed_rounds) == [step for step in straight_rounds if step > start], (start, list(straight_rounds))
    for step, round_ in resumed_rounds.items():
        for expected, actual in zip(straight_rounds[step]["pairs"], round_["pairs"], strict=True):
            for arm in ("lora", "base"):
                torch.testing.assert_close(actual[arm], expected[arm], atol=0, rtol=0, msg=f"step {step} {arm}")
