"""``audioldm-lora app`` on the tiny model, through its API (``gradio_client``) and the command line: the clips are
``generate``'s, the adapter sliders mix, bad requests are errors that leave the server serving, and the command
refuses bad input before loading a model. The page itself in a browser: tests/test_app_browser.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from tests.adapter_helpers import make_adapters, tiny_adapter

pytest.importorskip("gradio", reason="the app is an optional extra (pip install .[app]); .[dev] installs it")
REPO = Path(__file__).resolve().parents[1]
FAST = {"steps": 3, "duration": 0.64}


@pytest.fixture(scope="module")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_adapters(tiny_model_dir, tmp_path_factory.mktemp("adapters"))


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path, adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """The app over the tiny model with adapters jazz (weight 1) and lofi (0), serving on a free local port."""
    from gradio_client import Client

    from audioldm_lora.adapter_inputs import load_model, read_adapters
    from audioldm_lora.app.page import build_page, launch
    from audioldm_lora.app.session import AppRequest, AppSession

    files = read_adapters([f"jazz={adapters['jazz']}=1.0", f"lofi={adapters['lofi']}=0.0"])
    out = tmp_path_factory.mktemp("app")
    session = AppSession(load_model(str(tiny_model_dir), files, "cpu"), str(tiny_model_dir), files, out)
    page = build_page(session, AppRequest(prompt="jazz music", **FAST))
    url = launch(page, "127.0.0.1", None, str(out))
    try:
        yield {"url": url, "client": Client(url, verbose=False), "session": session}
    finally:
        page.close()


def audio(path: str) -> "np.ndarray":  # noqa: F821
    return sf.read(path, dtype="float32")[0]


def generated(tiny_model_dir: Path, out: Path, *argv: str) -> Path:
    """The one clip ``audioldm-lora generate`` writes with ``argv``."""
    from audioldm_lora.commands import generate as generate_command

    assert generate_command.main(["--base", str(tiny_model_dir), "--prompt", "jazz music", "--out", str(out),
                                  "--steps", "3", "--duration", "0.64", "--progress", "false", *argv]) == 0
    (wav,) = out.glob("*.wav")
    return wav


def test_the_api_takes_the_prompt_first_and_defaults_everything_else(served) -> None:
    parameters = served["client"].view_api(return_format="dict", print_info=False)["named_endpoints"]["/generate"][
        "parameters"]
    names = [p["parameter_name"] for p in parameters]
    assert names == ["prompt", "negative_prompt", "seed", "steps", "guidance", "scheduler", "duration",
                     "weight_jazz", "weight_lofi"]
    assert all(p["parameter_has_default"] for p in parameters)
    defaults = {p["parameter_name"]: p["parameter_default"] for p in parameters}
    assert (defaults["steps"], defaults["duration"], defaults["weight_jazz"], defaults["weight_lofi"]) == (3, 0.64,
                                                                                                           1.0, 0.0)


def test_a_generate_call_returns_generate_commands_clips_and_sidecar(served, tiny_model_dir: Path,
                                                                     adapters: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    """Adapters mixed 0.7/0.3 through the sliders: the adapted clip is `generate`'s with the same mix, the base clip
    `generate`'s without adapters, both 0.64 s; the sidecar records the mix."""
    adapted, adapted_mel, base, base_mel, files = served["client"].predict(
        prompt="jazz music", seed=3, guidance=3.0, weight_jazz=0.7, weight_lofi=0.3, api_name="/generate")
    assert sf.info(adapted).duration == sf.info(base).duration == 0.64 and sf.info(adapted).samplerate == 16000
    assert Path(adapted_mel).stat().st_size > 0 and Path(base_mel).suffix == ".png"
    mixed = generated(tiny_model_dir, tmp_path / "mixed", "--adapter", f"jazz={adapters['jazz']}=0.7", "--adapter",
                      f"lofi={adapters['lofi']}=0.3", "--seed", "3", "--guidance", "3.0")
    plain = generated(tiny_model_dir, tmp_path / "plain", "--seed", "3", "--guidance", "3.0")
    assert (audio(adapted) == audio(str(mixed))).all()
    assert (audio(base) == audio(str(plain))).all()
    assert abs(audio(adapted) - audio(base)).max() > 1e-3
    sidecar = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert (sidecar["prompt"], sidecar["seed"], sidecar["num_inference_steps"], sidecar["guidance_scale"]) == (
        "jazz music", 3, 3, 3.0)
    assert [(a["name"], a["weight"]) for a in sidecar["adapters"]] == [("jazz", 0.7), ("lofi", 0.3)]
    assert sidecar["base_model"] == str(tiny_model_dir)


def test_every_slider_at_zero_makes_both_clips_equal(served) -> None:
    adapted, _, base, _, _ = served["client"].predict(prompt="lofi beat", weight_jazz=0.0, weight_lofi=0.0,
                                                      api_name="/generate")
    assert (audio(adapted) == audio(base)).all()


