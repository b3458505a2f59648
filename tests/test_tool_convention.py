"""Every tool has one shape: dashed flags (old underscore spellings still read), one error path (exit status 2,
``audioldm-lora TOOL: error:``, no traceback), one device default, and progress for long loops on stderr."""

from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from audioldm_lora.cli import TOOLS
from audioldm_lora.tool_convention import (
    USER_ERRORS,
    ProgressReporter,
    ToolInputError,
    dashed_argv,
    option_strings,
    run_tool,
    tool_parser,
    user_errors,
)

ROOT = Path(__file__).resolve().parents[1]
# A long flag spelt with an underscore before any dot (``--batch_size``); nested settings (``--recipe.unet_steps``)
# are config keys and keep their field names.
UNDERSCORE_FLAG = re.compile(r"(?<![\w.-])--[a-z0-9]+(?:-[a-z0-9]+)*_")


def tool_module(tool: str):
    return importlib.import_module(TOOLS[tool])


def help_texts(tool: str) -> list[str]:
    parser = tool_module(tool).build_parser()
    texts = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            texts += [subparser.format_help() for subparser in action.choices.values()]
    return texts


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_tool_has_the_one_shape(tool: str) -> None:
    module = tool_module(tool)
    assert callable(module.build_parser) and callable(module.run) and callable(module.main)
    parser = module.build_parser()
    assert parser.prog == f"audioldm-lora {tool}"
    device = parser._option_string_actions.get("--device")
    if device is not None:  # the one default, from tool_convention.add_device_argument
        assert device.default is None and "default: cuda if present" in device.help


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_help_lists_only_dashed_flags(tool: str, capsys: pytest.CaptureFixture[str]) -> None:
    for text in help_texts(tool):
        assert not UNDERSCORE_FLAG.findall(text), text
        assert "<function" not in text and "lambda" not in text, text  # choices print as {a,b}, not a repr
    assert tool_module(tool).main(["--help"]) == 0
    assert not UNDERSCORE_FLAG.findall(capsys.readouterr().out)


LEGACY = [
    ("cache", ["--config", "c.yaml"], "--batch_size", "3"),
    ("cache", ["--config", "c.yaml"], "--cache_dir", "latents"),
    ("cache", ["--config", "c.yaml"], "--crops_per_file", "2"),
    *[("prepare", ["--out", "out"], flag, value) for flag, value in [
        ("--max_listed", "7"), ("--hf_dataset", "org/set"), ("--caption_template", "{genre} music"),
        ("--caption_fallback", "null"), ("--hf_split", "train"), ("--hf_config", "small"),
        ("--audio_column", "wav"), ("--caption_column", "text"), ("--genre_column", "style"),
    ]],
    ("sweep", [], "--runs_dir", "runs/x"),
    ("synth-data", ["data"], "--clips_per_genre", "3"),
    ("build-toy-base", [], "--log_every", "5"),
    ("evaluate", [], "--batch_size", "2"),  # any dashed flag, not only the ones that used to have underscores
    ("generate", ["--out", "o"], "--negative_prompt", "noise"),
]


@pytest.mark.parametrize(("tool", "base", "legacy", "value"), LEGACY)
def test_old_underscore_spellings_still_parse(tool: str, base: list[str], legacy: str, value: str) -> None:
    parser = tool_module(tool).build_parser()
    dashed = legacy.replace("_", "-")
    assert dashed in option_strings(parser) and legacy not in option_strings(parser)
    expected = parser.parse_args([*base, dashed, value])
    assert parser.parse_args([*base, legacy, value]) == expected
    assert parser.parse_args([*base, f"{legacy}={value}"]) == expected
    assert expected[legacy[2:]] != parser.parse_args(base)[legacy[2:]]  # the flag did set something


