"""End to end in headless Chromium: build a page, listen and rate as three listeners, reload mid-way, export, analyse.

The page is opened from disk (``file://``), as a listener who got it by e-mail would. Each listener gets a fresh
browser profile (its own localStorage). The test plays the experimenter's part in choosing ratings: it reads the
key to know which system a clip is, and rates by the table in ``mos_helpers`` so the MOS can be checked against
values computed by hand.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from mos_helpers import CHROMIUM_FLAGS, TABLE, hand_interval, policy

from audioldm_lora.commands.mos import main
from audioldm_lora.mos.page import BuildOptions, build_page
from audioldm_lora.mos.randomise import presentation_plan

pytestmark = pytest.mark.browser
TIMEOUT_MS = 15000


@contextmanager
def browser_page(executable: str, requests: list[str]) -> Iterator[Any]:
    """A page in a fresh Chromium profile; every requested URL is appended to ``requests``."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="mos-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=CHROMIUM_FLAGS,
                accept_downloads=True,
            )
            context.set_default_timeout(TIMEOUT_MS)
            try:
                page = context.pages[0] if context.pages else context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.on("request", lambda request: requests.append(request.url))
                yield page
                assert not errors, f"JavaScript errors: {errors}"
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


Chooser = Callable[[dict[str, Any], list[str]], str]


def answer_current_page(page: Any, key: dict[str, Any], rate: Callable[..., int], prefer: Chooser) -> str:
    """Play every clip, answer the page the way ``rate``/``prefer`` say, and return the trial id."""
    prompt = page.locator("#prompt")
    trial_id = prompt.get_attribute("data-trial")
    trial = key["trials"][trial_id]
    cards = page.locator("section.clip")
    clips = [cards.nth(i).get_attribute("data-clip") for i in range(cards.count())]
    assert sorted(clips) == sorted(trial["clips"])
    assert key["items"][trial["item"]]["prompt"] in prompt.inner_text()
    for index, clip in enumerate(clips):
        card = cards.nth(index)
        if trial["kind"] == "mos":
            first = card.locator("fieldset[data-scale] input").first
            if not first.is_checked():
                assert first.is_disabled(), "rating must wait until the clip was played"
        card.locator("button.play").click()
        if trial["kind"] == "mos":
            for scale in key["scales"]:
                value = rate(key["clips"][clip], trial, scale["id"])
                radio = card.locator(f'fieldset[data-scale="{scale["id"]}"] input[data-value="{value}"]')
                radio.check()
    if trial["kind"] == "ab":
        choice = prefer(trial, clips)
        page.locator(f'fieldset.preference input[value="{choice}"]').check()
    page.locator("#next").click()
    return trial_id


def start(page: Any, url: str, listener: str | None) -> str:
    """Open the page, enter (or generate) a listener id, start; returns the id."""
    page.goto(url)
    if listener is None:
        page.locator("#generate-id").click()
        listener = page.locator("#listener-id").input_value()
        assert listener.startswith("L") and len(listener) == 9
    else:
        page.locator("#listener-id").fill(listener)
    page.locator("#start").click()
    return listener


def export(page: Any, path: Path) -> dict[str, Any]:
    """Click 'Download answers' on the final page and save the file as ``path``."""
    assert "All" in page.locator("#done-note").inner_text()
    with page.expect_download() as download:
        page.locator("#download").click()
    assert download.value.suggested_filename.startswith("answers-mos-")
    download.value.save_as(str(path))
    return json.loads(path.read_text())


