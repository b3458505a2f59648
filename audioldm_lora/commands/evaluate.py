"""``audioldm-lora evaluate``: CLAP score, KAD and FAD of a folder of generated clips against a reference folder.

    audioldm-lora evaluate --generated DIR --reference DIR [--prompts FILE | --manifest FILE] [--baseline DIR] \\
        [--embedder mel-stats | clap[:ID_OR_DIR] | laion:CKPT.pt] [--out DIR] \\
        [--generated-embeddings A.npy] [--reference-embeddings B.npy] [--clap-convention raw|shifted]

Writes ``metrics.json`` and ``metrics.md`` (a table: all clips, then one row per genre) to ``--out`` and prints the
table. Genres come from subfolders (``DIR/<genre>/clip.wav``) or the manifest's ``genre`` column; prompts from the
manifest's ``caption``, ``--prompts``, or ``<stem>.json`` sidecars (see :mod:`metrics.clip_labels`). The CLAP score
needs prompts and a CLAP embedder. Embeddings are cached per file (content hash + embedder id). Every score has its
95% interval. ``--baseline DIR`` holds the same files made another way (the base model on the same prompts and
seeds): the report then adds the paper's comparison table, each delta with its paired interval (files paired by
name, :mod:`metrics.paired`).

``main(argv)`` returns the exit status: 0 on success, 2 for bad input (the message names the file or folder and
what to fix; nothing is written). Progress over the embedded files goes to stderr (``--progress false``: none).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from jsonargparse import ArgumentParser, Namespace

from audioldm_lora.tool_convention import (
    ProgressReporter,
    add_device_argument,
    add_progress_argument,
    resolve_device,
    run_tool,
    tool_parser,
)
from datamodules.atomic_files import atomic_write_json, atomic_write_text
from metrics.specs import CLAP_CONVENTIONS, EMBEDDER_SPECS

if TYPE_CHECKING:  # the work imports torch and the metrics after parsing, so that --help answers at once
    from metrics.cache import EmbeddingCache
    from metrics.clip_labels import Clip
    from metrics.embedders import AudioEmbedder
    from metrics.genre_scores import LabelledEmbeddings

def build_parser() -> ArgumentParser:
    """The command's arguments (``--help`` shows them)."""
    parser = tool_parser("evaluate", __doc__.split("\n\n")[0])
    parser.add_argument("--generated", type=str | None, default=None, help="folder of generated clips.")
    parser.add_argument("--reference", type=str | None, default=None, help="folder of reference (real) clips.")
    parser.add_argument("--prompts", type=str | None, default=None,
                        help="prompts of the generated clips: one per line (sorted clip order), or CSV/JSONL/JSON "
                             "with path and prompt[, genre].")
    parser.add_argument("--manifest", type=str | None, default=None,
                        help="CSV manifest path,caption,genre of the generated clips (paths relative to it).")
    parser.add_argument("--baseline", type=str | None, default=None,
                        help="folder of the same clips (same names) from the base model on the same prompts and "
                             "seeds: adds the base-vs-generated table with paired intervals.")
    parser.add_argument("--embedder", type=str, default="mel-stats",
                        help=f"embedding model: {', '.join(EMBEDDER_SPECS)}.")
    parser.add_argument("--out", type=str | None, default=None,
                        help="output folder for metrics.json and metrics.md (default: runs/evaluate/<generated>).")
    parser.add_argument("--generated-embeddings", type=str | None, default=None,
                        help="precomputed [N, D] .npy embeddings instead of --generated.")
    parser.add_argument("--reference-embeddings", type=str | None, default=None,
                        help="precomputed [M, D] .npy embeddings instead of --reference.")
    parser.add_argument("--clap-convention", type=str, choices=list(CLAP_CONVENTIONS), default="raw",
                        help="raw: mean cosine in [-1, 1] (audiocraft); shifted: (cos + 1) / 2 (the paper's code).")
    parser.add_argument("--kad-bandwidth", type=float | None, default=None,
                        help="fixed KAD bandwidth (default: median pairwise distance of the generated set).")
    parser.add_argument("--cache-dir", type=str | None, default=None,
                        help="embedding cache folder (default: $AUDIOLDM_LORA_EMBEDDING_CACHE, else "
                        "$XDG_CACHE_HOME/audioldm-lora/embeddings, else ~/.cache/audioldm-lora/embeddings).")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write cached embeddings.")
    add_device_argument(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="clips per embedding batch.")
    parser.add_argument("--seed", type=int, default=0, help="seed of CLAP's random crop of clips over 10 s.")
    add_progress_argument(parser, "the embedded files")
    return parser


