"""``mos build``: write the self-contained listening page and its (separate) key.

The page is plain files that work from disk (``file://``) or any static host: ``index.html``, ``static/`` (the
script and style shipped as package data), ``test.js`` (the blinded test configuration, a script rather than JSON
because browsers refuse ``fetch`` on ``file://``) and ``audio/<hash>.wav``. Nothing in these files names a
system or a source path. The key that maps clip ids back to systems is written elsewhere (by default beside the
output folder, as ``<OUT>.key.json``) so the folder can be zipped or uploaded as it is.

Everything is written into a hidden staging folder first and renamed into place at the end: on any error the
staging folder is removed and nothing is left half-written.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import html
import json
import secrets
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from datamodules.atomic_files import staged_directory

from .audio import Clip, read_clip, rms_normalise, write_wav
from .degrade import degrade
from .design import Design, make_design
from .errors import MosInputError
from .fileio import atomic_write_json
from .formats import FORMAT_VERSION, KEY_FORMAT, PAGE_FORMAT
from .manifest import Manifest, build_manifest

ACR_LABELS = ["Bad", "Poor", "Fair", "Good", "Excellent"]
STATIC_FILES = ("mos.js", "mos.css")
MAX_LISTED = 10


@dataclass(frozen=True)
class BuildOptions:
    """Settings of ``mos build`` beyond the systems and the output folder."""

    prompts: str | None = None
    key: str | None = None
    mode: str = "mos"
    title: str = "Listening test"
    instructions: str | None = None
    scale_label: str = "Overall quality"
    scale_question: str = "How would you rate the overall quality of this clip?"
    second_scale: str | None = None
    second_question: str | None = None
    repeats: int = 1
    anchors: int = 1
    seed: int = 0
    normalise: bool = False
    require_play: bool = True
    allow_no_preference: bool = True
    overwrite: bool = False


@dataclass(frozen=True)
class BuildResult:
    """Where the page and key went, and what the test holds."""

    out: Path
    key: Path
    test_id: str
    n_items: int
    n_trials: int
    n_clips: int


def default_key_path(out: Path) -> Path:
    """``<OUT>.key.json`` beside the output folder: outside what is sent to listeners."""
    return out.parent / f"{out.name}.key.json"


def _slug(label: str) -> str:
    """A scale id from its label: ``Genre fidelity`` -> ``genre_fidelity``."""
    slug = "".join(ch.lower() if ch.isalnum() else "_" for ch in label).strip("_")
    return "_".join(part for part in slug.split("_") if part) or "scale2"


def scales_of(options: BuildOptions) -> list[dict[str, Any]]:
    """The rating scales: the MOS scale (id ``mos``) and an optional second one."""
    scales = [{"id": "mos", "label": options.scale_label, "question": options.scale_question, "labels": ACR_LABELS}]
    if options.second_scale:
        question = options.second_question or f"{options.second_scale}: how well does this clip fit the prompt?"
        second_id = _slug(options.second_scale)
        if second_id == "mos":
            second_id = "mos2"
        scales.append({"id": second_id, "label": options.second_scale, "question": question, "labels": ACR_LABELS})
    return scales


def _instructions(options: BuildOptions, n_systems: int) -> str:
    """Default instructions when none are given."""
    if options.instructions:
        return options.instructions
    parts = ["Please use headphones in a quiet place and set a comfortable volume before you start."]
    if options.mode in ("mos", "both"):
        parts.append(
            f"Each page shows a text prompt and {n_systems} (sometimes more) music clips in random order. "
            "Play every clip to the end, then rate it on each scale from 1 (bad) to 5 (excellent)."
        )
    if options.mode in ("ab", "both"):
        parts.append("On comparison pages, play clips A and B and choose the one you prefer.")
    parts.append("Your answers are saved in this browser as you go; at the end, download them and send the file back.")
    return " ".join(parts)


def _block_config(design: Design) -> list[dict[str, Any]]:
    """The blinded trial list, shared by the page and the key (analysis recomputes the order from it)."""
    return [
        {"kind": kind, "trials": [{"id": t.id, "item": t.item, "clips": list(t.clips)} for t in trials]}
        for kind, trials in design.blocks
    ]


def page_config(design: Design, options: BuildOptions) -> dict[str, Any]:
    """The configuration the page loads: prompts, scales and trials, with no system names or paths."""
    return {
        "format": PAGE_FORMAT,
        "version": FORMAT_VERSION,
        "test_id": design.test_id,
        "title": options.title,
        "instructions": _instructions(options, len(design.manifest.systems)),
        "scales": scales_of(options),
        "items": [{"prompt": item.prompt, "genre": item.genre} for item in design.manifest.items],
        "blocks": _block_config(design),
        "audio_dir": "audio",
        "require_play": options.require_play,
        "allow_no_preference": options.allow_no_preference,
    }


def _sha256(path: Path) -> str:
    """Hex digest of a file, recorded in the key so the analysis can be traced to the exact clips."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def key_document(design: Design, options: BuildOptions, sources: dict[tuple[int, str], str]) -> dict[str, Any]:
    """The unblinding key: systems, items with their source files, and every clip's and trial's role."""
    manifest = design.manifest
    return {
        "format": KEY_FORMAT,
        "version": FORMAT_VERSION,
        "warning": "This file unblinds the listening test: never send it to listeners or host it with the page.",
        "test_id": design.test_id,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": options.mode,
        "systems": list(manifest.systems),
        "scales": scales_of(options),
        "settings": {
            "repeats": options.repeats,
            "anchors": options.anchors,
            "seed": options.seed,
            "normalise": options.normalise,
            "require_play": options.require_play,
        },
        "items": [
            {
                "stem": item.stem,
                "prompt": item.prompt,
                "genre": item.genre,
                "sources": {s: {"path": str(item.clips[s]), "sha256": sources[i, s]} for s in manifest.systems},
            }
            for i, item in enumerate(manifest.items)
        ],
        "clips": {
            clip.id: {"system": clip.system, "item": clip.item, "role": clip.role, "source": clip.source}
            for clip in design.clips.values()
        },
        "trials": {
            trial.id: {
                "kind": trial.kind,
                "item": trial.item,
                "role": trial.role,
                "clips": list(trial.clips),
                "original": trial.original.id if trial.original is not None else None,
                "anchor": trial.anchor,
            }
            for trial in design.trials()
        },
        "blocks": _block_config(design),
    }


