"""SIPp (Debian's sip-tester): an independent SIP stack to check the hotline against."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.harness.ports import free_port

SCENARIOS = Path(__file__).resolve().parents[1] / "fixtures" / "sipp"


def run_sipp(
    target_port: int, *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run one SIPp scenario from a free local port against ``127.0.0.1:target_port``."""
    sipp = shutil.which("sipp")
    assert sipp is not None, "sipp is missing: scripts/setup.sh installs Debian's sip-tester"
    local = ["-i", "127.0.0.1", "-p", str(free_port()), "-nostdin", "-timeout_error"]
    return subprocess.run(
        [sipp, f"127.0.0.1:{target_port}", *local, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def call_args(number: str, hold_ms: int = 2000) -> list[str]:
    """Arguments of SIPp's built-in caller: one call to ``number``, hung up after ``hold_ms``."""
    return ["-sn", "uac", "-s", number, "-m", "1", "-l", "1", "-d", str(hold_ms), "-timeout", "30"]


def register_args(agent: str, password: str) -> list[str]:
    """Arguments of our REGISTER scenario (digest auth) for an agent's phone."""
    return [
        "-sf",
        str(SCENARIOS / "register.xml"),
        "-s",
        agent,
        "-au",
        agent,
        "-ap",
        password,
        "-m",
        "1",
        "-timeout",
        "10",
    ]
