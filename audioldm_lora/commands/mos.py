"""``audioldm-lora mos``: build a blind listening-test page, and analyse the answers listeners send back.

    audioldm-lora mos build --system base=DIR --system lora=DIR [--prompts FILE] --out DIR
    audioldm-lora mos analyze ANSWERS... --key OUT.key.json --out REPORT_DIR

``main(argv)`` returns the exit status instead of exiting, so the top-level CLI and the tests can call it:
0 on success, 2 for bad input (the message says what to fix; nothing is written).
"""

from __future__ import annotations

import sys

from jsonargparse import ArgumentParser, Namespace

from audioldm_lora.tool_convention import ToolParser, run_tool, tool_parser


def _build_parser() -> ArgumentParser:
    parser = ToolParser(description="Write a self-contained, blinded listening-test page and its key.")
    parser.add_argument(
        "--system",
        type=str,
        action="append",
        required=True,
        metavar="NAME=DIR",
        help="a system under test and its folder of clips; give it once per system (two or more). "
        "Clips are paired by their path relative to each folder.",
    )
    parser.add_argument("--out", type=str, required=True, help="folder for the page (must be new or empty).")
    parser.add_argument(
        "--prompts",
        type=str | None,
        default=None,
        help="prompt file: one prompt per line (clips in sorted order), or CSV/JSONL/JSON with "
        "path, prompt and optional genre. Without it, <stem>.json sidecars are read.",
    )
    parser.add_argument(
        "--key",
        type=str | None,
        default=None,
        help="where to write the unblinding key (default: <OUT>.key.json beside the page folder).",
    )
    parser.add_argument(
        "--mode",
        type=str,
        choices=["mos", "ab", "both"],
        default="mos",
        help="mos: rate every clip 1-5; ab: pairwise preference; both: MOS pages, then A/B pages.",
    )
    parser.add_argument("--title", type=str, default="Listening test", help="page title.")
    parser.add_argument("--instructions", type=str | None, default=None, help="instructions shown before the test.")
    parser.add_argument("--scale-label", type=str, default="Overall quality", help="name of the MOS scale.")
    parser.add_argument(
        "--scale-question",
        type=str,
        default="How would you rate the overall quality of this clip?",
        help="question asked for the MOS scale.",
    )
    parser.add_argument(
        "--second-scale",
        type=str | None,
        default=None,
        help="name of an optional second 1-5 scale, e.g. 'Genre fidelity'.",
    )
    parser.add_argument("--second-question", type=str | None, default=None, help="question for the second scale.")
    parser.add_argument("--repeats", type=int, default=1, help="repeated pages per block (attention check).")
    parser.add_argument("--anchors", type=int, default=1, help="degraded-anchor pages per block (attention check).")
    parser.add_argument("--seed", type=int, default=0, help="seed of the build's choices (attention pages, order).")
    parser.add_argument("--normalize", action="store_true", help="match every clip's RMS loudness (-20 dBFS).")
    parser.add_argument("--require-play", type=bool, default=True, help="enable rating only after a clip was played.")
    parser.add_argument("--allow-no-preference", type=bool, default=True, help="offer 'no preference' on A/B pages.")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing page folder and key.")
    return parser


def _analyze_parser() -> ArgumentParser:
    parser = ToolParser(description="Merge answer files, screen listeners and write MOS tables and charts.")
    parser.add_argument("answers", type=str, nargs="+", help="answer files downloaded by listeners.")
    parser.add_argument("--key", type=str, required=True, help="the key written by 'mos build' (<OUT>.key.json).")
    parser.add_argument("--out", type=str, required=True, help="folder for report.md, CSV tables and charts.")
    parser.add_argument(
        "--repeat-tolerance",
        type=float,
        default=1.0,
        help="largest mean absolute rating change on a repeated page before a listener is rejected.",
    )
    parser.add_argument(
        "--anchor-max",
        type=int,
        default=2,
        help="highest MOS a listener may give the degraded anchor before being rejected.",
    )
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals.")
    parser.add_argument("--n-resamples", type=int, default=10000, help="bootstrap resamples.")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed.")
    return parser


def build_parser() -> ArgumentParser:
    """The ``mos`` parser with its ``build`` and ``analyze`` subcommands."""
    parser = tool_parser("mos", "Blind MOS and A/B listening tests.")
    subcommands = parser.add_subcommands(dest="command", required=True)
    subcommands.add_subcommand("build", _build_parser(), help="write the listening-test page")
    subcommands.add_subcommand("analyze", _analyze_parser(), help="analyse the listeners' answer files")
    return parser


def _run_build(args: Namespace) -> int:
    from audioldm_lora.mos.page import BuildOptions, build_page

    options = BuildOptions(
        prompts=args.prompts,
        key=args.key,
        mode=args.mode,
        title=args.title,
        instructions=args.instructions,
        scale_label=args.scale_label,
        scale_question=args.scale_question,
        second_scale=args.second_scale,
        second_question=args.second_question,
        repeats=args.repeats,
        anchors=args.anchors,
        seed=args.seed,
        normalise=args.normalize,
        require_play=args.require_play,
        allow_no_preference=args.allow_no_preference,
        overwrite=args.overwrite,
    )
    result = build_page(args.system, args.out, options)
    print(
        f"Built listening test {result.test_id}: {result.n_items} prompts, {result.n_trials} pages, "
        f"{result.n_clips} clips."
    )
    print(f"  page: {result.out}/index.html (send or host this folder)")
    print(f"  key:  {result.key} (keep it private: it unblinds the test; 'mos analyze' needs it)")
    return 0


def _run_analyze(args: Namespace) -> int:
    from audioldm_lora.mos.pipeline import analyze_answers
    from audioldm_lora.mos.screening import ScreeningRules

    result = analyze_answers(
        args.answers,
        args.key,
        args.out,
        rules=ScreeningRules(repeat_tolerance=args.repeat_tolerance, anchor_max=args.anchor_max),
        confidence=args.confidence,
        n_resamples=args.n_resamples,
        seed=args.seed,
    )
    listeners = result.analysis.listeners
    accepted = sum(r.accepted for r in listeners)
    print(f"Listeners: {accepted} accepted, {len(listeners) - accepted} rejected.")
    for r in listeners:
        if not r.accepted:
            print(f"  rejected {r.answers.path} ({r.answers.listener_id}): {'; '.join(r.reasons)}")
    for row in result.analysis.mos:
        if row.genre == "all":
            print(
                f"  {row.scale:<16} {row.system:<16} MOS {row.summary.mean:.2f} "
                f"[{row.summary.t_low:.2f}, {row.summary.t_high:.2f}] n={row.summary.n}"
            )
    print(f"Report: {result.written[0]}")
    return 0


def run(args: Namespace) -> int:
    """Run the chosen subcommand."""
    if args.command == "build":
        return _run_build(args.build)
    return _run_analyze(args.analyze)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the subcommand; returns the exit status (2: bad input,
    reported as ``audioldm-lora mos build|analyze: error: ...``)."""
    return run_tool("mos", build_parser(), argv, run)


if __name__ == "__main__":
    sys.exit(main())
