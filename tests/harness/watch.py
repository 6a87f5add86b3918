"""A crash during a test is that test's failure (issue 12).

Before each test that uses the contact center (the ``hotline`` fixture, and so ``controller``,
``acd``, ``world``…) the harness notes which controller process and which switch processes are
running; after the test it checks they are the same processes and still alive. A controller or
switch that died fails the test it died in, with the end of its log, instead of being quietly
restarted by the next test's fixture (which still restarts it, so one crash does not turn
every later test into a failure).

A test that stops or restarts one of them on purpose says so with a marker::

    @pytest.mark.restarts("controller")          # or "switch" (the contact center's), or both

For a marked part the check is weaker but not gone: the part may be another process at the end,
or stopped, but only if the harness stopped it (``Hotline.stop_controller`` /
``Hotline.stop_switch``); a process that exited by itself is still a failure.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cc_core.switch.process import pid_alive

PARTS = ("controller", "switch")


class _Switch(Protocol):
    @property
    def pid(self) -> int | None: ...


class WatchedHotline(Protocol):
    """What the watch reads of :class:`tests.harness.hotline.Hotline`."""

    switch: _Switch
    controller_stopped: bool
    switch_stopped: bool

    @property
    def controller(self) -> subprocess.Popen[bytes] | None: ...

    def controller_tail(self, lines: int = 40) -> str: ...

    def switch_tail(self, lines: int = 40) -> str: ...


class WatchedWorld(Protocol):
    """What the watch reads of :class:`tests.harness.world.World`."""

    switch: _Switch

    def switch_tail(self, lines: int = 40) -> str: ...


def live_pid(switch: _Switch) -> int | None:
    """The switch's process id if that process is alive (a pid file left by a crash is not)."""
    pid = switch.pid
    return pid if pid is not None and pid_alive(pid) else None


@dataclass(frozen=True)
class Snapshot:
    """The processes running when a test started (None: not running then)."""

    controller: subprocess.Popen[bytes] | None
    switch: int | None
    world_switch: int | None


def snapshot(hotline: WatchedHotline, world: WatchedWorld | None) -> Snapshot:
    proc = hotline.controller
    return Snapshot(
        controller=proc if proc is not None and proc.poll() is None else None,
        switch=live_pid(hotline.switch),
        world_switch=live_pid(world.switch) if world is not None else None,
    )


def problems(
    before: Snapshot, hotline: WatchedHotline, world: WatchedWorld | None, restarts: frozenset[str] = frozenset()
) -> list[str]:
    """What died (or was changed without the ``restarts`` marker) since ``before``; each entry
    says which part, how, and ends with that part's log tail."""
    found: list[str] = []
    proc = hotline.controller
    if "controller" in restarts:
        if proc is not None and proc.poll() is not None and not hotline.controller_stopped:
            found.append(
                _died("the controller", f"exited by itself (code {proc.returncode})", hotline.controller_tail())
            )
    elif before.controller is not None:
        if proc is not before.controller:
            found.append(_unmarked("controller", "is another process than at the start (restarted)"))
        elif proc.poll() is not None:
            if hotline.controller_stopped:
                found.append(_unmarked("controller", "was stopped by the test"))
            else:
                found.append(
                    _died(
                        "the controller", f"exited during the test (code {proc.returncode})", hotline.controller_tail()
                    )
                )
    now = live_pid(hotline.switch)
    if "switch" in restarts:
        if now is None and not hotline.switch_stopped:
            found.append(_died("the contact center's switch", "is not running at the end", hotline.switch_tail()))
    elif before.switch is not None and now != before.switch:
        if now is None and hotline.switch_stopped:
            found.append(_unmarked("switch", "was stopped by the test"))
        elif now is None:
            found.append(
                _died(
                    "the contact center's switch", f"(pid {before.switch}) died during the test", hotline.switch_tail()
                )
            )
        else:
            found.append(_unmarked("switch", f"is another process than at the start ({before.switch} → {now})"))
    if world is not None and before.world_switch is not None and live_pid(world.switch) != before.world_switch:
        found.append(
            _died("the world's switch", f"(pid {before.world_switch}) died during the test", world.switch_tail())
        )
    return found


def _died(part: str, how: str, tail: str) -> str:
    return f"{part} {how}; its log ends with:\n{tail}"


def _unmarked(part: str, how: str) -> str:
    return f"the {part} {how}: mark the test @pytest.mark.restarts({part!r}) if it does so on purpose"


def file_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, or a note that there is none."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
