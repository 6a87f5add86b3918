"""The import contracts (.importlinter, run by scripts/test.sh) hold, and really fail when a
forbidden import is added (issue 12 item 5, decision 0015).

The second half is what makes the first worth anything: a contract whose module names are
misspelt, or whose graph leaves out the standard library, is "kept" whatever the code does. Each
forbidden import is added to a copy of ``cc_core`` and ``lint-imports`` must name the contract
and the import.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), str(root / ".importlinter"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of cc_core and the contracts; lint-imports reads the package from its folder."""
    shutil.copytree(REPO / "cc_core", tmp_path / "cc_core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def test_the_contracts_hold_on_the_code_as_it_is(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract", "broken"),
    [
        (
            "switch/numbers.py",
            "from cc_core.ivr import prompts as _prompts",
            "The switch boundary imports no domain",
            "cc_core.switch is not allowed to import cc_core.ivr",
        ),
        (
            "calls/store.py",
            "from cc_core.web import health as _health",
            "Domains never import the web layer",
            "cc_core.calls is not allowed to import cc_core.web",
        ),
        (
            "acd/roster.py",
            "from cc_core.switch.ami import AmiLink as _AmiLink",
            "Domains speak to the switch through its typed interface",
            "cc_core.acd is not allowed to import cc_core.switch.ami",
        ),
        (
            "acd/router.py",
            "import asyncio as _asyncio",
            "Pure cores (router, agent state, ACD model, IVR runtime, checks and flow model) do no I/O",
            "cc_core.acd.router is not allowed to import asyncio",
        ),
        (
            "ivr/checks.py",
            "from cc_core.db import session as _session",
            "Pure cores (router, agent state, ACD model, IVR runtime, checks and flow model) do no I/O",
            "cc_core.ivr.checks is not allowed to import cc_core.db",
        ),
        (
            "switch/actions.py",
            "import asyncio as _asyncio",
            "The switch interface (switch/actions.py) knows no transport",
            "cc_core.switch.actions is not allowed to import asyncio",
        ),
    ],
    ids=["switch-to-ivr", "calls-to-web", "acd-to-ami", "router-to-asyncio", "checks-to-db", "interface-to-ami"],
)
def test_a_forbidden_import_breaks_its_contract(tree: Path, module: str, line: str, contract: str, broken: str) -> None:
    path = tree / "cc_core" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout
    assert "Contracts: 4 kept, 1 broken." in result.stdout
    assert broken in result.stdout
    # The broken contract's name heads its report (lint-imports wraps long names over lines).
    report = " ".join(w for w in result.stdout.split("Broken contracts", 1)[1].split() if w.strip("-"))
    assert report.startswith(contract), report[:200]