def _write_audio(design: Design, options: BuildOptions, audio_dir: Path) -> dict[tuple[int, str], str]:
    """Decode every source clip, write all page clips; returns the sources' sha256. Lists every bad clip at once."""
    manifest = design.manifest
    decoded: dict[str, Clip] = {}
    problems: list[str] = []
    sources: dict[tuple[int, str], str] = {}
    for clip in design.clips.values():
        if clip.role != "real":
            continue
        path = manifest.items[clip.item].clips[clip.system]
        try:
            audio = read_clip(path)
            sources[clip.item, clip.system] = _sha256(path)
        except (ValueError, OSError) as error:
            problems.append(f"  {path}: {error}")
            continue
        if options.normalise:
            audio = rms_normalise(audio)
        decoded[clip.id] = audio
        write_wav(audio_dir / f"{clip.id}.wav", audio)
    if problems:
        shown = problems[:MAX_LISTED] + (
            [f"  ... and {len(problems) - MAX_LISTED} more"] if len(problems) > MAX_LISTED else []
        )
        raise MosInputError(f"{len(problems)} clip(s) cannot be used:\n" + "\n".join(shown))
    for clip in design.clips.values():
        if clip.role == "real":
            continue
        assert clip.source is not None
        if clip.role == "anchor":
            seed = int(hashlib.sha256(clip.id.encode()).hexdigest()[:8], 16)
            write_wav(audio_dir / f"{clip.id}.wav", degrade(decoded[clip.source], seed=seed))
        else:
            shutil.copyfile(audio_dir / f"{clip.source}.wav", audio_dir / f"{clip.id}.wav")
    return sources


def _write_static(stage: Path, config: dict[str, Any]) -> None:
    """index.html (title filled in), static/mos.js, static/mos.css, test.js and a README for whoever hosts it."""
    package = resources.files("audioldm_lora.mos") / "static"
    (stage / "static").mkdir()
    for name in STATIC_FILES:
        (stage / "static" / name).write_bytes((package / name).read_bytes())
    template = (package / "index.html").read_text(encoding="utf-8")
    (stage / "index.html").write_text(template.replace("__TITLE__", html.escape(config["title"])), encoding="utf-8")
    payload = json.dumps(config, indent=1, ensure_ascii=False).replace("</", "<\\/")
    (stage / "test.js").write_text(f"window.MOS_TEST = {payload};\n", encoding="utf-8")
    (stage / "README.txt").write_text(
        f"{config['title']} (test id {config['test_id']})\n\n"
        "Open index.html in a web browser, from disk or from any static web host; no server is needed.\n"
        "Answers are kept in the browser while you work; at the end, download the answer file and send it back.\n",
        encoding="utf-8",
    )


def _check_destination(out: Path, key: Path, overwrite: bool) -> None:
    """Refuse to overwrite a non-empty output folder or an existing key unless ``overwrite``; keep the key out of OUT."""
    if out.exists() and not out.is_dir():
        raise MosInputError(f"--out {out}: exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise MosInputError(f"--out {out}: folder is not empty; choose another or pass --overwrite to replace it.")
    if key.exists() and not overwrite:
        raise MosInputError(f"--key {key}: file exists; choose another or pass --overwrite to replace it.")
    resolved_out, resolved_key = out.resolve(), key.resolve()
    if resolved_out == resolved_key.parent or resolved_out in resolved_key.parents:
        raise MosInputError(
            f"--key {key}: the key must not lie inside the page folder {out}, or listeners could read it."
        )


def build_page(systems: list[str], out: str | Path, options: BuildOptions | None = None) -> BuildResult:
    """Build the page for ``systems`` (``NAME=DIR`` specs) into ``out``; see the module doc."""
    options = options or BuildOptions()
    out = Path(out)
    key = Path(options.key) if options.key else default_key_path(out)
    _check_destination(out, key, options.overwrite)
    for name, value in (("--repeats", options.repeats), ("--anchors", options.anchors)):
        if value < 0:
            raise MosInputError(f"{name} must be 0 or more, not {value}.")
    manifest: Manifest = build_manifest(systems, options.prompts)
    test_id = f"mos-{secrets.token_hex(6)}"
    design = make_design(
        manifest,
        mode=options.mode,
        test_id=test_id,
        salt=secrets.token_hex(16),
        repeats=options.repeats,
        anchors=options.anchors,
        seed=options.seed,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    key.parent.mkdir(parents=True, exist_ok=True)
    staged_key = key.parent / f".{key.name}.building"
    try:
        with staged_directory(out, mode="folder") as stage:
            (stage / "audio").mkdir()
            sources = _write_audio(design, options, stage / "audio")
            config = page_config(design, options)
            _write_static(stage, config)
            atomic_write_json(staged_key, key_document(design, options, sources))
        staged_key.replace(key)
    except BaseException:
        staged_key.unlink(missing_ok=True)
        raise
    n_trials = sum(len(trials) for _, trials in design.blocks)
    return BuildResult(out, key, test_id, len(manifest.items), n_trials, len(design.clips))
