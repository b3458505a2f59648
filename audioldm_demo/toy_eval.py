"""Did LoRA teach the toy AudioLDM genre F without breaking A..E? The paper's table, measured offline.

For every genre the same prompt (the world's caption: ``"<genre> music"`` for the procedural genres, the
catalogue's own for real music) and seeds are sampled with the adapter and without it
(:func:`lightning_modules.ab.generate_ab`: one generator per clip), embedded with the weight-free mel-statistics
embedder and scored (KAD, FAD with paired intervals; :mod:`metrics.paired`) against reference clips of that genre
that neither the toy base build nor the LoRA data used (:mod:`audioldm_demo.toy_world`). The targets of the demo:
KAD on F at least 30% lower with the adapter, significantly (paired 95% interval below 0), and no genre of A..E
significantly more than 10% worse (a rise whose paired interval holds 0 is within what 48 clips can tell apart).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from datamodules.audio import save_audio
from datamodules.clip_folder import write_sidecar
from lightning_modules.ab import generate_ab
from lightning_modules.sampling_settings import SamplingSettings
from lightning_modules.adapter_files import parse_adapter_spec, read_adapter
from lightning_modules.adapters import load_adapters
from lightning_modules.backbone import Backbone, load_backbone
from audioldm_demo.toy_base import read_recipe, toy_world
from audioldm_demo.toy_settings import ToyEvalSettings
from audioldm_demo.toy_world import CatalogueWorld, SyntheticWorld, ToyWorld
from metrics.embedders.base import AudioEmbedder
from metrics.embedders.factory import build_embedder
from metrics.comparison import compare_reports, comparison_markdown
from metrics.evaluation import scores_of
from metrics.genre_scores import LabelledEmbeddings
from metrics.paired import paired_differences

POOLED = "A..E pooled"  # genres A..E scored as one group: what "the others" are, with 5x the clips of a genre


@dataclass
class ToyEvalResult:
    """The comparison rows (``metrics.comparison.compare_reports``), the verdict and where files went."""

    rows: dict[str, dict[str, Any]]
    settings: ToyEvalSettings
    failures: list[str] = field(default_factory=list)
    wav_dir: Path | None = None
    other_rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # by embedder spec

    @property
    def passed(self) -> bool:
        """True when both demo targets hold."""
        return not self.failures


def eval_world(settings: ToyEvalSettings) -> ToyWorld:
    """Where the prompts and references come from: the settings' catalogue, or the procedural genres."""
    return CatalogueWorld(settings.catalogue) if settings.catalogue else SyntheticWorld(settings.caption_template)


def settings_for_base(settings: ToyEvalSettings, base: str | Path) -> ToyEvalSettings:
    """``settings`` with the genres, held-out genre and catalogue of the toy base at ``base`` when it was built on
    a real-music catalogue and the settings name none (the report then scores the world the base learned)."""
    recipe = read_recipe(base)
    if recipe is None or recipe.catalogue is None or settings.catalogue is not None:
        return settings
    toy_world(recipe)  # the catalogue is still the one the base learned (ToyBaseError names it otherwise)
    return dataclasses.replace(settings, catalogue=recipe.catalogue, held_out=recipe.held_out,
                               base_genres=recipe.genres)


def reference_clips(settings: ToyEvalSettings) -> tuple[torch.Tensor, list[str]]:
    """Every genre's reference clips, which no training saw (audioldm_demo/toy_world.py), and their genres."""
    world = eval_world(settings)
    clips, labels = [], []
    for genre in settings.genres:
        clips.append(world.reference_waveforms(genre, settings.reference_clips, settings.duration))
        labels += [genre] * settings.reference_clips
    return torch.cat(clips), labels


def reference_embeddings(settings: ToyEvalSettings, embedder: AudioEmbedder,
                         references: tuple[torch.Tensor, list[str]] | None = None) -> LabelledEmbeddings:
    """``embedder``'s embeddings of :func:`reference_clips` (or of ``references``, already read)."""
    clips, genres = references if references is not None else reference_clips(settings)
    source = "catalogue reference clips" if settings.catalogue else "synthetic reference clips"
    return LabelledEmbeddings(embedder.embed_audio(clips, 16_000).cpu().numpy(), genres, source)


