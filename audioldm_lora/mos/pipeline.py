"""``mos analyze`` as one library call: load, check, screen, compute, write.

All input is loaded and checked before any output is written, so a malformed file or an answer file from another
test stops the run with the file's name and leaves the output folder as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .analysis import Analysis, analyse
from .answers import load_answers, load_key
from .errors import MosInputError
from .report import write_report
from .screening import ScreeningRules, screen


@dataclass(frozen=True)
class AnalyzeResult:
    """The analysis and the files written."""

    analysis: Analysis
    written: list[Path]


def analyze_answers(
    answer_paths: list[str | Path],
    key_path: str | Path,
    out: str | Path,
    *,
    rules: ScreeningRules | None = None,
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int = 0,
) -> AnalyzeResult:
    """Merge ``answer_paths`` against the key at ``key_path`` and write the report into ``out``."""
    if not answer_paths:
        raise MosInputError("no answer files given.")
    if not 0.0 < confidence < 1.0:
        raise MosInputError(f"--confidence must lie between 0 and 1, not {confidence}.")
    if n_resamples < 100:
        raise MosInputError(f"--n-resamples must be at least 100, not {n_resamples}.")
    rules = rules or ScreeningRules()
    key = load_key(key_path)
    files = [load_answers(path, key) for path in answer_paths]
    results = screen(files, key, rules)
    if not any(result.accepted for result in results):
        listing = "\n".join(f"  {r.answers.path}: {'; '.join(r.reasons)}" for r in results)
        raise MosInputError(f"no listener passed the checks, so there is nothing to analyse:\n{listing}")
    analysis = analyse(key, results, confidence=confidence, n_resamples=n_resamples, seed=seed)
    analysis.settings.update({"repeat_tolerance": rules.repeat_tolerance, "anchor_max": rules.anchor_max})
    return AnalyzeResult(analysis, write_report(analysis, out))