def test_argv_rewriting_is_exact() -> None:
    parser = tool_parser("x")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--names", type=list[str], default=[])
    parser.add_argument("--recipe_name", type=str, default="")  # defined with an underscore: left as it is
    argv = ["--batch_size=2", "--names_x", "--names+=a_b", "--recipe_name", "v", "--", "--batch_size"]
    assert dashed_argv(parser, argv) == ["--batch-size=2", "--names_x", "--names+=a_b", "--recipe_name", "v", "--",
                                         "--batch_size"]
    assert parser.parse_args(["--batch", "4"]).batch_size == 4  # abbreviations are not made ambiguous


def test_mos_subcommands_read_dashed_and_underscore_flags(tmp_path: Path) -> None:
    parser = tool_module("mos").build_parser()
    args = parser.parse_args(["build", "--system", "a=x", "--out", "o", "--scale_label", "Fit"])
    assert args.command == "build" and args.build.scale_label == "Fit"
    args = parser.parse_args(["analyze", "answers.json", "--key", "k", "--out", "o", "--n-resamples", "5"])
    assert args.analyze.n_resamples == 5


def bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "blank.txt").write_text("\n  \n", encoding="utf-8")
    (tmp / "full").mkdir()
    (tmp / "full" / "x.txt").write_text("x", encoding="utf-8")
    return [
        (["cache", "--config", str(tmp / "missing.yaml")], "missing.yaml does not exist"),
        (["cache", "--config", "c.yaml", "--batch_size", "many"], "--batch-size"),
        (["prepare", "--root", str(tmp / "no-data"), "--out", str(tmp / "out")], "no-data"),
        (["generate", "--prompts", str(tmp / "blank.txt"), "--base", "x", "--out", str(tmp / "g")], "holds no prompt"),
        (["evaluate", "--generated", str(tmp / "none"), "--reference", str(tmp / "none")], "does not exist"),
        (["sweep-report", str(tmp / "no-sweep")], "no-sweep"),
        (["mos", "build", "--system", f"a={tmp / 'a'}", "--out", str(tmp / "page")], "folder not found"),
        (["build-tiny", str(tmp / "full")], "already exists"),
        (["synth-data", str(tmp / "s"), "--genres", "[polka]"], "Unknown synthetic genre"),
        (["merge", "--out", str(tmp / "m")], "at least one --adapter"),
    ]