def significantly_worse(row: dict[str, Any], tolerance: float) -> bool:
    """Whether the adapter's KAD is worse than the base's by more than ``tolerance`` (a fraction of ``|KAD base|``;
    KAD is unbiased and can be negative near zero) and the paired interval of the difference lies above 0. A rise
    whose interval holds 0 is not evidence of harm (docs/statistics.md); a row without an interval is judged by its
    point values alone."""
    rise = row["kad_lora"] - row["kad_base"] > tolerance * abs(row["kad_base"])
    return rise and row.get("kad_delta_significant", True) is not False


def kad_failures(rows: dict[str, dict[str, Any]], settings: ToyEvalSettings) -> list[str]:
    """The demo targets that do not hold, each as a sentence (empty when both hold).

    F: KAD at least ``f_improvement`` lower, and the paired interval of the difference below 0 (significant).
    A..E, pooled and each: not significantly worse by more than ``max_regression`` (:func:`significantly_worse`).
    """
    failures = []
    f = rows[settings.held_out]
    if not f["kad_lora"] <= (1.0 - settings.f_improvement) * f["kad_base"]:
        failures.append(f"{settings.held_out}: KAD {f['kad_base']:.3f} -> {f['kad_lora']:.3f}, not "
                        f"{settings.f_improvement:.0%} lower")
    elif f.get("kad_delta_significant") is False:
        failures.append(f"{settings.held_out}: KAD {f['kad_base']:.3f} -> {f['kad_lora']:.3f}, but the paired "
                        f"interval {f['kad_delta_ci']} holds 0 (not significant)")
    for genre in [POOLED, *settings.base_genres]:
        row = rows[genre]
        if significantly_worse(row, settings.max_regression):
            failures.append(f"{genre}: KAD {row['kad_base']:.3f} -> {row['kad_lora']:.3f}, more than "
                            f"{settings.max_regression:.0%} worse, and significantly")
    return failures


def _pool_base_genres(embeddings: LabelledEmbeddings, settings: ToyEvalSettings) -> LabelledEmbeddings:
    """The same rows with genres A..E relabelled as one group, :data:`POOLED` (F keeps its label)."""
    genres = [POOLED if g in settings.base_genres else g for g in embeddings.genres]
    return LabelledEmbeddings(embeddings.embeddings, genres, embeddings.source)


def _write_wavs(directory: Path, waveforms: torch.Tensor, labels: list[str], seeds: list[int], prompts: list[str],
                sample_rate: int) -> None:
    """``<genre>_seed<N>.wav`` with a ``.json`` sidecar (prompt, genre, seed): the same stems in both arms' folders,
    which is how ``audioldm-lora mos build`` pairs them and shows their prompts."""
    directory.mkdir(parents=True, exist_ok=True)
    for waveform, label, seed, prompt in zip(waveforms, labels, seeds, prompts):
        path = directory / f"{label}_seed{seed}.wav"
        save_audio(path, waveform, sample_rate)
        write_sidecar(path, {"prompt": prompt, "genre": label, "seed": seed})


def evaluate_backbone(
    backbone: Backbone, settings: ToyEvalSettings, wav_dir: str | Path | None = None
) -> ToyEvalResult:
    """Score ``backbone`` (whose UNet holds the adapter, active) with and without the adapter."""
    world = eval_world(settings)
    prompts, seeds, labels = [], [], []
    for genre in settings.genres:
        for i in range(settings.clips_per_genre):
            prompts.append(world.caption(genre))
            seeds.append(settings.seed + i)
            labels.append(genre)
    sampling = SamplingSettings(settings.num_inference_steps, settings.guidance_scale, settings.scheduler,
                                settings.duration)
    lora, base = generate_ab(backbone, prompts, seeds, sampling, batch_size=settings.batch_size)
    rate = backbone.sampling_rate
    if wav_dir is not None:
        for name, waveforms in (("base", base), ("lora", lora)):
            _write_wavs(Path(wav_dir) / name, waveforms, labels, seeds, prompts, rate)
    references = reference_clips(settings)  # read (or synthesized) once, embedded by each embedder
    rows = {spec: score_arms(build_embedder(spec), settings, references, base, lora, labels, rate)
            for spec in ("mel-stats", *settings.extra_embedders)}
    primary = rows.pop("mel-stats")
    return ToyEvalResult(primary, settings, kad_failures(primary, settings),
                         Path(wav_dir) if wav_dir is not None else None, rows)