def test_listen_rate_reload_export_and_analyse(chromium_executable: str, tmp_path: Path, clip_dirs: list[str]) -> None:
    built = build_page(clip_dirs, tmp_path / "page", BuildOptions(mode="both", second_scale="Genre fidelity"))
    key = json.loads(built.key.read_text())
    url = (built.out / "index.html").resolve().as_uri()
    n_pages = len(key["trials"])
    assert n_pages == 12  # 4 real + repeat + anchor MOS pages, 4 real + repeat + anchor A/B pages

    def prefer_beta(trial: dict[str, Any], clips: list[str]) -> str:
        if trial["role"] == "anchor":
            return next(c for c in clips if c != trial["anchor"])
        return next(c for c in clips if key["clips"][c]["system"] == "sysbeta")

    requests: list[str] = []
    exported: dict[str, dict[str, Any]] = {}

    # Listener 1 answers everything in one go; then listener 3, who does not listen (rates the degraded anchor 5),
    # takes the same computer.
    with browser_page(chromium_executable, requests) as page:
        listener = start(page, url, "ann")
        assert page.locator("#progress-text").inner_text() == f"Page 1 of {n_pages} · 0 done"
        for _ in range(n_pages):
            answer_current_page(page, key, policy(TABLE["ann"]), prefer_beta)
        exported[listener] = export(page, tmp_path / "ann.json")
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#new-listener").click()
        assert page.locator("#listener-id").input_value() == ""
        listener = start(page, url, "cat")
        assert page.locator("#progress-text").inner_text() == f"Page 1 of {n_pages} · 0 done"
        for _ in range(n_pages):
            answer_current_page(page, key, policy(TABLE["ann"], anchor=5), prefer_beta)
        exported[listener] = export(page, tmp_path / "cat.json")

    # Listener 2 generates an id, stops after five pages, reloads, and continues where they were.
    with browser_page(chromium_executable, requests) as page:
        listener = start(page, url, None)
        answered = [answer_current_page(page, key, policy(TABLE["bob"]), prefer_beta) for _ in range(5)]
        page.reload()
        assert page.locator("#progress-text").inner_text() == f"Page 6 of {n_pages} · 5 done"
        page.locator("#back").click()
        assert page.locator("#prompt").get_attribute("data-trial") == answered[-1]
        assert page.locator("#next").is_enabled()  # the earlier answers survived the reload
        assert page.locator("input:checked").count() >= 1
        page.locator("#next").click()
        for _ in range(n_pages - 5):
            answer_current_page(page, key, policy(TABLE["bob"]), prefer_beta)
        exported[listener] = export(page, tmp_path / "bob.json")
        bob = listener

    assert all(url.startswith(("file://", "blob:", "data:")) for url in requests), "the page must need no network"
    for listener, document in exported.items():
        assert document["complete"] is True and document["test_id"] == key["test_id"]
        assert document["plan"] == presentation_plan(key["blocks"], key["test_id"], listener)
        assert len(document["ratings"]) == 6 * 2 * 2 and len(document["preferences"]) == 6
    assert exported["ann"]["plan"] != exported["cat"]["plan"]
    shutil.copy(tmp_path / "ann.json", tmp_path / "ann-sent-twice.json")

    report = tmp_path / "report"
    answers = [str(tmp_path / name) for name in ("ann.json", "bob.json", "cat.json", "ann-sent-twice.json")]
    assert main(["analyze", *answers, "--key", str(built.key), "--out", str(report), "--n-resamples", "2000"]) == 0
    analysis = json.loads((report / "analysis.json").read_text())
    reasons = {Path(item["file"]).name: item["reasons"] for item in analysis["listeners"]}
    assert reasons["ann.json"] == [] and reasons["bob.json"] == []
    assert reasons["cat.json"] == ["anchor: rated the degraded anchor 5 (at most 2 expected)"]
    assert reasons["ann-sent-twice.json"][0].startswith("duplicate: listener 'ann'")

    mos = {(row["scale"], row["genre"], row["system"]): row for row in analysis["mos"]}
    for system in ("sysalpha", "sysbeta"):
        mean, low, high = hand_interval(TABLE["ann"][system] + TABLE["bob"][system])
        row = mos["mos", "all", system]
        assert row["mean"] == pytest.approx(mean)
        assert (row["t_low"], row["t_high"]) == pytest.approx((low, high), abs=1e-6)
        assert row["boot_low"] <= mean <= row["boot_high"]
        assert (row["n"], row["n_listeners"]) == (8, 2)
        jazz = TABLE["ann"][system][:2] + TABLE["bob"][system][:2]
        mean, low, high = hand_interval(jazz)
        assert mos["mos", "jazz", system]["mean"] == pytest.approx(mean)
        assert mos["mos", "jazz", system]["t_low"] == pytest.approx(low, abs=1e-6)
    assert mos["mos", "all", "sysalpha"]["mean"] == 23 / 8 and mos["mos", "all", "sysbeta"]["mean"] == 33 / 8
    preference = next(p for p in analysis["preferences"] if p["genre"] == "all")
    assert (preference["wins_a"], preference["wins_b"], preference["n_listeners"]) == (0, 8, 2)
    assert {listener for listener in exported} == {"ann", bob, "cat"}
    assert (report / "mos_mos.png").stat().st_size > 1000 and (report / "report.md").is_file()
