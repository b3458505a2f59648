"""``mos analyze``: hand-computed MOS and intervals, listener screening, report files, and bad-input messages."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from mos_helpers import TABLE, hand_interval, policy, synthetic_answers, write_json

from audioldm_lora.commands.mos import main
from audioldm_lora.mos.errors import MosInputError
from audioldm_lora.mos.page import BuildOptions, build_page
from audioldm_lora.mos.pipeline import analyze_answers


def _files(tmp_path: Path, key: dict, **extra: dict) -> list[Path]:
    paths = [
        write_json(tmp_path / f"{name}.json", synthetic_answers(key, name, policy(table)))
        for name, table in TABLE.items()
    ]
    for name, document in extra.items():
        paths.append(write_json(tmp_path / f"{name}.json", document))
    return paths


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_mos_and_intervals_match_hand_computation(built: dict, tmp_path: Path) -> None:
    key = built["key"]
    cheat = synthetic_answers(key, "cat", policy(TABLE["ann"], anchor=5))
    careless = synthetic_answers(key, "dan", policy(TABLE["bob"], shift=3))
    unfinished = synthetic_answers(key, "eve", policy(TABLE["bob"]), answer_pages=3)
    paths = _files(tmp_path, key, cat=cheat, dan=careless, eve=unfinished)
    duplicate = write_json(tmp_path / "ann-again.json", json.loads(paths[0].read_text()))
    result = analyze_answers([*paths, duplicate], built["key_path"], tmp_path / "report", seed=0, n_resamples=2000)
    status = {
        r.answers.listener_id + ("*" if r.answers.path == duplicate else ""): r.reasons
        for r in result.analysis.listeners
    }
    assert status["ann"] == [] and status["bob"] == []
    assert status["cat"] == ["anchor: rated the degraded anchor 5 (at most 2 expected)"]
    assert len(status["dan"]) == 1 and status["dan"][0].startswith("repeat:")
    assert status["eve"] == ["incomplete: answered 3 of 6 pages"]
    assert status["ann*"] == [f"duplicate: listener 'ann' already answered in {paths[0]}"]

    rows = {(r["scale"], r["genre"], r["system"]): r for r in _rows(tmp_path / "report" / "mos.csv")}
    for system in ("sysalpha", "sysbeta"):
        values = TABLE["ann"][system] + TABLE["bob"][system]
        mean, low, high = hand_interval(values)
        row = rows["mos", "all", system]
        assert float(row["mos"]) == pytest.approx(mean)
        assert (float(row["t_low"]), float(row["t_high"])) == pytest.approx((low, high), abs=1e-6)
        assert float(row["bootstrap_low"]) <= mean <= float(row["bootstrap_high"])
        assert (row["n_ratings"], row["n_listeners"]) == ("8", "2")
        rock = TABLE["ann"][system][2:] + TABLE["bob"][system][2:]
        mean, low, high = hand_interval(rock)
        assert float(rows["mos", "rock", system]["mos"]) == pytest.approx(mean)
        assert float(rows["mos", "rock", system]["t_high"]) == pytest.approx(high, abs=1e-6)
    second = TABLE["ann"]["sysbeta"] + TABLE["bob"]["sysbeta"]
    assert float(rows["genre_fidelity", "all", "sysbeta"]["mos"]) == pytest.approx(sum(second) / 8 - 1)
    # sysalpha 3.0 and sysbeta 4.125 by hand
    assert (
        float(rows["mos", "all", "sysalpha"]["mos"]) == 23 / 8 and float(rows["mos", "all", "sysbeta"]["mos"]) == 33 / 8
    )


def test_paired_wilcoxon_in_report(built: dict, tmp_path: Path) -> None:
    result = analyze_answers(_files(tmp_path, built["key"]), built["key_path"], tmp_path / "r", n_resamples=500)
    pair = next(p for p in result.analysis.pairs if p.scale == "mos" and p.genre == "all")
    # differences alpha - beta over 8 (listener, prompt) pairs: -1 -2 -2 0 -3 -1 -1 0: all negative
    assert (pair.system_a, pair.system_b, pair.test.n_pairs, pair.test.n_nonzero) == ("sysalpha", "sysbeta", 8, 6)
    assert pair.test.rank_biserial == -1.0 and pair.test.statistic == 0.0
    assert pair.test.mean_difference == pytest.approx(-10 / 8)
    assert pair.p_holm == pair.test.p_value  # one pair: Holm changes nothing
    report = (tmp_path / "r" / "report.md").read_text()
    assert "| Overall | jazz | rock |" in report and "| sysbeta | 4.12 ± " in report
    assert "Wilcoxon" in report and "Rank-biserial" in report


def test_report_files_are_complete(built: dict, tmp_path: Path) -> None:
    out = tmp_path / "report"
    analyze_answers(_files(tmp_path, built["key"]), built["key_path"], out, n_resamples=500)
    names = {p.name for p in out.iterdir()}
    assert names == {
        "report.md",
        "mos.csv",
        "mos_table.md",
        "mos_table.csv",
        "wilcoxon.csv",
        "listeners.csv",
        "analysis.json",
        "mos_mos.png",
        "mos_genre_fidelity.png",
    }
    assert (out / "mos_mos.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = _rows(out / "mos_table.csv")
    assert [r["system"] for r in table] == ["sysalpha", "sysbeta", "sysalpha", "sysbeta"]
    assert float(table[0]["Overall"]) == 23 / 8 and "Overall_ci_half_width" in table[0]
    document = json.loads((out / "analysis.json").read_text())
    assert document["test_id"] == built["key"]["test_id"] and len(document["listeners"]) == 2


def test_ab_preferences(tmp_path: Path, clip_dirs: list[str]) -> None:
    built = build_page(clip_dirs, tmp_path / "ab", BuildOptions(mode="ab"))
    key = json.loads(built.key.read_text())

    def prefer_beta(trial: dict, clips: list[str]) -> str:
        if trial["role"] == "anchor":
            return next(c for c in clips if c != trial["anchor"])
        return next(c for c in clips if key["clips"][c]["system"] == "sysbeta")

    def prefer_anchor(trial: dict, clips: list[str]) -> str:
        return trial["anchor"] if trial["role"] == "anchor" else "none"

    files = [
        write_json(tmp_path / f"{n}.json", synthetic_answers(key, n, lambda *a: 3, prefer_beta)) for n in ("a", "b")
    ]
    files.append(write_json(tmp_path / "c.json", synthetic_answers(key, "c", lambda *a: 3, prefer_anchor)))
    result = analyze_answers(files, built.key, tmp_path / "r")
    assert [r.reasons for r in result.analysis.listeners][2] == [
        "anchor: chose the degraded clip over the original on the degraded A/B page"
    ]
    overall = next(p for p in result.analysis.preferences if p.genre == "all")
    assert (overall.test.wins_a, overall.test.wins_b, overall.test.ties, overall.n_listeners) == (0, 8, 0, 2)
    assert overall.test.p_value == pytest.approx(2 / 256)  # two-sided sign test, 8 of 8
    assert (tmp_path / "r" / "preferences.csv").is_file() and not result.analysis.mos


def _expect_error(tmp_path: Path, paths: list[Path], key_path: Path, *needles: str) -> None:
    out = tmp_path / "bad-report"
    with pytest.raises(MosInputError) as info:
        analyze_answers(paths, key_path, out)
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    assert not out.exists(), "nothing may be written on bad input"


def test_error_malformed_json(built: dict, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "audioldm-lora-mos-answers",\n "ratings": [1, 2,,]}')
    _expect_error(
        tmp_path,
        [*_files(tmp_path, built["key"]), broken],
        built["key_path"],
        str(broken),
        "not valid JSON (line 2, column",
    )


def test_error_answers_from_another_test(built: dict, tmp_path: Path, clip_dirs: list[str]) -> None:
    other = build_page(clip_dirs, tmp_path / "other")
    foreign = synthetic_answers(json.loads(other.key.read_text()), "zed", policy(TABLE["ann"]))
    path = write_json(tmp_path / "zed.json", foreign)
    _expect_error(
        tmp_path,
        [*_files(tmp_path, built["key"]), path],
        built["key_path"],
        str(path),
        f"belong to test '{other.test_id}'",
        f"key is for test '{built['key']['test_id']}'",
    )


def test_error_tampered_or_foreign_content(built: dict, tmp_path: Path) -> None:
    key = built["key"]
    good = synthetic_answers(key, "ann", policy(TABLE["ann"]))
    cases = [
        ({**good, "format": "something-else"}, "not a listening-test answer file"),
        ({**good, "ratings": [{**good["ratings"][0], "value": 7}]}, "ratings are whole numbers from 1 to 5"),
        ({**good, "ratings": [{**good["ratings"][0], "clip": "feedfacefeedfaceface"}]}, "which is not on page"),
        ({**good, "ratings": [good["ratings"][0], good["ratings"][0]]}, "rated twice"),
        ({**good, "ratings": [{**good["ratings"][0], "scale": "loudness"}]}, "uses scale 'loudness'"),
        ({**good, "listener_id": ""}, "no listener id"),
        ({**good, "plan": [{"trial": "t999", "clips": []}]}, "'plan' names trial 't999'"),
        ([1, 2, 3], "not a listening-test answer file"),
    ]
    for number, (document, needle) in enumerate(cases):
        _expect_error(tmp_path, [write_json(tmp_path / f"case{number}.json", document)], built["key_path"], needle)


def test_error_bad_key_and_no_accepted_listener(built: dict, tmp_path: Path) -> None:
    answers = _files(tmp_path, built["key"])
    _expect_error(tmp_path, answers, tmp_path / "missing.key.json", "cannot read the key file")
    not_key = write_json(tmp_path / "nk.json", {"format": "nope"})
    _expect_error(tmp_path, answers, not_key, "not a listening-test key")
    cheat = write_json(tmp_path / "cheat.json", synthetic_answers(built["key"], "cat", policy(TABLE["ann"], anchor=4)))
    _expect_error(tmp_path, [cheat], built["key_path"], "no listener passed the checks", "degraded anchor 4")


def test_reordered_plan_is_rejected(built: dict, tmp_path: Path) -> None:
    document = synthetic_answers(built["key"], "ann", policy(TABLE["ann"]))
    document["plan"] = list(reversed(document["plan"]))
    paths = _files(tmp_path, built["key"])
    paths[0] = write_json(tmp_path / "ann.json", document)
    result = analyze_answers(paths, built["key_path"], tmp_path / "r", n_resamples=500)
    assert result.analysis.listeners[0].reasons == [
        "order: the recorded presentation order does not match the listener id (edited file?)"
    ]


def test_cli_analyze(built: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    paths = [str(p) for p in _files(tmp_path, built["key"])]
    assert (
        main(
            ["analyze", *paths, "--key", str(built["key_path"]), "--out", str(tmp_path / "cli"), "--n-resamples", "500"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Listeners: 2 accepted, 0 rejected." in printed and "MOS 2.88" in printed
    assert main(["analyze", *paths, "--key", str(tmp_path / "nokey.json"), "--out", str(tmp_path / "x")]) == 2
    assert "cannot read the key file" in capsys.readouterr().err
