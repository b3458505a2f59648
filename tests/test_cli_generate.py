"""``audioldm-lora generate`` on the tiny model: clips equal plain diffusers', sidecars, bad input writes nothing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch

from audioldm_lora.commands import generate as generate_command
from lightning_modules.adapter_files import ADAPTER_INFO, ADAPTER_WEIGHTS
from lightning_modules.sampler import seeded_generators
from tests.adapter_helpers import make_adapters

FAST = ["--steps", "3", "--duration", "0.64", "--progress", "false"]


@pytest.fixture(scope="module")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_adapters(tiny_model_dir, tmp_path_factory.mktemp("adapters"))


def leftovers(parent: Path) -> list[str]:
    """Staging folders the tools leave beside --out if they fail to clean up."""
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


@pytest.mark.filterwarnings("ignore:Already found a `peft_config` attribute")
def test_generate_with_two_weighted_adapters_equals_plain_diffusers(
    tiny_model_dir: Path, adapters: dict[str, Path], tmp_path: Path
) -> None:
    from diffusers import AudioLDMPipeline

    out = tmp_path / "clips"
    argv = ["--base", str(tiny_model_dir), "--adapter", f"{adapters['jazz']}=0.7", "--adapter",
            f"{adapters['lofi']}=0.3", "--prompt", "jazz music", "--prompt", "lofi beat", "--per-prompt", "2",
            "--seed", "10", "--batch-size", "3", "--guidance", "3.0", "--out", str(out), *FAST]
    assert generate_command.main(argv) == 0
    wavs = sorted(out.glob("*.wav"))
    assert [w.name for w in wavs] == ["00000_jazz_music_seed10.wav", "00001_jazz_music_seed11.wav",
                                      "00002_lofi_beat_seed12.wav", "00003_lofi_beat_seed13.wav"]
    sidecar = json.loads(wavs[2].with_suffix(".json").read_text())
    assert sidecar["prompt"] == "lofi beat" and sidecar["seed"] == 12
    assert (sidecar["num_inference_steps"], sidecar["guidance_scale"], sidecar["scheduler"]) == (3, 3.0, "ddim")
    assert sidecar["base_model"] == str(tiny_model_dir)
    assert [(a["name"], a["weight"]) for a in sidecar["adapters"]] == [("jazz", 0.7), ("lofi", 0.3)]
    manifest = json.loads((out / "generation.json").read_text())
    assert [c["file"] for c in manifest["clips"]] == [w.name for w in wavs]

    # The same clips from plain diffusers: the pipeline, adapters loaded and mixed with diffusers' own calls.
    pipe = AudioLDMPipeline.from_pretrained(tiny_model_dir)
    pipe.set_progress_bar_config(disable=True)
    for name in ("jazz", "lofi"):
        pipe.unet.load_lora_adapter(str(adapters[name]), prefix=None, weight_name=ADAPTER_WEIGHTS, adapter_name=name)
    pipe.unet.set_adapters(["jazz", "lofi"], weights=[0.7, 0.3])
    prompts = ["jazz music", "jazz music", "lofi beat", "lofi beat"]
    reference = pipe(prompts, num_inference_steps=3, audio_length_in_s=0.64, guidance_scale=3.0,
                     generator=seeded_generators([10, 11, 12, 13]), output_type="pt").audios
    written = torch.stack([torch.from_numpy(sf.read(str(w), dtype="float32")[0]) for w in wavs])
    assert sf.info(str(wavs[0])).samplerate == 16000 and written.shape == (4, 10240)
    assert reference.abs().max() > 1e-2
    # 16-bit PCM: one quantisation step is 1/32768 = 3.1e-5 on top of the sampler's < 1e-5.
    assert (written - reference.clamp(-1, 1)).abs().max() < 5e-5


def test_prompts_file_and_overwrite(tiny_model_dir: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("boom bap music\n\n  gugak music  \n")
    out = tmp_path / "clips"
    out.mkdir()
    (out / "old.wav").write_bytes(b"old")
    argv = ["--base", str(tiny_model_dir), "--prompts", str(prompts), "--out", str(out), "--guidance", "1", *FAST]
    assert generate_command.main(argv) == 2  # --out holds files
    assert generate_command.main([*argv, "--overwrite"]) == 0
    names = sorted(p.name for p in out.glob("*.wav"))
    assert names == ["00000_boom_bap_music_seed0.wav", "00001_gugak_music_seed1.wav"]
    assert json.loads((out / "00000_boom_bap_music_seed0.json").read_text())["adapters"] == []
    assert leftovers(tmp_path) == []


def bad_inputs(tmp: Path, adapters: dict[str, Path]) -> dict[str, tuple[list[str], str]]:
    """Arguments (besides --base and --out) and the message each must produce."""
    empty = tmp / "empty.txt"
    empty.write_text("\n  \n")
    no_weights = tmp / "no_weights"
    no_weights.mkdir()
    damaged = tmp / "damaged"
    shutil.copytree(adapters["jazz"], damaged)
    (damaged / ADAPTER_WEIGHTS).write_bytes(b"not safetensors")
    garbled = tmp / "garbled"
    shutil.copytree(adapters["jazz"], garbled)
    (garbled / ADAPTER_INFO).write_text("{")
    prompt = ["--prompt", "jazz"]
    return {
        "other base": (["--adapter", str(adapters["other"]), *prompt],
                       (r"Adapter 'other' .* does not fit the base model '.*tiny-audioldm'.*48 input features in the "
                        r"adapter, 64 in the base.*someone/other-audioldm")),
        "missing adapter": (["--adapter", str(tmp / "nope"), *prompt], r"Adapter 'nope': .*nope does not exist"),
        "no weights": (["--adapter", str(no_weights), *prompt], "has no pytorch_lora_weights.safetensors"),
        "damaged weights": (["--adapter", str(damaged), *prompt], "'damaged'.*cannot read .* as safetensors"),
        "unparsable info": (["--adapter", str(garbled), *prompt], "adapter_info.json is not valid JSON"),
        "bad weight": (["--adapter", f"{adapters['jazz']}=x=y", *prompt], "'y' is not a number"),
        "empty prompts file": (["--prompts", str(empty)], "holds no prompt"),
        "missing prompts file": (["--prompts", str(tmp / "none.txt")], "none.txt does not exist"),
        "no prompt": ([], "Give --prompt TEXT"),
        "inexact duration": ([*prompt, "--duration", "4.01"], "cannot be produced exactly.*Use 4 s or 4.04 s"),
        "too short": ([*prompt, "--duration", "0.01"], "shorter than the model's minimum of 0.04 s"),
        "zero steps": ([*prompt, "--steps", "0"], "--steps must be at least 1"),
        # peft keeps each adapter as a submodule of its name: 'half' would clash with Module.half.
        "torch method name": (["--adapter", f"half={adapters['jazz']}", *prompt],
                              "Adapter name 'half' .* is a method of torch modules.*NAME=PATH=WEIGHT"),
    }


CASES = ["other base", "missing adapter", "no weights", "damaged weights", "unparsable info", "bad weight",
         "empty prompts file", "missing prompts file", "no prompt", "inexact duration", "too short", "zero steps", "torch method name"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_explained_and_nothing_is_written(
    tiny_model_dir: Path, adapters: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, case: str
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    arguments, message = bad_inputs(inputs, adapters)[case]
    parent = tmp_path / "outputs"
    parent.mkdir()
    argv = ["--base", str(tiny_model_dir), "--out", str(parent / "clips"), "--progress", "false", "--steps", "2"]
    assert generate_command.main([*argv, *arguments]) == 2
    error = capsys.readouterr().err
    assert "audioldm-lora generate: error: " in error
    assert re.search(message, error, flags=re.DOTALL), error
    assert list(parent.iterdir()) == []


def test_a_failure_midway_leaves_no_partial_output(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightning_modules.sampler as sampler

    real_generate = sampler.generate
    calls = []

    def failing_generate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory, say")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(sampler, "generate", failing_generate)  # the command imports it when it runs
    argv = ["--base", str(tiny_model_dir), "--prompt", "a", "--prompt", "b", "--batch-size", "1",
            "--out", str(tmp_path / "clips"), *FAST]
    with pytest.raises(RuntimeError, match="out of memory"):
        generate_command.main(argv)
    assert list(tmp_path.iterdir()) == []  # neither --out nor the staging folder with the first clip


def test_generate_mixes_a_unet_adapter_with_a_text_encoder_adapter(
    tiny_model_dir: Path, adapters: dict[str, Path], tmp_path: Path
) -> None:
    """A UNet-only adapter at 0.7 and a text-encoder-only adapter at 0.5: the clips equal plain diffusers + peft
    with the same weights (diffusers' text-encoder mixing helper, which its pipelines' set_adapters uses)."""
    from diffusers import AudioLDMPipeline
    from diffusers.loaders.lora_base import set_adapters_for_text_encoder
    from peft import PeftModel

    from tests.adapter_helpers import site_adapter

    words = site_adapter(tiny_model_dir, tmp_path / "words", seed=11, unet_targets=None, text_encoder_targets="WqWv")
    out = tmp_path / "clips"
    argv = ["--base", str(tiny_model_dir), "--adapter", f"{adapters['jazz']}=0.7", "--adapter", f"{words}=0.5",
            "--prompt", "jazz music", "--per-prompt", "2", "--seed", "4", "--out", str(out), *FAST]
    assert generate_command.main(argv) == 0
    written = torch.stack([torch.from_numpy(sf.read(str(w), dtype="float32")[0]) for w in sorted(out.glob("*.wav"))])

    pipe = AudioLDMPipeline.from_pretrained(tiny_model_dir)
    pipe.set_progress_bar_config(disable=True)
    pipe.unet.load_lora_adapter(str(adapters["jazz"]), prefix=None, weight_name=ADAPTER_WEIGHTS, adapter_name="jazz")
    pipe.unet.set_adapters(["jazz"], weights=[0.7])
    settings = {"num_inference_steps": 3, "audio_length_in_s": 0.64, "output_type": "pt"}
    unet_only = pipe(["jazz music"] * 2, generator=seeded_generators([4, 5]), **settings).audios
    pipe.text_encoder = PeftModel.from_pretrained(pipe.text_encoder, str(words / "text_encoder"),
                                                  adapter_name="words")
    set_adapters_for_text_encoder(["words"], pipe.text_encoder, [0.5])
    reference = pipe(["jazz music"] * 2, generator=seeded_generators([4, 5]), **settings).audios
    assert (reference - unet_only).abs().max() > 1e-3  # the text-encoder part matters
    assert (written - reference.clamp(-1, 1)).abs().max() < 5e-5


def test_a_generated_folder_is_an_evaluation_input_as_written(tiny_model_dir: Path, synthetic_root: Path,
                                                              tmp_path: Path) -> None:
    """`evaluate --generated` reads the prompts from the sidecars or from generation.json, no hand-written file."""
    from audioldm_lora.commands import evaluate as evaluate_command
    from metrics.clip_labels import discover_clips, label_clips

    out = tmp_path / "clips"
    assert generate_command.main(["--base", str(tiny_model_dir), "--prompt", "jazz music", "--prompt", "lofi beat",
                                  "--per-prompt", "2", "--out", str(out), *FAST]) == 0
    expected = ["jazz music", "jazz music", "lofi beat", "lofi beat"]
    clips = discover_clips(out, "generated")
    assert [c.prompt for c in label_clips(clips)] == expected
    assert [c.prompt for c in label_clips(clips, prompts=out / "generation.json")] == expected
    assert evaluate_command.main(["--generated", str(out), "--prompts", str(out / "generation.json"), "--reference",
                                  str(synthetic_root), "--embedder", "mel-stats", "--out", str(tmp_path / "ev"),
                                  "--progress", "false", "--no-cache"]) == 0
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["generated"]["clips"] == 4
