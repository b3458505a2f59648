"""LightningCLI for ``fit``, ``validate``, ``test`` and ``predict`` over any LightningModule/DataModule subclass.

Imported by :func:`audioldm_lora.cli.main` only for those subcommands (it imports Lightning and, through the
callbacks, torch).

Errors read like the tools' own: ``audioldm-lora fit: error: <what is wrong and what to do>``, exit status 2, no
traceback and no page of usage, for the errors a user fixes (the one registry,
:func:`audioldm_lora.tool_convention.user_errors`); any other exception is a bug and keeps its traceback. The data
module is built before the model, so a wrong data path is reported before a base model is loaded (or downloaded).
jsonargparse reports a misspelt key or a constructor's error inside a union error with every argument of the class
("Does not validate against any of the Union subtypes ... Given value: Namespace(...)"); the lines that say what is
wrong are kept, the rest dropped. ``AUDIOLDM_LORA_DEBUG=1`` shows the
full message and traceback.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from lightning import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO

from audioldm_lora.ckpt_path import checked_ckpt_path
from audioldm_lora.cli import DESCRIPTION
from audioldm_lora.config_keys import suggest_key
from audioldm_lora.run_noise import silence_run_noise
from audioldm_lora.tool_convention import DEBUG_ENV, debugging, user_errors
from callbacks.adapter_export import AdapterExport
from callbacks.checkpoint_io import AtomicCheckpointIO
from callbacks.progress_bar import StepProgressBar

# Lines of jsonargparse's union errors that never say what is wrong.
_NOISE = re.compile(
    r"^(Does not validate against any of the Union subtypes|Subtypes:|Errors:|Given value|"
    r"- Expected a <class 'NoneType'>)"
)


class RunConfigurationError(ValueError):
    """A setting of a fit/validate/test/predict run is wrong (a constructor refused it); the message names it."""


def check_output_folder(folder: str, setting: str) -> None:
    """Refuse, before any model loads, an output folder that cannot be created: a file stands where it or one of
    its parents should be, or the nearest existing parent is not writable.

    Raises:
        RunConfigurationError: naming the setting, the folder and what is in the way.
    """
    target = Path(folder).expanduser().absolute()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunConfigurationError(f"{setting}: {target} cannot be created, {existing} is a file; choose another "
                                    "folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunConfigurationError(f"{setting}: {target} cannot be written ({existing} is not writable); choose a "
                                    "folder you can write.")


def concise_message(message: str) -> str:
    """jsonargparse's error message without the lines that repeat the given value or list the union's types."""
    kept = []
    for line in message.splitlines():
        text = line.strip()
        if text and not _NOISE.match(text):
            kept.append(text.removeprefix("- "))
    return "\n  ".join(kept) if kept else message


def root_cause(error: BaseException) -> BaseException:
    """The innermost ``__cause__`` of ``error`` (the constructor's own exception under jsonargparse's wrappers)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