def test_bad_input_is_one_message_and_status_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Every tool's bad input: one line on stderr, status 2. The first case runs as a user would (a process of
    its own, through ``python -m``); the rest call the same entry point in this process, which is much faster."""
    from audioldm_lora.cli import main

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("AUDIOLDM_LORA_DEBUG", None)
    monkeypatch.delenv("AUDIOLDM_LORA_DEBUG", raising=False)
    for number, (argv, expected) in enumerate(bad_inputs(tmp_path)):
        if number == 0:
            result = subprocess.run([sys.executable, "-m", "audioldm_lora", *argv], cwd=ROOT, capture_output=True,
                                    text=True, timeout=300, env=env, check=False)
            code, stderr = result.returncode, result.stderr
        else:
            try:
                code = main(argv)
            except SystemExit as exit_:
                code = exit_.code
            stderr = capsys.readouterr().err
        prefix = " ".join(argv[:2]) if argv[0] == "mos" else argv[0]
        assert code == 2, (argv, stderr)
        assert f"audioldm-lora {prefix}: error: " in stderr, (argv, stderr)
        assert expected in stderr, (argv, stderr)
        assert "Traceback" not in stderr and "usage:" not in stderr, (argv, stderr)


def test_debug_switch_and_bugs_keep_their_traceback(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    parser = tool_parser("probe")

    def bad_input(_):
        raise ToolInputError("the probe needs a --thing")

    def bug(_):
        raise KeyError("a bug")

    monkeypatch.delenv("AUDIOLDM_LORA_DEBUG", raising=False)
    assert run_tool("probe", parser, [], bad_input) == 2
    assert "audioldm-lora probe: error: the probe needs a --thing" in capsys.readouterr().err
    with pytest.raises(KeyError):
        run_tool("probe", parser, [], bug)
    assert run_tool("probe", parser, [], lambda _: (_ for _ in ()).throw(FileNotFoundError(2, "No such file", "f"))) == 2
    assert "audioldm-lora probe: error: f: No such file" in capsys.readouterr().err
    monkeypatch.setenv("AUDIOLDM_LORA_DEBUG", "1")
    with pytest.raises(ToolInputError):
        run_tool("probe", parser, [], bad_input)


def test_the_user_error_list_names_real_error_classes() -> None:
    for entry in USER_ERRORS:
        module_name, _, class_name = entry.partition(":")
        error_class = getattr(importlib.import_module(module_name), class_name)
        assert issubclass(error_class, Exception), entry
    assert len(user_errors()) >= len(USER_ERRORS)  # every one is found once its module is imported


def test_progress_lines_off_a_terminal() -> None:
    stream = io.StringIO()
    with ProgressReporter("caching", "files", 4, interval=0.0, stream=stream) as progress:
        progress(1)
        progress.advance(1)
        progress(4, 4)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("caching: 1/4 files (25%)") and "left" in lines[0]
    assert lines[-1].startswith("caching: 4/4 files, done in")
    quiet = io.StringIO()
    with ProgressReporter("caching", "files", 4, enabled=False, stream=quiet) as progress:
        progress(4, 4)
    with ProgressReporter("caching", "files", interval=3600.0, stream=quiet) as progress:
        progress(3)  # no line before the interval has passed, and then no last line either
    assert quiet.getvalue() == ""


def test_progress_bar_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    with ProgressReporter("generating", "clips", 2, stream=stream) as progress:
        progress.describe("generating, step 3/5")
        progress.advance(2)
    assert "2/2" in stream.getvalue() and "clips" in stream.getvalue()


def test_latent_cache_reports_progress(synthetic_root: Path, tmp_path: Path) -> None:
    from datamodules import GenreAudioDataModule
    from datamodules.latent_cache import build_latent_cache
    from tests.test_latent_cache import FakeEncoders

    dm = GenreAudioDataModule(root=str(synthetic_root), duration=0.64, val_fraction=0.25, batch_size=2)
    dm.setup("fit")
    for records in (dm.split_records(), list(dm.split_records())):  # a stream (total unknown) and a list
        calls: list[tuple[int, int | None]] = []
        report = build_latent_cache(tmp_path / "cache", records, FakeEncoders().encoders(), 0.64, 2, dm.identity(),
                                    batch_size=4, progress=lambda done, total, calls=calls: calls.append((done, total)))
        count = sum(report.items.values()) + len(report.bad)
        done = [done for done, _ in calls]
        assert done[:count] == list(range(1, count + 1)) and count == 15  # one call per record
        assert calls[-1] == (count, count)  # a stream's total is known at its end: one more call says so
        assert len(calls) == (count + 1 if isinstance(records, type(dm.split_records())) else count)


def test_validation_reports_progress(synthetic_root: Path) -> None:
    from datamodules.captions import CaptionPolicy
    from datamodules.sources import SourceSettings, make_source
    from datamodules.validate import validate_source

    calls: list[tuple[int, int | None]] = []
    report = validate_source(make_source(CaptionPolicy("{genre} music"), SourceSettings(root=str(synthetic_root))),
                             progress=lambda done, total: calls.append((done, total)))
    assert calls == [(done, 15) for done in range(1, 16)] and len(report.good) == 15


def test_embedding_reports_progress(synthetic_root: Path) -> None:
    from metrics import MelStatisticsEmbedder
    from metrics.cache import embed_files

    paths = sorted(synthetic_root.rglob("*.wav"))[:5]
    calls: list[tuple[int, int | None]] = []
    values = embed_files(paths, MelStatisticsEmbedder(), None, batch_size=2,
                         progress=lambda done, total: calls.append((done, total)))
    assert values.shape[0] == 5 and calls == [(0, 5), (2, 5), (4, 5), (5, 5)]
