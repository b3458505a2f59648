"""Tools answer `--help` (and the MOS kit does its work) without importing torch, Lightning or diffusers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from audioldm_lora.cli import TOOLS

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["torch", "lightning", "diffusers", "transformers"]

PROBE = """
import json, sys
sys.argv = ["audioldm-lora", *{argv!r}]
try:
    {body}
except SystemExit:
    pass
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))))
"""


def heavy_imports(body: str, argv: list[str] | None = None) -> list[str]:
    code = PROBE.format(argv=argv or [], body=body, heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_help_imports_no_heavy_library(tool: str) -> None:
    assert heavy_imports("from audioldm_lora.cli import main; main()", [tool, "--help"]) == []


def test_the_probe_sees_a_heavy_import() -> None:
    assert heavy_imports("import torch") == ["torch"]


def test_the_mos_kit_imports_no_heavy_library() -> None:
    body = "import audioldm_lora.commands.mos, audioldm_lora.mos.page, audioldm_lora.mos.report, audioldm_lora.mos.analysis"
    assert heavy_imports(body) == []
