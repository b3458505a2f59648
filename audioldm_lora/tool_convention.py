"""The one shape of every ``audioldm-lora`` tool: a parser builder, a run function and :func:`run_tool` between them.

What the tools share, and why it lives in one place (issue 14, section 4):

- **One error path.** A mistake the user can fix (a missing file, a bad row, a wrong setting) prints
  ``audioldm-lora TOOL: error: <what is wrong and what to do>`` on stderr and exits with status 2, with no traceback
  and no page of usage; anything else is a bug and keeps its traceback. ``AUDIOLDM_LORA_DEBUG=1`` (the switch of
  ``lightning fit``) shows the full traceback of user errors too.
- **Dashed flags.** Flags are spelt ``--batch-size``; the underscore spelling of any dashed flag (``--batch_size``,
  the older spelling of several tools) is still read, and ``--help`` does not show it.
- **One device default** (:func:`add_device_argument`, :func:`resolve_device`): cuda when a GPU is visible.
- **One progress display** (:class:`ProgressReporter`) for long loops, on stderr so stdout stays parseable.

This module imports neither torch nor rich at import time: a tool's ``--help`` must answer at once.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TextIO

from jsonargparse import ArgumentParser, Namespace

if TYPE_CHECKING:
    from typing_extensions import Self

DEBUG_ENV = "AUDIOLDM_LORA_DEBUG"

# The project's errors a user fixes, as "module:Class". They are looked up only in modules already imported (an
# exception of a class whose module was never imported cannot have been raised), so listing them costs no import.
USER_ERRORS = (
    "audioldm_lora.tool_convention:ToolInputError",
    "audioldm_lora.run_config:RunConfigError",
    "audioldm_lora.sweep.spec:SweepSpecError",
    "audioldm_lora.mos.errors:MosInputError",
    "audioldm_lora.lightning_cli:RunConfigurationError",
    "audioldm_lora.ckpt_path:CheckpointPathError",
    "audioldm_demo.toy_base:ToyBaseError",
    "audioldm_demo.toy_world:WorldError",
    "datamodules.errors:DataSourceError",
    "datamodules.atomic_files:DiskFullError",
    "datamodules.audio:AudioDecodeError",
    "datamodules.clip_folder:ClipFolderError",
    "datamodules.bad_items:BadItemError",
    "lightning_modules.adapter_files:AdapterError",
    "lightning_modules.backbone:ModelLoadError",
    "lightning_modules.errors:SettingError",
    "lightning_modules.hub:HubUploadError",
    "lightning_modules.lora:LoraConfigError",
    "lightning_modules.model_card:ModelCardError",
    "lightning_modules.resume_settings:ResumeSettingsError",
    "metrics.checks:EmbeddingError",
    "metrics.clip_labels:EvaluationInputError",
)
# File problems name the file: also the user's to fix (a full disk is DiskFullError). Other OSErrors (an I/O error)
# keep their traceback.
FILE_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
)
EXIT_BAD_INPUT = 2


class ToolInputError(ValueError):
    """Bad input to a tool that has no error class of its own; the message says what to fix."""


def debugging() -> bool:
    """Whether ``AUDIOLDM_LORA_DEBUG`` asks for full messages and tracebacks."""
    return os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no")


def user_errors() -> tuple[type[BaseException], ...]:
    """The error classes printed as a message (exit status 2): :data:`USER_ERRORS` of imported modules, and
    :data:`FILE_ERRORS`."""
    found: list[type[BaseException]] = list(FILE_ERRORS)
    for entry in USER_ERRORS:
        module_name, _, class_name = entry.partition(":")
        module = sys.modules.get(module_name)
        error_class = getattr(module, class_name, None) if module is not None else None
        if isinstance(error_class, type) and issubclass(error_class, BaseException):
            found.append(error_class)
    return tuple(found)


def error_message(error: BaseException) -> str:
    """The message of a user error; a file error reads ``PATH: reason`` rather than ``[Errno 2] ...: 'PATH'``."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror and len(error.args) == 2:
        return f"{error.filename}: {error.strerror}"
    return str(error) or type(error).__name__


def report_error(tool: str, message: str) -> int:
    """Print ``audioldm-lora TOOL: error: MESSAGE`` (and how to see more) on stderr; returns exit status 2."""
    print(f"audioldm-lora {tool}: error: {message}\n({DEBUG_ENV}=1 shows the traceback)", file=sys.stderr)
    return EXIT_BAD_INPUT


