"""Model cards (a Hugging Face ``README.md``) for an adapter or a merged model, built offline from the run's records.

The card is made from ``adapter_info.json`` (base model, rank, alpha, targets, genres, steps, data config) and an
optional metrics JSON (the evaluation report, or any ``{set: {metric: value}}`` mapping). Its YAML front matter is
what the Hub indexes: ``library_name: diffusers``, ``base_model`` (only when it is a hub id: the Hub refuses local
paths there), ``license``, ``tags``.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from datamodules.manifest import DataSourceError, read_csv_manifest, scan_genre_folders
from lightning_modules.adapter_files import ADAPTER_WEIGHTS, DIFFUSERS_FORMAT, PEFT_FORMAT, ROOT_SITE
from metrics.comparison import row_label, with_interval

CARD_FILE = "README.md"
BASE_TAGS = ["diffusers", "text-to-audio", "music", "audioldm-lora"]
LEGACY_PIPELINE = "AudioLDMPipeline"
"""The pipeline of adapters whose ``adapter_info.json`` predates the ``pipeline`` record (all were AudioLDM v1)."""
LEGACY_SITES = {ROOT_SITE: {"format": DIFFUSERS_FORMAT, "label": "UNet"},
                "text_encoder": {"format": PEFT_FORMAT, "label": "CLAP text encoder"}}
"""Format and label of the sites of adapters whose records predate them (AudioLDM v1's two sites)."""
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelCardError(ValueError):
    """A metrics file that cannot be read or holds no numbers; the message names the file."""


def is_hub_id(name: str | None) -> bool:
    """Whether ``name`` looks like ``owner/model`` and is not a local path."""
    return bool(name) and bool(_HUB_ID.match(str(name))) and not Path(str(name)).expanduser().exists()


def read_metrics(path: str | Path) -> dict[str, Any]:
    """Parse a metrics JSON file.

    Raises:
        ModelCardError: the file is missing, not JSON, or not a JSON object or list.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelCardError(f"Metrics file {path} does not exist.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelCardError(f"Metrics file {path} is not valid JSON ({error}).") from error
    if isinstance(data, list):
        data = {"rows": data}
    if not isinstance(data, dict):
        raise ModelCardError(f"Metrics file {path} must hold a JSON object, not {type(data).__name__}.")
    return data


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_interval(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    """``{"base": {"kad": 1}}`` -> ``{"base/kad": 1}`` (one level), keeping numbers and None, the ``<name>_ci``
    intervals (shown in their number's cell) and the ``<name>_significant`` marks."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update({f"{key}/{k}": v for k, v in value.items() if _is_number(v) or v is None})
        elif _is_number(value) or value is None or (key.endswith("_ci") and _is_interval(value)) or (
                key.endswith("_significant") and isinstance(value, bool)):
            flat[key] = value
    return flat


def _rows(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The table's rows: the report's ``rows``, a ``{set: {...}}`` mapping, or one row of top-level numbers."""
    table = metrics.get("rows", metrics)
    if isinstance(table, list):
        named = {}
        for index, row in enumerate(r for r in table if isinstance(r, dict)):
            label = next((str(row[k]) for k in ("set", "name", "genre", "system") if k in row), str(index))
            named[label] = row
        table = named
    nested = {row_label(str(k), v) if isinstance(v.get("reference_set"), str) else str(k): v
              for k, v in table.items() if isinstance(v, dict)}
    if nested:
        return {name: _flatten(row) for name, row in nested.items()}
    return {"all": _flatten(table)}


def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


def _cell(row: dict[str, Any], column: str) -> str:
    """A number with its 95% interval where the row has one, and ``n.s.`` where a difference is not significant."""
    interval = row.get(f"{column}_ci")
    value = row.get(column)
    text = with_interval(value, interval, missing="–") if _is_interval(interval) else _format(value)
    return text + (" n.s." if row.get(f"{column}_significant") is False else "")


def metrics_table(metrics: dict[str, Any]) -> list[str]:
    """A markdown table (one row per set, one column per numeric metric) of a metrics mapping.

    Raises:
        ModelCardError: nothing numeric to show.
    """
    rows = _rows(metrics)
    columns: list[str] = []
    for row in rows.values():
        columns += [key for key, value in row.items()
                    if key not in columns and _is_number(value) and not key.endswith("_clips_needed")]
    if not columns:
        raise ModelCardError("The metrics hold no numbers to tabulate (expected {set: {metric: value}} or 'rows').")
    lines = ["| set | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(row, column) for column in columns) + " |")
    for role in ("generated", "reference"):
        if isinstance(metrics.get(role), dict) and "source" in metrics[role]:
            source = metrics[role]
            lines.append(f"\n{role.capitalize()} set: `{source['source']}` ({source.get('clips', '?')} clips).")
    return lines


def data_size(info: dict[str, Any]) -> str | None:
    """Training clips per genre: from ``info["data_size"]`` if recorded, else counted in the data source now."""
    if "data_size" in info:
        return str(info["data_size"])
    config = info.get("data_config") or {}
    try:
        if config.get("manifest"):
            items = read_csv_manifest(config["manifest"])
        elif config.get("root"):
            items = scan_genre_folders(config["root"])
        else:
            return None
    except (DataSourceError, OSError):
        return None
    wanted = set(config.get("genres") or info.get("genres") or [])
    items = [item for item in items if not wanted or item.genre in wanted]
    counts: dict[str, int] = {}
    for item in items:
        counts[item.genre] = counts.get(item.genre, 0) + 1
    detail = ", ".join(f"{genre}: {n}" for genre, n in sorted(counts.items()))
    return f"{len(items)} source files ({detail}; counted when this card was written)"


def front_matter(base_model: str | None, license: str, tags: list[str], relation: str | None = None) -> str:
    """The YAML block the Hub reads."""
    meta: dict[str, Any] = {"library_name": "diffusers", "pipeline_tag": "text-to-audio", "license": license}
    if is_hub_id(base_model):
        meta["base_model"] = base_model
        if relation:
            meta["base_model_relation"] = relation
    meta["tags"] = list(dict.fromkeys(tags))
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"




def _genre_tags(genres: list[str]) -> list[str]:
    return [re.sub(r"[^a-z0-9-]+", "-", g.lower()).strip("-") for g in genres if g]


def _listed(value: Any) -> str | None:
    """``[a, b]`` -> ``"a, b"``; a string as it is; nothing -> None."""
    if isinstance(value, (list, tuple, set)):
        return ", ".join(str(v) for v in value) or None
    return str(value) if value else None


def _training_rows(info: dict[str, Any]) -> list[str]:
    data = info.get("data_config") or {}
    scale = None
    if info.get("rank") and info.get("alpha"):
        scale = f"{info['alpha'] / (math.sqrt(info['rank']) if info.get('use_rslora') else info['rank']):g}"
    facts = [
        ("base model", _published_base(info)),
        ("rank", info.get("rank")),
        ("alpha", info.get("alpha")),
        ("update scale (alpha / rank; / sqrt(rank) with rsLoRA)", scale),
        ("target modules", _listed(info.get("target_modules"))),
        ("init", info.get("init")),
        ("DoRA / rsLoRA", f"{info.get('use_dora', False)} / {info.get('use_rslora', False)}" if info else None),
        ("trainable parameters", f"{info['trainable_parameters']:,}" if info.get("trainable_parameters") else None),
        ("optimizer steps", info.get("global_step")),
        ("genres", _listed(info.get("genres"))),
        # The folder's name only: a card is published, and a local path says nothing to its readers.
        ("training data", Path(str(data.get("manifest") or data.get("root"))).name or None
         if data.get("manifest") or data.get("root") else None),
        ("data size", data_size(info)),
        ("clip duration (s)", data.get("duration")),
        ("batch size", data.get("batch_size")),
    ]
    other_sites = {site: record for site, record in (info.get("sites") or {}).items()
                   if site != ROOT_SITE and isinstance(record, dict)}
    facts[5:5] = [(f"{_sites(info)[site]['label']} LoRA (rank, alpha, targets)",
                   f"{record.get('rank')}, {record.get('alpha')}, {_listed(record.get('target_modules'))}")
                  for site, record in other_sites.items()]
    lines = ["| setting | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in facts if value not in (None, "")]
    return lines


def _published_base(info: dict[str, Any]) -> str | None:
    """The base as a card may print it: the hub id (with the commit trained on), or "a local model" with its
    weights fingerprint (a local path means nothing to the card's readers)."""
    base = info.get("base_model")
    if base is None or is_hub_id(base):
        return f"{base} (commit `{info['base_commit'][:12]}`)" if base and info.get("base_commit") else base
    fingerprint = (info.get("base_fingerprint") or {}).get("value")
    return "a local model" + (f" (weights fingerprint `{fingerprint[:12]}`)" if fingerprint else "")


def _pipeline(info: dict[str, Any]) -> str:
    """The diffusers pipeline class of the adapter's base."""
    return str(info.get("pipeline") or LEGACY_PIPELINE)


def _family(pipeline: str) -> str:
    """``AudioLDMPipeline`` -> ``AudioLDM``: the model family as cards name it."""
    return pipeline.removesuffix("Pipeline")


def _sites(info: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each site of the adapter with its format and label, the root site first (from ``adapter_info.json``;
    adapters written before sites existed hold the UNet)."""
    recorded = info.get("sites") or {ROOT_SITE: {}}
    sites = {}
    for site in sorted(recorded, key=lambda name: name != ROOT_SITE):
        known = LEGACY_SITES.get(site, {"format": PEFT_FORMAT, "label": site})
        given = recorded[site] if isinstance(recorded[site], dict) else {}
        sites[site] = {key: str(given.get(key) or known[key]) for key in ("format", "label")}
    return sites


def _usage(base: str, where: str, prompt: str, pipeline: str, sites: dict[str, dict[str, str]]) -> list[str]:
    """Plain diffusers (+ peft for sites in peft's format) code that loads the adapter's sites and generates.

    A UNet in peft's format (AudioLDM2's, which has no diffusers LoRA loader) gets peft's injection and state-dict
    loading (docs/adapters.md) from the folder's files (downloaded first when the adapter lives on the Hub): the UNet
    stays the pipeline's own diffusers model (``save_pretrained``, offloading and compiling keep working), where
    ``PeftModel`` would replace it with a wrapper."""
    injected = [site for site, record in sites.items() if record["format"] == PEFT_FORMAT and site == ROOT_SITE]
    wrapped = [site for site, record in sites.items() if record["format"] == PEFT_FORMAT and site != ROOT_SITE]
    names = sorted({*(["LoraConfig", "inject_adapter_in_model", "set_peft_model_state_dict"] if injected else []),
                    *(["PeftModel"] if wrapped else [])})
    lines = ["```python", *(["import json", ""] if injected else []), f"from diffusers import {pipeline}"]
    lines += [f"from peft import {', '.join(names)}"] if names else []
    if injected:
        on_hub = is_hub_id(where)
        lines += [*(["from huggingface_hub import snapshot_download"] if on_hub else []),
                  "from safetensors.torch import load_file", "",
                  f'folder = snapshot_download("{where}")' if on_hub else f'folder = "{where}"']
    lines += [f'pipe = {pipeline}.from_pretrained("{base}")']
    for site, record in sites.items():
        if record["format"] == DIFFUSERS_FORMAT:
            lines += [f'pipe.{site}.load_lora_adapter("{where}", prefix=None, weight_name="{ADAPTER_WEIGHTS}", '
                      "use_safetensors=True)"]
        elif site in injected:
            lines += [f'config = json.load(open(f"{{folder}}/{site}/adapter_config.json"))',
                      "config = {key: value for key, value in config.items() if key in LoraConfig.__dataclass_fields__}",
                      f"inject_adapter_in_model(LoraConfig(**config), pipe.{site})",
                      f'set_peft_model_state_dict(pipe.{site}, load_file(f"{{folder}}/{site}/adapter_model.safetensors"))']
        else:
            lines += [f'pipe.{site} = PeftModel.from_pretrained(pipe.{site}, "{where}", subfolder="{site}")']
    return [*lines, f'audio = pipe("{prompt}", num_inference_steps=200, audio_length_in_s=10.24).audios[0]', "```"]


def _metrics_section(metrics: dict[str, Any] | None) -> list[str]:
    if metrics is None:
        return ["## Evaluation", "", "No evaluation metrics were supplied (`audioldm-lora model-card --metrics FILE`)."]
    return ["## Evaluation", "", *metrics_table(metrics)]


def adapter_card(
    info: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    *,
    base_model: str | None = None,
    license: str = "other",
    repo_id: str | None = None,
) -> str:
    """The README.md of an adapter folder.

    Args:
        info: the adapter's ``adapter_info.json``.
        base_model: hub id of the base when ``info["base_model"]`` is a local path (e.g. a downloaded copy).
        repo_id: where the adapter will live on the Hub (used in the usage snippet).
    """
    base = base_model or info.get("base_model") or "cvssp/audioldm-s-full-v2"
    if not is_hub_id(base):
        base = "path/to/the/base"  # a local folder's path is the author's, not the reader's
    genres = list(info.get("genres") or [])
    pipeline = _pipeline(info)
    tags = [*BASE_TAGS, _family(pipeline).lower(), "lora", *_genre_tags(genres)]
    prompt = f"{genres[0].replace('_', ' ')} music" if genres else "hip hop music, boom bap"
    where = repo_id or "path/to/this/folder"
    sites = _sites(info)
    title = f"{', '.join(genres)} LoRA for {_family(pipeline)}" if genres else f"LoRA adapter for {_family(pipeline)}"
    note = [] if is_hub_id(base) else [
        f"The base was {_published_base(info) or 'a local model'}; give its hub id with `--base-model` so the Hub "
        "links it.", ""
    ]
    lines = [
        front_matter(base, license, tags, relation="adapter"),
        f"# {title}",
        "",
        (
            f"A LoRA adapter for the {' and the '.join(site['label'] for site in sites.values())} of "
            f"{f'[{base}](https://huggingface.co/{base})' if is_hub_id(base) else _published_base(info) or 'a local model'}, "
            "fine-tuned with audioldm-lora on genre-labelled music "
            "(method: Kim et al., *Enhancing Diffusion-Based Music Generation Performance with LoRA*, 2025)."
        ),
        "",
        *note,
        "## Usage",
        "",
        *_usage(base, where, prompt, pipeline, sites),
        "",
        (
            f"or, with this folder downloaded: `audioldm-lora generate --base {base} --adapter path/to/this/folder "
            f'--prompt "{prompt}" --out samples/`.'
        ),
        "",
        "## Training",
        "",
        *_training_rows(info),
        "",
        *_metrics_section(metrics),
        "",
    ]
    return "\n".join(lines)


def merged_card(
    base_model: str,
    adapters: list[tuple[dict[str, Any], dict[str, Any]]],
    metrics: dict[str, Any] | None = None,
    *,
    license: str = "other",
    repo_id: str | None = None,
) -> str:
    """The README.md of a merged model directory (the base's pipeline with the adapters fused in).

    Args:
        adapters: ``(spec, info)`` per fused adapter: ``spec`` as :meth:`AdapterSpec.describe` gives it, ``info`` its
            ``adapter_info.json`` (may be empty).
    """
    genres = [g for _, info in adapters for g in info.get("genres") or []]
    pipeline = _pipeline(adapters[0][1] if adapters else {})
    tags = [*BASE_TAGS, _family(pipeline).lower(), "lora", "merged-lora", *_genre_tags(genres)]
    where = repo_id or "path/to/this/folder"
    labels = {site: record["label"] for _, info in adapters for site, record in _sites(info).items()}
    sites = sorted(labels, key=lambda site: site != ROOT_SITE)
    lines = [
        front_matter(base_model, license, tags),
        f"# {_family(pipeline)} with {len(adapters)} fused LoRA adapter(s)",
        "",
        (
            f"The complete {_family(pipeline)} pipeline of `{base_model}` with these LoRA adapters fused into its "
            f"{' and '.join(labels[site] for site in sites)} "
            "(written by `audioldm-lora merge`); it loads with no extra code:"
        ),
        "",
        "```python",
        f"from diffusers import {pipeline}",
        f'pipe = {pipeline}.from_pretrained("{where}")',
        "```",
        "",
        "| adapter | weight | rank | alpha | genres | steps | path |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for spec, info in adapters:
        lines.append(
            f"| {spec['name']} | {spec['weight']:g} | {info.get('rank', '–')} | {info.get('alpha', '–')} | "
            f"{', '.join(info.get('genres') or []) or '–'} | {info.get('global_step', '–')} | `{spec['path']}` |"
        )
    lines += ["", *_metrics_section(metrics), ""]
    return "\n".join(lines)


def write_card(directory: str | Path, text: str) -> Path:
    """Write ``directory/README.md``; the file appears only when complete."""
    path = Path(directory) / CARD_FILE
    tmp = path.with_name(f".{CARD_FILE}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