class ConciseArgumentParser(LightningArgumentParser):
    """LightningArgumentParser whose errors are one short message and a hint, not a page of usage."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or debugging():  # jsonargparse catches these itself, or the user asked for all
            super().error(message, ex)
        prog = (getattr(ex, "subcommand_parser", None) or self).prog.replace(" [options]", "")
        suggestion = suggest_key(message, prog)
        hint = suggestion or f"`{prog} --help` lists the settings"
        sys.stderr.write(f"{prog}: error: {concise_message(message)}\n({hint}; {DEBUG_ENV}=1 shows the full message)\n")
        raise SystemExit(2)


class AudioLDMLoRACLI(LightningCLI):
    """LightningCLI with adapter export always present (``--adapter_export.every_n_steps``), atomic checkpoint
    writes (:class:`callbacks.checkpoint_io.AtomicCheckpointIO`, unless ``trainer.plugins`` names a CheckpointIO)
    and :class:`callbacks.progress_bar.StepProgressBar` unless another progress bar is configured."""

    def add_arguments_to_parser(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_lightning_class_args(AdapterExport, "adapter_export")

    def instantiate_classes(self) -> None:
        """Build data, model, callbacks and trainer. A constructor's user error (a setting it refuses) becomes
        :class:`RunConfigurationError` with that constructor's own message (jsonargparse would wrap it in a union
        error); any other exception is a bug and propagates with its traceback."""
        try:
            self._check_data_first()
            super().instantiate_classes()
        except Exception as error:
            cause = root_cause(error)
            if debugging() or not isinstance(cause, user_errors()):
                raise
            raise RunConfigurationError(str(cause)) from error

    def _check_data_first(self) -> None:
        """Build the configured data module once on its own, so that its constructor's checks (the data root, the
        manifest, fractions, duration: cheap by contract) run before the model's constructor loads a base model.
        jsonargparse instantiates the model first; the data module it builds after is the one the run uses."""
        config = self.config.get(str(self.subcommand), self.config) if self.subcommand else self.config
        data = config.get("data")
        if data is None or not data.get("class_path"):
            return
        module_name, _, class_name = str(data["class_path"]).rpartition(".")
        data_class = getattr(importlib.import_module(module_name), class_name)
        init_args = data.get("init_args")
        data_class(**(init_args.as_dict() if init_args is not None else {}))

    def before_instantiate_classes(self) -> None:
        # Checkpoints hold only tensors and plain types: load them with weights_only=True whatever torch's default
        # (False before torch 2.6), so an untrusted .ckpt cannot run code; `--weights_only=false` opts out.
        config = self.config.get(str(self.subcommand), self.config) if self.subcommand else self.config
        if "weights_only" in config and config["weights_only"] is None:
            config["weights_only"] = True
        if self.subcommand and "ckpt_path" in config:
            config["ckpt_path"] = checked_ckpt_path(str(self.subcommand), config["ckpt_path"])
        trainer = config.get("trainer") or {}
        logger = trainer.get("logger")
        folders = {"trainer.default_root_dir": trainer.get("default_root_dir")}
        if logger is not None and not isinstance(logger, bool) and hasattr(logger, "get"):
            folders["trainer.logger.init_args.save_dir"] = (logger.get("init_args") or {}).get("save_dir")
        for setting, folder in folders.items():
            if folder:
                check_output_folder(str(folder), setting)

    def _parse_ckpt_path(self) -> None:
        """Keep the settings the user gave. Lightning 2.6's LightningCLI replaces the model's settings with those
        stored in ``--ckpt_path`` (``LightningCLI._parse_ckpt_path``), so a changed adapter rank or sampling
        setting on the command line is dropped without a word. Here the run is built as configured and
        :func:`lightning_modules.resume_settings.check_resume_settings` refuses a resume whose training settings
        differ from the checkpoint's, naming each one."""

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        plugins = kwargs.pop("plugins", None) or self._get(self.config_init, "trainer", default={}).get("plugins")
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins.append(AtomicCheckpointIO())
        trainer_config = self._get(self.config_init, "trainer", default={})
        callbacks = kwargs.pop("callbacks", None) or trainer_config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        if trainer_config.get("enable_progress_bar") is not False and not any(
            isinstance(callback, ProgressBar) for callback in callbacks
        ):  # Lightning's default bar reads "Epoch 2/-2 ... v_num: 0.000" in a step-bounded run
            callbacks.append(StepProgressBar())
        return super().instantiate_trainer(plugins=plugins, callbacks=callbacks, **kwargs)


def build_cli(args: list[str] | None = None, run: bool = True) -> AudioLDMLoRACLI:
    """The LightningCLI over any LightningModule/DataModule subclass (``class_path`` in the config).

    ``args=None`` reads ``sys.argv``; a list is for calls from Python (tests, notebooks).
    """
    silence_run_noise()
    return AudioLDMLoRACLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs={"parser_mode": "omegaconf", "description": DESCRIPTION},
        parser_class=ConciseArgumentParser,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        args=args,
        run=run,
    )


def run_cli(args: list[str] | None = None) -> int:
    """Run a Lightning subcommand; a user error prints ``<prog>: error: <message>`` and returns 2."""
    try:
        build_cli(args)
    except Exception as error:
        if debugging() or not isinstance(error, user_errors()):
            raise
        invoked = Path(sys.argv[0]).name if args is None else ""
        program = invoked if invoked in ("lightning", "audioldm-lora") else "audioldm-lora"  # as the user typed it
        command = " ".join([program, *(sys.argv[1:2] if args is None else args[:1])])
        print(f"{command}: error: {error}\n({DEBUG_ENV}=1 shows the traceback)", file=sys.stderr)
        return 2
    return 0