# ----------------------------------------------------------------------------------------------------- parsing
def dashed_flag(flag: str) -> str:
    """``--batch_size`` -> ``--batch-size`` (the dotted keys of nested settings, ``--recipe.unet_steps``, are
    config keys and keep their field names)."""
    return "--" + flag[2:].replace("_", "-") if flag.startswith("--") and "." not in flag else flag


def legacy_flag(flag: str) -> str:
    """``--batch-size`` -> ``--batch_size``: the hidden spelling :func:`dashed_argv` still reads."""
    return "--" + flag[2:].replace("-", "_") if flag.startswith("--") else flag


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and of its subcommands' parsers."""
    found = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                found |= option_strings(subparser)
    return found


def dashed_argv(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``argv`` with the underscore spelling of each dashed flag of ``parser`` replaced by the dashed one
    (``--batch_size 3``, ``--batch_size=3``, ``--genre_column+=x``); arguments after ``--`` are left alone.

    Why rewrite argv rather than register the old spelling as a second option string: argparse then lists both
    spellings in ``--help``, and reports every abbreviation (``--batch``) as ambiguous between the two; a second,
    hidden argument with the same destination has the same abbreviation problem and drops the setting from
    jsonargparse's ``dump``. Rewriting keeps one option per setting.
    """
    known = option_strings(parser)
    rewritten: list[str] = []
    for position, token in enumerate(argv):
        if token == "--":
            rewritten.extend(argv[position:])
            break
        name, equals, value = token.partition("=")
        if name.startswith("--") and "_" in name and name not in known and dashed_flag(name) in known:
            token = dashed_flag(name) + equals + value
        rewritten.append(token)
    return rewritten


_PARSER_KEY = re.compile(r'(?:Parser key|Key) "([\w.]+)"')
_REQUIRED = re.compile(r"(the following arguments are required: )(.*)")


class ToolParser(ArgumentParser):
    """The tools' ArgumentParser: reads the underscore spelling of dashed flags (:func:`dashed_argv`) and reports a
    bad command line as ``PROG: error: MESSAGE`` with exit status 2, without a page of usage."""

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """As ArgumentParser's; ``choices`` of strings become a ``Literal`` type, which ``--help`` prints as the
        choices (jsonargparse checks plain choices with a function of its own, printed as ``<function <lambda>>``)."""
        choices = kwargs.get("choices")
        if choices is not None and kwargs.get("type") in (None, str):
            kwargs["type"] = Literal[tuple(kwargs.pop("choices"))]
        return super().add_argument(*args, **kwargs)

    def parse_args(self, args: Sequence[str] | None = None, *rest: Any, **kwargs: Any) -> Namespace:  # type: ignore[override]
        argv = sys.argv[1:] if args is None else list(args)
        return super().parse_args(dashed_argv(self, argv), *rest, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or debugging():  # jsonargparse catches these itself, or the user asked for all
            super().error(message, ex)
        prog = (getattr(ex, "subcommand_parser", None) or self).prog.replace(" [options]", "")
        subcommand = re.search(r'(?:required: |key ")(\w+)\.', message)
        if subcommand and subcommand.group(1) in _subcommand_names(self):
            prog = f"{self.prog} {subcommand.group(1)}"  # "build.system" is a setting of "mos build"
        known = option_strings(self)
        message = _PARSER_KEY.sub(lambda m: _flag_for_key(m.group(1), known, m.group(0)), message)
        message = _REQUIRED.sub(lambda m: m.group(1) + ", ".join(
            _flag_for_key(key.strip(), known, key.strip().split(".")[-1]) for key in m.group(2).split(",")), message)
        message = "\n  ".join(line.strip() for line in message.strip().splitlines() if line.strip())
        sys.stderr.write(f"{prog}: error: {message}\n(`{prog} --help` lists the flags)\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _subcommand_names(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices}


def _flag_for_key(key: str, known: set[str], original: str) -> str:
    """The flag that sets jsonargparse's key ``batch_size`` (``--batch-size``), else the original text."""
    for flag in ("--" + key.split(".")[-1].replace("_", "-"), "--" + key):
        if flag in known:
            return flag
    return original


def tool_parser(tool: str, description: str | None = None) -> ToolParser:
    """The parser of ``audioldm-lora TOOL``."""
    return ToolParser(prog=f"audioldm-lora {tool}", description=description)


def run_tool(
    tool: str,
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    run: Callable[[Namespace], int | None],
    errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and call ``run``; returns the exit status.

    ``--help`` returns 0 and a bad command line 2 (the parser's message). A user error raised by ``run``
    (:func:`user_errors`, plus ``errors``) prints ``audioldm-lora TOOL[ SUBCOMMAND]: error: MESSAGE`` and returns 2;
    with ``AUDIOLDM_LORA_DEBUG`` set it propagates with its traceback.
    """
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else EXIT_BAD_INPUT)
    try:
        return int(run(args) or 0)
    except Exception as error:
        if debugging() or not isinstance(error, user_errors() + tuple(errors)):
            raise
        return report_error(" ".join([tool, *_subcommands(parser, args)]), error_message(error))


def _subcommands(parser: argparse.ArgumentParser, args: Namespace) -> list[str]:
    """The chosen subcommand (``mos build``), for the error's prefix."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = args.get(action.dest) if isinstance(args, Namespace) else None
            return [str(chosen)] if chosen else []
    return []


# ------------------------------------------------------------------------------------------------ the device
def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device`` with the project's one default (:func:`resolve_device`)."""
    parser.add_argument("--device", type=str | None, default=None, help="cuda, cpu, ... (default: cuda if present).")


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu`` (imports torch: call it after parsing)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | None) -> str:
    """``--device``, else :func:`default_device`."""
    return device or default_device()


# ---------------------------------------------------------------------------------------------- the progress
def add_progress_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--progress`` (default true): whether :class:`ProgressReporter` shows progress over ``what``."""
    parser.add_argument("--progress", type=bool, default=True,
                        help=f"show progress over {what} on stderr (a bar on a terminal, else a line now and then).")


class ProgressReporter:
    """Progress of one long loop, on stderr: a bar (done/total, elapsed, time left) on a terminal; elsewhere (logs,
    CI) a line at most every ``interval`` seconds with what is left, and a last line when any was printed.

    Use it as a context manager and feed it ``reporter(done, total)`` (the callback the loops take:
    ``build_latent_cache(progress=...)``, ``validate_source``, ``embed_files``), or :meth:`advance`;
    :meth:`describe` changes the label (e.g. the sampler step). ``enabled=False`` shows nothing.
    """

    def __init__(self, description: str, unit: str, total: int | None = None, enabled: bool = True,
                 interval: float = 30.0, stream: TextIO | None = None) -> None:
        self.description, self.unit, self.total, self.enabled = description, unit, total, enabled
        self.title = description  # the last line's label; describe() changes only the current one
        self.interval = interval
        self.done = 0
        self._stream = stream
        self._bar: Any = None
        self._task: Any = None
        self._start = self._last_line = time.monotonic()
        self._lines = 0

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def __enter__(self) -> Self:
        self._start = self._last_line = time.monotonic()
        if self.enabled and _is_terminal(self.stream):
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn(self.unit), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=Console(file=self.stream), redirect_stdout=False, redirect_stderr=False)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.enabled and kind is None and self._lines:
            elapsed = timedelta(seconds=round(time.monotonic() - self._start))
            self._write(f"{self.title}: {self._count()} {self.unit}, done in {elapsed}")

    def __call__(self, done: int, total: int | None = None) -> None:
        """``done`` of ``total`` (None: the total so far, or unknown)."""
        self.done = done
        self.total = total if total is not None else self.total
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=self.total)
        elif self.enabled and time.monotonic() - self._last_line >= self.interval:
            self._write(self.line())

    def advance(self, count: int = 1) -> None:
        """``count`` more done."""
        self(self.done + count)

    def describe(self, text: str) -> None:
        """A new label for what is under way (the sampler step, the stage)."""
        self.description = text
        if self._bar is not None:
            self._bar.update(self._task, description=text)

    def line(self) -> str:
        """The progress as one line: ``caching: 120/480 clips (25%), 0:00:35 elapsed, about 0:01:45 left``."""
        elapsed = time.monotonic() - self._start
        text = f"{self.description}: {self._count()} {self.unit}"
        if self.total:
            text += f" ({100 * self.done / self.total:.0f}%)"
        text += f", {timedelta(seconds=round(elapsed))} elapsed"
        if self.total and self.done:
            left = elapsed * (self.total - self.done) / self.done
            text += f", about {timedelta(seconds=round(max(left, 0.0)))} left"
        return text

    def _count(self) -> str:
        return f"{self.done}/{self.total}" if self.total is not None else str(self.done)

    def _write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
        self._last_line = time.monotonic()
        self._lines += 1


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
