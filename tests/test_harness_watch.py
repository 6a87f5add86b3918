"""The harness fails the test during which the controller or a switch died (issue 12).

Before, the next test's fixture restarted a dead controller or switch without a word: a crash
after the checks of a passing test was never a failure. These tests run the real hook
(``tests/conftest.py::pytest_runtest_call``) in an inner pytest, over stand-in processes
(``sleep``) in place of the controller and the switches, and check the watch itself
(``tests/harness/watch.py``) part by part.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.harness.watch import problems, snapshot

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[1]


@dataclass
class FakeSwitch:
    """A pid file, as the real Switch keeps one (a crash leaves it behind)."""

    pid_file: Path

    @property
    def pid(self) -> int | None:
        return int(self.pid_file.read_text()) if self.pid_file.exists() else None


@dataclass
class FakeHotline:
    switch: FakeSwitch
    proc: subprocess.Popen[bytes] | None
    controller_stopped: bool = False
    switch_stopped: bool = False
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def controller(self) -> subprocess.Popen[bytes] | None:
        return self.proc

    def controller_tail(self, lines: int = 40) -> str:
        return "controller log: the last line"

    def switch_tail(self, lines: int = 40) -> str:
        return "switch console: the last line"


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "120"])


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[FakeHotline, FakeHotline]]:
    """A stand-in contact center (controller + switch) and world (a switch)."""
    procs = [_sleeper(), _sleeper(), _sleeper()]
    for name, proc in zip(("cc.pid", "world.pid"), procs[1:], strict=True):
        (tmp_path / name).write_text(str(proc.pid))
    hotline = FakeHotline(FakeSwitch(tmp_path / "cc.pid"), procs[0])
    world = FakeHotline(FakeSwitch(tmp_path / "world.pid"), None)
    try:
        yield hotline, world
    finally:
        for proc in procs + hotline.started:
            proc.kill()
            proc.wait()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_nothing_died_nothing_reported(parts: tuple[FakeHotline, FakeHotline]) -> None:
    hotline, world = parts
    before = snapshot(hotline, world)
    assert problems(before, hotline, world) == []


def test_a_controller_that_died_is_reported_with_its_log(parts: tuple[FakeHotline, FakeHotline]) -> None:
    hotline, world = parts
    before = snapshot(hotline, world)
    assert hotline.proc is not None
    _kill(hotline.proc)
    assert problems(before, hotline, world) == [
        "the controller exited during the test (code -9); its log ends with:\ncontroller log: the last line"
    ]


def test_a_switch_that_died_is_reported_though_its_pid_file_is_left(parts: tuple[FakeHotline, FakeHotline]) -> None:
    hotline, world = parts
    before = snapshot(hotline, world)
    assert before.switch is not None and before.world_switch is not None
    for pid in (before.switch, before.world_switch):
        subprocess.run(["kill", "-9", str(pid)], check=True)
    for _ in range(200):  # the stand-ins are this process's children: reap them
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
    found = problems(before, hotline, world)
    assert found == [
        f"the contact center's switch (pid {before.switch}) died during the test; its log ends with:\n"
        "switch console: the last line",
        f"the world's switch (pid {before.world_switch}) died during the test; its log ends with:\n"
        "switch console: the last line",
    ]


def test_an_unmarked_restart_is_reported(parts: tuple[FakeHotline, FakeHotline]) -> None:
    hotline, world = parts
    before = snapshot(hotline, world)
    hotline.proc = _sleeper()
    hotline.started.append(hotline.proc)
    assert problems(before, hotline, world) == [
        "the controller is another process than at the start (restarted): "
        "mark the test @pytest.mark.restarts('controller') if it does so on purpose"
    ]


def test_a_marked_restart_passes_but_a_crash_after_it_does_not(parts: tuple[FakeHotline, FakeHotline]) -> None:
    hotline, world = parts
    before = snapshot(hotline, world)
    assert hotline.proc is not None
    _kill(hotline.proc)
    hotline.controller_stopped = True  # stopped by the harness (stop_controller)
    assert problems(before, hotline, world, frozenset({"controller"})) == []
    hotline.proc = _sleeper()  # started again, then it dies by itself
    hotline.started.append(hotline.proc)
    hotline.controller_stopped = False
    _kill(hotline.proc)
    assert problems(before, hotline, world, frozenset({"controller"})) == [
        "the controller exited by itself (code -9); its log ends with:\ncontroller log: the last line"
    ]


INNER_CONFTEST = """
import subprocess
from pathlib import Path

import pytest

from tests.conftest import pytest_configure, pytest_runtest_call  # the hooks under test
from tests.harness.hotline import Hotline


@pytest.fixture
def hotline(tmp_path):
    switch = subprocess.Popen(["sleep", "120"])
    (tmp_path / "cc.pid").write_text(str(switch.pid))
    cc = Hotline.__new__(Hotline)  # a Hotline with stand-in processes, no real switch
    from cc_core.switch.process import Switch
    from cc_core.switch.instance import Instance
    cc.switch = Switch(Instance(tmp_path, "x"), tmp_path / "cc.pid")
    cc.controller_log = tmp_path / "controller.log"
    cc.controller_log.write_text("a line\\nTraceback: the controller crashed here\\n")
    cc._controller = subprocess.Popen(["sleep", "120"])
    cc.controller_stopped = False
    cc.switch_stopped = False
    yield cc
    for proc in (switch, cc._controller):
        proc.kill()
        proc.wait()
"""

INNER_TESTS = """
import signal

import pytest


def test_passes_but_the_controller_dies(hotline):
    hotline.controller.send_signal(signal.SIGKILL)
    hotline.controller.wait()
    assert 1 + 1 == 2


def test_fails_and_the_controller_dies(hotline):
    hotline.controller.send_signal(signal.SIGKILL)
    hotline.controller.wait()
    assert 1 + 1 == 3


@pytest.mark.restarts("controller")
def test_stops_it_on_purpose(hotline):
    hotline.stop_controller(signal.SIGKILL)


def test_stops_it_unmarked(hotline):
    hotline.stop_controller(signal.SIGKILL)


def test_leaves_everything_alive(hotline):
    pass
"""


def test_the_hook_fails_the_test_the_controller_died_in(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end through tests/conftest.py's hook: a passing test whose controller died is a
    failure naming the log's last line; a failing one keeps its own error and gets the death as
    a note; an intended stop passes only when marked."""
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=2, failed=3)
    out = result.stdout.str()
    assert "FAILED test_inner.py::test_passes_but_the_controller_dies" in out
    assert "PASSED test_inner.py::test_stops_it_on_purpose" in out
    assert "PASSED test_inner.py::test_leaves_everything_alive" in out
    assert "FAILED test_inner.py::test_stops_it_unmarked" in out
    assert "the controller was stopped by the test: mark the test @pytest.mark.restarts('controller')" in out
    # Counted in the failures' reports only: the short summary repeats messages whole when the
    # CI variable is set (pytest truncates them to the terminal's width otherwise).
    reports = out.split("short test summary info")[0]
    assert reports.count("Traceback: the controller crashed here") == 2  # both tests it died in
    assert "assert (1 + 1) == 3" in out