@pytest.mark.parametrize(("settings", "message"), [
    ({"steps": 0}, "Steps must be between 1 and 1000, got 0"),
    ({"duration": -1.0}, "Duration must be a positive number of seconds, got -1.0"),
    ({"prompt": "  "}, "The prompt is empty"),
    ({"seed": "abc"}, "abc"),
    ({"scheduler": "nope"}, "nope"),
    ({"weight_jazz": "loud"}, "loud"),
])
def test_a_bad_request_is_an_error_and_the_app_keeps_serving(served, settings: dict, message: str) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        served["client"].predict(**{"prompt": "jazz music", **settings}, api_name="/generate")
    adapted, *_ = served["client"].predict(prompt="jazz music", api_name="/generate")
    assert sf.info(adapted).duration == 0.64


def test_the_session_refuses_an_unknown_adapter_and_a_bad_weight(served) -> None:
    from audioldm_lora.app.session import AppInputError, AppRequest

    with pytest.raises(AppInputError, match=r"Unknown adapter\(s\) \['nope'\]; this app holds \['jazz', 'lofi'\]"):
        served["session"].generate(AppRequest(prompt="jazz music", weights={"nope": 1.0}, **FAST))
    with pytest.raises(AppInputError, match="weight of adapter 'jazz' must be a finite number"):
        served["session"].generate(AppRequest(prompt="jazz music", weights={"jazz": float("nan")}, **FAST))


def test_without_adapters_it_offers_those_under_runs_newest_at_full_weight(tiny_model_dir: Path,
                                                                          adapters: dict[str, Path],
                                                                          tmp_path: Path) -> None:
    import shutil

    from audioldm_lora.app.discovery import discovered_adapters
    from audioldm_lora.commands.app import adapter_files

    runs = tmp_path / "runs"
    older = tiny_adapter(tiny_model_dir, runs / "jazz" / "adapters" / "step-10", seed=1)
    newer = tiny_adapter(tiny_model_dir, runs / "lofi" / "adapters" / "final", seed=2)
    os.utime(older / "adapter_info.json", (1, 1))
    (runs / "broken" / "adapters" / "final").mkdir(parents=True)
    (runs / "broken" / "adapters" / "final" / "adapter_info.json").write_text("{}")
    os.utime(runs / "broken" / "adapters" / "final" / "adapter_info.json", (0, 0))
    other = shutil.copytree(adapters["other"], runs / "other" / "adapters" / "final")
    os.utime(other / "adapter_info.json", (0, 0))
    assert discovered_adapters(runs) == [f"lofi-final={newer}=1.0", f"jazz-step-10={older}=0.0",
                                         f"broken-final={runs / 'broken' / 'adapters' / 'final'}=0.0",
                                         f"other-final={other}=0.0"]
    found = adapter_files([], str(runs))  # skipped with a note: the broken folder (no weights), the other base
    assert [(a.spec.name, a.spec.weight) for a in found] == [("lofi-final", 1.0), ("jazz-step-10", 0.0)]
    assert discovered_adapters(tmp_path / "nowhere") == []


def test_the_command_refuses_bad_input_before_loading_a_model(tmp_path: Path, capsys, monkeypatch) -> None:
    import importlib.util

    from audioldm_lora.commands import app

    assert app.main(["--runs", str(tmp_path / "empty")]) == 2
    assert "No --adapter given and none found under" in capsys.readouterr().err
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else
                        real_find_spec(name, *a))
    assert app.main(["--base", str(tmp_path)]) == 2
    assert "pip install 'audioldm-lora[app]'" in capsys.readouterr().err


def test_the_command_serves_until_ctrl_c(tiny_model_dir: Path, adapters: dict[str, Path], tmp_path: Path) -> None:
    """`audioldm-lora app` as a user starts it: it says where it serves (127.0.0.1 by default), a client gets a pair
    of clips, and Ctrl-C stops it cleanly."""
    from gradio_client import Client

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    # stderr goes to a file (read back in the failure messages), and stdout is drained after the "serving" line, so
    # that no pipe can fill up and block the server.
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-X", "faulthandler", "-m", "audioldm_lora", "app", "--base", str(tiny_model_dir),
             "--adapter", str(adapters["jazz"]), "--out", str(tmp_path / "clips"), "--steps", "2", "--duration", "0.64",
             "--device", "cpu"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
            preexec_fn=default_ctrl_c)
    try:
        deadline, line = time.monotonic() + 120, ""
        while "serving" not in line and time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline()
        assert "app: serving http://127.0.0.1:" in line, (line, errors.read_text()[-2000:])
        threading.Thread(target=process.stdout.read, daemon=True).start()
        url = line.split("serving ")[1].split(" ")[0]
        adapted, _, base, _, _ = Client(url, verbose=False).predict(prompt="jazz music", api_name="/generate")
        assert sf.info(adapted).duration == 0.64 and abs(audio(adapted) - audio(base)).max() > 1e-3
        assert len(list((tmp_path / "clips").rglob("*.wav"))) == 2
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            signals = [line.strip() for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
                       if line.startswith("Sig")]
            process.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack to stderr.txt
            process.wait()
            pytest.fail(f"the app still ran 60 s after Ctrl-C; its signal state {signals}; its threads and stderr:\n"
                        + errors.read_text()[-6000:])
    assert process.returncode == 0, errors.read_text()[-2000:]


