"""`lightning fit` errors read like the tools' own: the problem and the fix in a few lines, exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

import audioldm_lora.lightning_cli  # noqa: F401  (Lightning's log handlers bind to the real stderr, not capsys's)
from audioldm_lora.cli import main
from lightning_modules.backbone import ModelLoadError
from tests.cli_helpers import CONFIG, tiny_args


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    try:
        code = main(args)
    except SystemExit as exit_:
        code = int(exit_.code)
    return code, capsys.readouterr().err


def assert_concise(err: str) -> None:
    """No traceback, no repeated arguments; the message (from ``error:`` on) fits in a few lines."""
    assert "Traceback" not in err and "Given value" not in err and "Union subtypes" not in err
    lines = err.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if ": error: " in line)  # Lightning's INFO lines come before
    assert len(lines) - start <= 5, err


def test_a_misspelt_key_names_the_key(capsys, tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path) -> None:
    code, err = run(capsys, tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, "--model.init_args.caption_dropot=0.2"))
    assert code == 2
    assert "Option 'caption_dropot' is not accepted" in err and "audioldm_demo.TinyAudioLDMLoRA" in err
    # The closest key, and a help command that lists it (`fit --help` lists no init_args of a subclass).
    assert "did you mean caption_dropout?" in err and "--model.help audioldm_demo.TinyAudioLDMLoRA` lists every key" in err
    assert_concise(err)


def test_an_old_flat_adapter_key_shows_its_new_spelling(capsys, tiny_model_dir: Path, synthetic_root: Path,
                                                        tmp_path: Path) -> None:
    """Keys of the per-site constructor arguments that ``adapters`` replaced, on the command line or in a YAML
    config, are refused with their new spelling."""
    code, err = run(capsys, tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, "--model.init_args.lora_rank=4"))
    assert code == 2
    assert "lora_rank is now adapters: {unet: {rank: ...}} in YAML, or --model.init_args.adapters.unet.rank=..." in err
    old = tmp_path / "old.yaml"
    old.write_text(Path(CONFIG).read_text().replace("    adapters:\n", "    text_encoder_lora_targets: WqWv\n    adapters:\n"))
    code, err = run(capsys, tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, config=old))
    assert code == 2 and "text_encoder_lora_targets is now adapters: {text_encoder: {targets: ...}}" in err
    assert_concise(err)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("--model.init_args.adapters.unet.targets=[to_qq]", "['to_qq'] match no module of the unet"),
        ("--model.init_args.adapters.text_encoder.targets=Wk",
         "model.init_args.adapters.text_encoder.targets: Unknown LoRA target preset 'Wk' for the text_encoder"),
        ("--model.init_args.adapters.unet.targets=none",
         "No adapter site is switched on (model.init_args.adapters has unet: targets none)"),
        ("--model.init_args.caption_dropout=1.5", "caption_dropout must be in [0, 1), got 1.5"),
        ("--model.init_args.sample_duration=-2", "model.init_args.sample_duration: duration must be a positive"),
        ("--model.init_args.sample_duration=4.01", "model.init_args.sample_duration: "),
        ("--data.init_args.duration=-1", "data.init_args.duration must be positive, got -1.0"),
        ("--data.init_args.test_fraction=0.95", "data.init_args.val_fraction + test_fraction must be below 1"),
        ("--model.init_args.prior_prompts=[]", "prior_prompts must be a non-empty list"),
    ],
)
def test_a_constructor_error_is_its_own_message(capsys, tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                                override: str, expected: str) -> None:
    code, err = run(capsys, tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, override))
    assert code == 2
    assert "audioldm-lora fit: error: " in err and expected in err
    assert_concise(err)


def test_a_missing_model_or_data_root_is_named_and_nothing_is_written(
    capsys, tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nonexistent"
    args = tiny_args("fit", tiny_model_dir, missing, tmp_path / "run")
    code, err = run(capsys, args)
    assert code == 2 and f"Data root {missing} (data.init_args.root) does not exist" in err
    assert not missing.exists()
    assert_concise(err)
    args = tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path / "run", "--model.class_path=lightning_modules.AudioLDMLoRA",
                     f"--model.init_args.pretrained_model={missing}")
    code, err = run(capsys, args)
    assert code == 2 and "neither an existing directory nor a hub id" in err
    assert_concise(err)


def test_the_debug_switch_shows_the_original_error(monkeypatch, tiny_model_dir: Path, synthetic_root: Path,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("AUDIOLDM_LORA_DEBUG", "1")
    args = tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, "--model.class_path=lightning_modules.AudioLDMLoRA",
                     f"--model.init_args.pretrained_model={tmp_path / 'missing'}")
    with pytest.raises(Exception) as caught:
        main(args)
    cause = caught.value
    while cause.__cause__ is not None:
        cause = cause.__cause__
    assert isinstance(cause, ModelLoadError)


@pytest.mark.parametrize("command", ["validate", "test", "predict"])
def test_scoring_without_a_checkpoint_is_refused_not_silent(capsys, tiny_model_dir: Path, synthetic_root: Path,
                                                             tmp_path: Path, command: str) -> None:
    """Without --ckpt_path the untrained adapter (the base model) would be scored with exit 0."""
    code, err = run(capsys, tiny_args(command, tiny_model_dir, synthetic_root, tmp_path))
    assert code == 2 and f"`lightning {command}` needs --ckpt_path" in err and "--ckpt_path base" in err
    assert_concise(err)
    assert not list(tmp_path.rglob("*.csv")) and not list(tmp_path.rglob("*.wav"))  # nothing ran, nothing logged


def test_a_path_that_is_no_lightning_checkpoint_is_named(capsys, tiny_model_dir: Path, synthetic_root: Path,
                                                        tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "pytorch_lora_weights.safetensors").write_bytes(b"{}")
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    cases = [
        (adapter, "is an adapter folder, not a Lightning checkpoint"),
        (adapter / "pytorch_lora_weights.safetensors", "is a .safetensors weights file"),
        (tmp_path / "missing.ckpt", "does not exist"),
        (text, "is not a PyTorch checkpoint"),
    ]
    for path, expected in cases:
        code, err = run(capsys, tiny_args("test", tiny_model_dir, synthetic_root, tmp_path, f"--ckpt_path={path}"))
        assert code == 2 and f"--ckpt_path {path} {expected}" in err, err
        assert "weights_only" not in err  # torch's unpickling advice is the opposite of the untrusted-files rule
        assert_concise(err)


def test_base_is_never_a_resume_point(capsys, tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path) -> None:
    code, err = run(capsys, tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, "--ckpt_path=base"))
    assert code == 2 and "--ckpt_path base is for validate/test/predict" in err


def test_the_data_is_checked_before_the_model_loads(capsys, monkeypatch, tiny_model_dir: Path, tmp_path: Path) -> None:
    """A wrong data root is reported without loading the base model (which may mean gigabytes from the hub)."""
    from lightning_modules.module import AudioLDMLoRA

    def never(*args, **kwargs):
        raise AssertionError("the base model was loaded before the data settings were checked")

    monkeypatch.setattr(AudioLDMLoRA, "load_backbone", classmethod(never))
    missing = tmp_path / "nonexistent"
    code, err = run(capsys, tiny_args("fit", tiny_model_dir, missing, tmp_path / "run",
                                      "--model.class_path=lightning_modules.AudioLDMLoRA"))
    assert code == 2 and f"Data root {missing} (data.init_args.root) does not exist" in err
    assert not (tmp_path / "run").exists()


def test_a_bug_in_a_constructor_keeps_its_traceback(monkeypatch, tiny_model_dir: Path, synthetic_root: Path,
                                                    tmp_path: Path) -> None:
    """Only the registered user errors become one-line messages; anything else is a bug and is raised as it is."""
    from lightning_modules.module import AudioLDMLoRA

    def broken(*args, **kwargs):
        raise KeyError("a bug, not a setting")

    monkeypatch.setattr(AudioLDMLoRA, "load_backbone", classmethod(broken))
    with pytest.raises(Exception) as caught:
        main(tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, "--model.class_path=lightning_modules.AudioLDMLoRA"))
    cause = caught.value
    while cause.__cause__ is not None:
        cause = cause.__cause__
    assert isinstance(cause, KeyError) and "a bug, not a setting" in str(cause)


def test_an_output_folder_that_cannot_be_created_is_refused_before_the_model_loads(
    capsys, monkeypatch, tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    from lightning_modules.module import AudioLDMLoRA

    def never(*args, **kwargs):
        raise AssertionError("the base model was loaded before the output folder was checked")

    monkeypatch.setattr(AudioLDMLoRA, "load_backbone", classmethod(never))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, err = run(capsys, tiny_args("fit", tiny_model_dir, synthetic_root, blocker / "runs",
                                      "--model.class_path=lightning_modules.AudioLDMLoRA"))
    assert code == 2 and f"trainer.default_root_dir: {blocker / 'runs'} cannot be created, {blocker} is a file" in err
    assert_concise(err)