def run(args: Namespace) -> int:
    """Score the sets, then write metrics.json and metrics.md (nothing is written when the input is bad)."""
    from metrics.evaluation import render_markdown

    report, out = _run(args)
    markdown = render_markdown(report)
    if "comparison" in report:
        from metrics.comparison import comparison_markdown

        title = f"--baseline ({report['comparison']['baseline']}) as base, --generated as LoRA, paired by file"
        markdown += "\n" + comparison_markdown(report["comparison"]["rows"], title)
    atomic_write_json(out / "metrics.json", report)
    atomic_write_text(out / "metrics.md", markdown)
    print(markdown, end="")
    print(f"Wrote {out / 'metrics.json'} and {out / 'metrics.md'}")
    return 0


def _run(args: Namespace) -> tuple[dict, Path]:
    """Validate the inputs, embed both sets and score them; nothing is written here."""
    from metrics.cache import EmbeddingCache, default_cache_dir
    from metrics.clip_labels import EvaluationInputError, discover_clips, label_clips
    from metrics.embedders import build_embedder
    from metrics.comparison import compare_reports
    from metrics.evaluation import scores_of
    from metrics.paired import paired_differences

    for folder, npy, role in ((args.generated, args.generated_embeddings, "generated"),
                              (args.reference, args.reference_embeddings, "reference")):
        if (folder is None) == (npy is None):
            raise EvaluationInputError(f"give exactly one of --{role} DIR or --{role}-embeddings FILE.npy")
    if (args.prompts or args.manifest or args.baseline) and args.generated is None:
        raise EvaluationInputError("--prompts, --manifest and --baseline go with the clips of --generated DIR")
    if args.batch_size < 1:
        raise EvaluationInputError(f"--batch-size must be at least 1, got {args.batch_size}")
    generated_clips = reference_clips = None
    if args.generated is not None:
        generated_clips = label_clips(discover_clips(args.generated, "generated"), args.prompts, args.manifest)
    if args.reference is not None:
        reference_clips = discover_clips(args.reference, "reference")
    baseline_clips = _paired_clips(generated_clips, args.baseline) if args.baseline else None
    for clips, role in ((generated_clips, "generated"), (reference_clips, "reference")):
        if clips is not None and len(clips) < 2:
            raise EvaluationInputError(
                f"the {role} folder holds {len(clips)} audio file; KAD and FAD need at least 2 clips per set"
            )

    notes: list[str] = []
    embedder: AudioEmbedder | None = None
    cache: EmbeddingCache | None = None
    if generated_clips is not None or reference_clips is not None:
        device = resolve_device(args.device)
        embedder = build_embedder(args.embedder, device=device, batch_size=args.batch_size, seed=args.seed).load()
        cache = None
        if not args.no_cache:
            cache = EmbeddingCache(args.cache_dir or default_cache_dir(), embedder.embedder_id)
    generated = _embeddings(generated_clips, args.generated, args.generated_embeddings, "generated", embedder, cache,
                            args.batch_size, args.progress)
    reference = _embeddings(reference_clips, args.reference, args.reference_embeddings, "reference", embedder, cache,
                            args.batch_size, args.progress)

    text_embeddings, prompted = None, None
    if generated_clips is not None:
        prompted = [bool(clip.prompt) for clip in generated_clips]
        if not any(prompted):
            notes.append("no prompts for the generated clips (--prompts, --manifest or <stem>.json): no CLAP score")
        elif embedder is None or not embedder.supports_text:
            notes.append(f"the CLAP score needs a CLAP embedder (clap:..., laion:...), not {args.embedder!r}")
        else:
            texts = [clip.prompt or "" for clip in generated_clips]
            text_embeddings = embedder.embed_text(texts).cpu().numpy()
            if not all(prompted):
                notes.append(f"{prompted.count(False)} generated clips have no prompt and are left out of the CLAP score")
    elif args.prompts or args.manifest:
        notes.append("precomputed generated embeddings: no CLAP score")

    settings = {"text_embeddings": text_embeddings, "prompted": prompted, "convention": args.clap_convention,
                "bandwidth": args.kad_bandwidth}
    scores = scores_of(generated, reference, **settings)
    report = scores.compute()
    if baseline_clips is not None:
        baseline = _embeddings(baseline_clips, args.baseline, None, "baseline", embedder, cache, args.batch_size,
                               args.progress)
        baseline_scores = scores_of(baseline, reference, **settings)
        report["comparison"] = {"baseline": args.baseline, "paired_by": "file name",
                                "rows": compare_reports(baseline_scores.compute(), report,
                                                        paired_differences(baseline_scores, scores))}
    report["embedder"] = args.embedder if embedder is not None else "precomputed"
    report["embedder_id"] = embedder.embedder_id if embedder is not None else "precomputed"
    report["notes"] = notes
    if generated_clips is not None:
        report["generated"]["files"] = [
            {"key": clip.key, "genre": clip.genre, "prompt": clip.prompt} for clip in generated_clips
        ]
    default_name = Path(args.generated or args.generated_embeddings).with_suffix("").name
    out = Path(args.out) if args.out else Path("runs") / "evaluate" / default_name
    return report, out


