"""The layer contract of DESIGN.md: `lint-imports` with the contracts in pyproject.toml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter (the dev extra) checks the layers")

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    exe = Path(sys.executable).with_name("lint-imports")
    found = str(exe) if exe.is_file() else shutil.which("lint-imports")
    if found is None:
        pytest.skip("no lint-imports executable next to this Python or on PATH")
    return found


@pytest.mark.parametrize("contract", ["layers", "acyclic"])
def test_import_contract_kept(contract: str) -> None:
    """No import up the layers, no import cycle between the modules of a package (this source tree)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    run = subprocess.run(
        [_lint_imports(), "--no-cache", "--no-logo", "--contract", contract, str(ROOT / "pyproject.toml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = run.stdout + run.stderr
    broken = report.find("Broken contracts")
    assert run.returncode == 0, f"import contract {contract!r} broken:\n{report[max(broken, 0) :]}"
