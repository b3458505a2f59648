"""The W&B logger goes offline by itself without credentials, and logs a real offline run."""

from __future__ import annotations

from pathlib import Path

import pytest

from callbacks.wandb_logger import AutoOfflineWandbLogger, wandb_credentials_available


@pytest.fixture()
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def test_credentials_are_detected(no_credentials, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert not wandb_credentials_available()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert wandb_credentials_available()
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_credentials_available()


def test_logger_goes_offline_and_writes_an_offline_run(no_credentials, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=r"No W&B API key found.*wandb sync"):
        logger = AutoOfflineWandbLogger(save_dir=str(tmp_path), project="test")
    assert logger.went_offline
    logger.log_metrics({"train/loss": 0.5}, step=1)
    logger.experiment.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_offline_mode_from_the_environment_is_respected(no_credentials, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AutoOfflineWandbLogger(save_dir=str(tmp_path))  # no warning: the user chose offline


def test_cli_closes_its_wandb_run(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path) -> None:
    """A W&B run left open by one CLI call would swallow the next WandbLogger of the process (a notebook, a test)."""
    import wandb

    from audioldm_lora.cli import main
    from tests.cli_helpers import tiny_args

    args = tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, "--trainer.max_steps=1",
                     "--trainer.callbacks=[]", "--trainer.logger.class_path=callbacks.AutoOfflineWandbLogger",
                     "--trainer.logger.init_args.project=test")
    assert main(args) == 0
    assert wandb.run is None
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1