def _paired_clips(generated: list[Clip], folder: str) -> list[Clip]:
    """The baseline's clips in the order of the generated ones, with their genres and prompts (same names: the
    same prompt and seed).

    Raises:
        EvaluationInputError: a name is in one folder and not the other (the first few are named).
    """
    from dataclasses import replace

    from metrics.clip_labels import EvaluationInputError, discover_clips

    baseline = {clip.key: clip for clip in discover_clips(folder, "baseline")}
    names = {clip.key for clip in generated}
    for missing, where, other in ((sorted(names - set(baseline)), f"--baseline {folder}", "--generated"),
                                  (sorted(set(baseline) - names), "--generated", f"--baseline {folder}")):
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise EvaluationInputError(f"{where} lacks {len(missing)} clip(s) that {other} has: {shown}. A paired "
                                       "comparison needs the same file names in both folders (same prompt and seed)")
    return [replace(baseline[clip.key], genre=clip.genre, prompt=clip.prompt) for clip in generated]


def _embeddings(
    clips: list[Clip] | None,
    folder: str | None,
    npy: str | None,
    role: str,
    embedder: AudioEmbedder | None,
    cache: EmbeddingCache | None,
    batch_size: int,
    progress: bool = True,
) -> LabelledEmbeddings:
    """Embeddings of one set, from its clips (through the cache) or from a ``.npy`` file."""
    import numpy as np

    from metrics.cache import embed_files
    from metrics.clip_labels import EvaluationInputError
    from metrics.genre_scores import LabelledEmbeddings

    if clips is not None:
        assert embedder is not None
        with ProgressReporter(f"embedding {role}", "files", len(clips), enabled=progress) as reporter:
            values = embed_files([clip.path for clip in clips], embedder, cache, batch_size, progress=reporter)
        return LabelledEmbeddings(values, [clip.genre for clip in clips], str(folder))
    path = Path(npy)
    if not path.is_file():
        raise EvaluationInputError(f"--{role}-embeddings file {path} not found")
    try:
        values = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise EvaluationInputError(f"--{role}-embeddings {path}: not a plain .npy array ({error})") from error
    if values.ndim != 2:
        raise EvaluationInputError(f"--{role}-embeddings {path}: expected a 2-D [N, D] array, got shape {values.shape}")
    if values.shape[0] < 2:
        raise EvaluationInputError(
            f"--{role}-embeddings {path} holds {values.shape[0]} embedding; KAD and FAD need at least 2 per set"
        )
    return LabelledEmbeddings(values.astype(np.float32), [None] * values.shape[0], str(path))


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; returns 0, or 2 after printing what is wrong with the input."""
    return run_tool("evaluate", build_parser(), argv, run)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
