"""Build LightningCLI argument lists for the tiny recipe pointed at test fixtures and a temporary run folder."""

from __future__ import annotations

from pathlib import Path

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml")


def tiny_args(command: str, model_dir: Path, data_root: Path, run_dir: Path, *extra: str,
              config: str | Path = CONFIG) -> list[str]:
    """``<command> --config configs/tiny.yaml`` (or ``config``) with the fixtures' model and data, writing under
    ``run_dir``."""
    return [
        command,
        "--config",
        str(config),
        f"--model.init_args.pretrained_model={model_dir}",
        f"--data.init_args.root={data_root}",
        f"--trainer.default_root_dir={run_dir}",
        f"--trainer.logger.init_args.save_dir={run_dir}",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]