def score_arms(embedder: AudioEmbedder, settings: ToyEvalSettings, references: tuple[torch.Tensor, list[str]],
               base: torch.Tensor, lora: torch.Tensor, labels: list[str], rate: int) -> dict[str, dict[str, Any]]:
    """The comparison rows of both arms under one embedder: every genre, A..E pooled and all."""
    reference = reference_embeddings(settings, embedder, references)
    pooled_reference = _pool_base_genres(reference, settings)
    scores, pooled = {}, {}
    for name, waveforms in (("base", base), ("lora", lora)):
        generated = LabelledEmbeddings(embedder.embed_audio(waveforms, rate).cpu().numpy(), labels, name)
        scores[name] = scores_of(generated, reference)
        pooled[name] = scores_of(_pool_base_genres(generated, settings), pooled_reference)
    rows = compare_reports(scores["base"].compute(), scores["lora"].compute(),
                           paired_differences(scores["base"], scores["lora"]))
    rows[POOLED] = compare_reports(pooled["base"].compute(), pooled["lora"].compute(),
                                   paired_differences(pooled["base"], pooled["lora"]))[POOLED]
    return rows


def evaluate_adapter(
    base: str | Path, adapter: str | Path, settings: ToyEvalSettings = ToyEvalSettings(),
    wav_dir: str | Path | None = None,
) -> ToyEvalResult:
    """Load the toy base and the adapter folder (``<run>/adapters/final``) and score base against LoRA."""
    settings = settings_for_base(settings, base)
    backbone = load_backbone(str(base))
    load_adapters(backbone, [read_adapter(parse_adapter_spec(f"lora={adapter}"))], str(base))
    return evaluate_backbone(backbone, settings, wav_dir)


EMBEDDER_NOTES = {"crepe": "the tiny CREPE pitch network (pitch content and melody, not timbre)",
                  "crepe:full": "the full CREPE pitch network (pitch content and melody, not timbre)"}


def comparison_table(result: ToyEvalResult, rows: dict[str, dict[str, Any]], title: str) -> str:
    """One embedder's table: genre F first (relabelled), then A..E, pooled and all."""
    s = result.settings
    order = [s.held_out, *s.base_genres, POOLED, "all"]
    held_out = f"{s.held_out} (F, held out)"
    rows = {g: rows[g] for g in order if g in rows}
    # F's row is relabelled; its reference set (F's own clips) is relabelled with it, so it is not marked "vs".
    rows = {(held_out if g == s.held_out else g): ({**row, "reference_set": held_out} if g == s.held_out else row)
            for g, row in rows.items()}
    return comparison_markdown(rows, title)


def result_markdown(result: ToyEvalResult) -> str:
    """The paper-style table (genre F first), the targets and their verdict; then the same comparison under each
    extra embedder (judged by nothing: the verdict is the mel-statistics table's)."""
    s = result.settings
    table = comparison_table(result, result.rows,
                             f"Toy AudioLDM: base vs LoRA on held-out genre {s.held_out!r} and genres A..E")
    verdict = "PASS" if result.passed else "FAIL: " + "; ".join(result.failures)
    f = result.rows[s.held_out]
    change = (f["kad_lora"] - f["kad_base"]) / abs(f["kad_base"]) if f["kad_base"] else float("nan")
    lines = [
        table,
        f"Mel-statistics embedder, {s.clips_per_genre} clips per genre (seeds {s.seed}..{s.seed + s.clips_per_genre - 1}), "
        f"{s.reference_clips} held-out reference clips per genre, {s.num_inference_steps} {s.scheduler} steps, guidance "
        f"{s.guidance_scale}.",
        f"KAD on {s.held_out}: {change:+.0%} (target: <= -{s.f_improvement:.0%}, significant); A..E, pooled and each: "
        f"not significantly more than {s.max_regression:.0%} worse. Verdict: {verdict}",
    ]
    for spec, rows in result.other_rows.items():
        note = EMBEDDER_NOTES.get(spec, spec)
        lines += ["", comparison_table(result, rows, f"The same clips under the {spec!r} embedder: {note}")]
    return "\n".join(lines) + "\n"
