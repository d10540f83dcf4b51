"""The import layering of DESIGN.md §1, checked by import-linter's contracts in pyproject.toml.

`make test` runs `lint-imports` too; this test makes a plain `pytest` run catch a violation.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"import-linter contracts broken:\n{done.stdout}\n{done.stderr}"
    assert " kept, 0 broken." in done.stdout
