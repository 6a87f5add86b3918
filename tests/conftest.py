"""Session fixtures: a real contact-center Asterisk, a real "world" Asterisk, the controller.

Every process a fixture starts is stopped at teardown, also when a test fails; the instance
folders made inside the switch chroot are removed. A controller or switch that dies during a
test fails that test (``pytest_runtest_call`` below, tests/harness/watch.py); a test that stops
or restarts one on purpose is marked ``@pytest.mark.restarts("controller")`` / ``("switch")``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from cc_core.switch.instance import INSTANCES_INSIDE
from cc_core.switch.process import pid_alive
from tests.harness.acd import all_offline, cancel_callbacks
from tests.harness.ami import AmiPeer
from tests.harness.flows import prepare_flows
from tests.harness.hotline import HARNESS_AMI_USER, WORLD_PHONES, Hotline, switch_root, write_settings
from tests.harness.loop import LoopThread
from tests.harness.ports import free_port
from tests.harness.selfservice import SelfService
from tests.harness.watch import PARTS, problems, snapshot
from tests.harness.world import World


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "restarts(*parts): the test stops or restarts the controller and/or the contact center's switch "
        "on purpose (parts: 'controller', 'switch'); a crash is still its failure",
    )


def _restarts(item: pytest.Item) -> frozenset[str]:
    parts: set[str] = set()
    for mark in item.iter_markers("restarts"):
        unknown = set(mark.args) - set(PARTS)
        if unknown or not mark.args:
            raise pytest.UsageError(f"{item.nodeid}: restarts() takes some of {PARTS}, got {mark.args}")
        parts.update(mark.args)
    return frozenset(parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Fail the test during which the controller or a switch died (issue 12): the processes
    running when its body starts must be the same and alive when it ends, unless the test is
    marked ``restarts``. A test that failed anyway gets the death added to its error."""
    funcargs = getattr(item, "funcargs", {})
    hotline = funcargs.get("hotline")
    if not isinstance(hotline, Hotline):
        return (yield)
    world = funcargs.get("world")
    world = world if isinstance(world, World) else None
    restarts = _restarts(item)
    before = snapshot(hotline, world)
    try:
        result = yield
    except Exception as exc:
        for found in problems(before, hotline, world, restarts):
            exc.add_note(found)
        raise
    found = problems(before, hotline, world, restarts)
    if found:
        pytest.fail("\n\n".join(found), pytrace=False)
    return result


def _remove_stale_instances(root: Path) -> None:
    """Drop instance folders of earlier test sessions whose process is gone."""
    base = root / str(INSTANCES_INSIDE).lstrip("/")
    if not base.is_dir():
        return
    for folder in base.glob("t*-*"):
        pid = folder.name[1:].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def chroot() -> Path:
    root = switch_root()
    if not (root / "usr" / "sbin" / "asterisk").exists():
        pytest.fail(f"the switch is not installed in {root}: run scripts/setup.sh first", pytrace=False)
    _remove_stale_instances(root)
    return root


@pytest.fixture(scope="session")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="session")
def selfservice(loop: LoopThread) -> Iterator[SelfService]:
    """The business system the self-service nodes call; tests switch it to slow or down."""
    server = SelfService(loop)
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def hotline(chroot: Path, tmp_path_factory: pytest.TempPathFactory, selfservice: SelfService) -> Iterator[Hotline]:
    """The contact center's switch, running on free ports with a SQLite database, serving the
    shipped flows (pointed at the test's self-service server, with an always-open calendar)."""
    home = tmp_path_factory.mktemp("hotline")
    world_sip_port = free_port()
    flows = prepare_flows(home / "flows", selfservice.url)
    config = write_settings(
        home, f"t{os.getpid()}-cc", world_sip_port, f"sqlite:///{home / 'hotline.db'}", flows_dir=flows
    )
    cc = Hotline.create(config)
    cc.world_sip_port = world_sip_port  # type: ignore[attr-defined]
    try:
        cc.start_switch()
        yield cc
    finally:
        cc.close()
        shutil.rmtree(cc.instance.host_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cc_ami(hotline: Hotline, loop: LoopThread) -> Iterator[AmiPeer]:
    """The test's own AMI view of the contact-center switch (to wait for its events)."""
    # The harness's own AMI user: every event, no filter (the controller's user has a filter).
    peer = AmiPeer(loop, hotline.settings.switch.ami_port, HARNESS_AMI_USER, hotline.harness_ami_secret, "cc")
    peer.wait_connected()
    yield peer
    peer.close()


@pytest.fixture(scope="session")
def world(hotline: Hotline, loop: LoopThread, cc_ami: AmiPeer) -> Iterator[World]:
    """The simulated carrier and agents' phones; returns once every phone has registered."""
    agents = {a: hotline.secrets.agent_password(a) for a in WORLD_PHONES}
    sim = World(
        hotline.settings.switch_root,
        f"t{os.getpid()}-world",
        hotline.settings.state_path,
        hotline.settings.switch.sip_port,
        agents,
    )
    sim.sip_port = hotline.world_sip_port  # type: ignore[attr-defined]
    try:
        sim.start(loop)
        _wait_registered(cc_ami, agents, since=0)
        yield sim
    finally:
        sim.close()
        shutil.rmtree(sim.instance.host_dir, ignore_errors=True)


def _wait_registered(cc_ami: AmiPeer, agents: object, since: int) -> None:
    """Wait until every phone of the world has registered to the hotline."""
    for agent in agents:  # type: ignore[attr-defined]
        cc_ami.wait_for(
            lambda e, a=agent: (
                e.get("Event") == "ContactStatus"
                and e.get("AOR") == a
                and e.get("ContactStatus") in ("Created", "Reachable")
            ),
            timeout=30,
            since=since,
            what=f"registration of phone {agent}",
        )


@pytest.fixture(autouse=True)
def _world_alive(request: pytest.FixtureRequest) -> None:
    """Start the world again if it died in an earlier test (which failed for it), so one crash
    does not fail every later test."""
    if "world" not in request.fixturenames:
        return
    sim: World = request.getfixturevalue("world")
    if sim.is_running():
        return
    print(f"\nthe world's switch was not running; its console log ends with:\n{sim.switch_tail()}", file=sys.stderr)
    cc_ami: AmiPeer = request.getfixturevalue("cc_ami")
    since = cc_ami.mark()
    sim.restart(request.getfixturevalue("loop"))
    _wait_registered(cc_ami, sim.agents, since)


@pytest.fixture
def controller(hotline: Hotline) -> Iterator[Hotline]:
    """The controller process, running and connected (restarted if an earlier test stopped it,
    and the switch too; a crash has failed the test it happened in already)."""
    hotline.ensure_switch()
    proc = hotline.controller
    if proc is None or proc.poll() is not None:
        if proc is not None and not hotline.controller_stopped:
            print(f"\nthe controller had exited ({proc.returncode}); its log ends with:\n{hotline.controller_tail()}")
        hotline.start_controller()
    hotline.wait_controller_ok()
    yield hotline


@pytest.fixture
def acd(controller: Hotline, world: World) -> Iterator[Hotline]:
    """The controller with every agent logged out, no callback pending, every phone answering."""
    cancel_callbacks(controller)
    all_offline(controller)
    for phone in ("1001", "1002", "1003"):
        world.phone(phone).answers_after(0.5).plays("").hangs_up_after(0)
    yield controller
    cancel_callbacks(controller)
    proc = controller.controller
    if proc is not None and proc.poll() is None:  # a dead controller failed the test already
        all_offline(controller)