def default_ctrl_c() -> None:
    """In the app's process before it starts: Ctrl-C delivered and handled as a terminal's would be, whatever the
    test worker's own signal state (a disposition or mask inherited from the worker would be this test's artefact)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.mark.browser
def test_the_page_plays_both_clips_mixes_with_sliders_and_shows_errors(served, chromium_executable: str,
                                                                       tmp_path: Path) -> None:
    """In headless Chromium: type a prompt, Generate fills both players with clips of the asked duration; the
    sliders at 0 make the two clips equal; "New seed" draws a seed; steps 0 and a negative duration show their errors on the page, which then
    still generates; the page fetches nothing from outside the app."""
    from playwright.sync_api import sync_playwright

    from tests.browser_helpers import CHROMIUM_FLAGS

    url, requests, errors = served["url"], [], []

    def generate_and_fetch(page, previous: tuple[str, str] | None) -> tuple[str, str]:
        """Click Generate and download both players' clips once they are new; returns their local paths."""
        page.locator("#generate").click()
        links = [page.locator(f"#{arm}-audio a[data-testid=download-link]") for arm in ("adapted", "base")]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            hrefs = tuple(link.first.get_attribute("href") if link.count() else None for link in links)
            if all(hrefs) and hrefs != previous:
                break
            page.wait_for_timeout(200)
        assert all(hrefs) and hrefs != previous, "the players never got new clips"
        paths = []
        for arm, href in zip(("adapted", "base"), hrefs):
            path = tmp_path / f"{arm}-{len(list(tmp_path.iterdir()))}.wav"
            path.write_bytes(page.request.get(href).body())
            paths.append(str(path))
        generate_and_fetch.hrefs = hrefs
        return tuple(paths)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(30000)
            page.on("request", lambda request: requests.append(request.url))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)
            page.locator("#prompt textarea").fill("jazz music")
            adapted, base = generate_and_fetch(page, None)
            assert sf.info(adapted).duration == sf.info(base).duration == 0.64
            assert abs(audio(adapted) - audio(base)).max() > 1e-3  # jazz at weight 1

            page.locator("#weight_jazz input[type=number]").fill("0")
            page.locator("#weight_jazz input[type=number]").press("Enter")
            adapted, base = generate_and_fetch(page, generate_and_fetch.hrefs)
            assert (audio(adapted) == audio(base)).all()

            seed = page.locator("#seed input")
            assert seed.input_value() == "0"
            page.locator("#new-seed").click()
            page.wait_for_function("() => document.querySelector('#seed input').value !== '0'")

            page.locator("#steps input").fill("0")
            page.locator("#generate").click()
            page.get_by_text("Steps must be between 1 and 1000, got 0.").wait_for()
            page.locator("#steps input").fill("2")
            page.locator("#duration input").fill("-1")
            page.locator("#generate").click()
            page.get_by_text("Duration must be a positive number of seconds, got -1.0.").wait_for()
            page.locator("#duration input").fill("0.64")
            page.locator("#weight_jazz input[type=number]").fill("1")
            page.locator("#weight_jazz input[type=number]").press("Enter")
            adapted, base = generate_and_fetch(page, generate_and_fetch.hrefs)
            assert abs(audio(adapted) - audio(base)).max() > 1e-3
        finally:
            browser.close()
    assert not errors, errors
    outside = [r for r in requests if not r.startswith(url) and not r.startswith(("blob:", "data:"))]
    assert not outside, outside


@pytest.mark.parametrize("backbone", ["audioldm", "audioldm2"])
def test_text_encoder_adapters_and_audioldm2_are_heard_through_the_same_session(
        backbone: str, tiny_model_dir: Path, tiny_audioldm2_dir: Path, tmp_path: Path) -> None:
    """An adapter on the UNet and the text encoder (CLAP for AudioLDM, T5 for AudioLDM2) changes the adapted clip and
    weight 0 silences it; the base clip is the model without adapters."""
    from audioldm_lora.adapter_inputs import load_model, read_adapters
    from audioldm_lora.app.session import AppRequest, AppSession
    from tests.adapter_helpers import sites_adapter

    model = tiny_model_dir if backbone == "audioldm" else tiny_audioldm2_dir
    text_site = "text_encoder" if backbone == "audioldm" else "text_encoder_2"
    folder = sites_adapter(model, tmp_path / "adapter", seed=5, targets={"unet": "attention", text_site: "WqWv"})
    files = read_adapters([f"both={folder}"])
    assert set(files[0].sites) == {"unet", text_site}
    session = AppSession(load_model(str(model), files, "cpu"), str(model), files, tmp_path / "out")
    request = AppRequest(prompt="jazz music", steps=2, duration=0.64)
    pair = session.generate(request)
    assert abs(audio(str(pair.adapted)) - audio(str(pair.base))).max() > 1e-3
    silent = session.generate(AppRequest(prompt="jazz music", steps=2, duration=0.64, weights={"both": 0.0}))
    assert (audio(str(silent.adapted)) == audio(str(silent.base))).all()
    assert (audio(str(silent.base)) == audio(str(pair.base))).all()
