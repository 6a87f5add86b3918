"""One real-call path with the controller on PostgreSQL (issue 12): IVR → queue → agent → survey
→ callback.

Every other real-call test runs the controller on SQLite; the data layer's tests (tests/db) run
on both, but not the controller's own writes during a call (the write path's sessions, the
callback scheduler's queries, the survey's update). Here the session's switch and world are
kept and only the controller is swapped: the SQLite one is stopped, a controller on a fresh
PostgreSQL database (created for this module, dropped after) serves two real calls — the
citizen's call through the shipped main flow to an agent and the survey, then the callback the
controller places (agent first, then the citizen through the trunk) — and the SQLite controller
is started again for the tests that follow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from cc_core.calendars.days import local_zone
from cc_core.calls.callbacks import CallbackStore
from cc_core.calls.store import CallStore
from cc_core.db.session import make_engine, make_sessionmaker
from cc_core.ivr.flow import KINDS
from cc_core.settings import load_settings
from tests.db.conftest import DEFAULT_PG_URL, _pg_database
from tests.harness.acd import agent, dial_end, login, rung, wait_agent
from tests.harness.ami import AmiPeer, match
from tests.harness.calls import _agi_start, answer_menu, hotline_channel, wait_until
from tests.harness.hotline import Hotline
from tests.harness.world import World

pytestmark = [pytest.mark.switch, pytest.mark.postgres]

CITIZEN = "13800007001"


@pytest.fixture
def on_postgres(acd: Hotline) -> Iterator[tuple[Hotline, str]]:
    """The session's contact center with its controller on a fresh PostgreSQL database; the
    SQLite controller is back (and connected) after the test."""
    sqlite_settings = acd.settings
    for url in _pg_database(os.environ.get("HOTLINE_TEST_PG_URL", DEFAULT_PG_URL)):
        override = {"HOTLINE_DATABASE__URL": url}
        acd.stop_controller()
        acd.settings = load_settings(acd.config, env=override)
        acd.extra_env = override
        try:
            acd.start_controller()  # it migrates the empty database itself, as `hotline controller` does
            acd.wait_controller_ok()
            yield acd, url
        finally:
            try:
                _cancel_open(url)
                if acd.controller is not None and acd.controller.poll() is None:
                    agent(acd, "1001", "logout")
            finally:
                acd.stop_controller()
                acd.settings = sqlite_settings
                acd.extra_env = {}
                acd.start_controller()
                acd.wait_controller_ok()


def _cancel_open(url: str) -> None:
    engine = make_engine(url)
    try:
        callbacks = CallbackStore(make_sessionmaker(engine))
        today = datetime.now(UTC).astimezone(local_zone()).date()
        for callback in callbacks.list_day(today):
            if callback.status in ("open", "in_progress"):
                callbacks.cancel(callback.id, datetime.now(UTC), "test over")
    finally:
        engine.dispose()


def test_call_survey_and_callback_on_postgresql(
    on_postgres: tuple[Hotline, str], world: World, cc_ami: AmiPeer
) -> None:
    hotline, url = on_postgres
    assert url.startswith("postgresql")
    assert world.ami is not None
    engine = make_engine(url)
    try:
        sessions = make_sessionmaker(engine)
        store, callbacks = CallStore(sessions), CallbackStore(sessions)
        assert store.recent(10) == []  # a fresh database: nothing but this test's calls
        # 1. The citizen calls the hotline: main menu, 0 for an agent, the general queue, agent
        # 1001 answers and hangs up after a moment; the citizen rates the service 4.
        world.phone("1001").answers_after(0.5).plays("").hangs_up_after(1)
        login(hotline, "1001")
        since = cc_ami.mark()
        call = world.call_hotline(caller=CITIZEN)
        uid = hotline_channel(cc_ami, since, caller=CITIZEN)["Uniqueid"]
        answer_menu(cc_ami, call, uid, "0", since)
        mark, chosen = rung(cc_ami, uid, since, timeout=30)
        assert chosen == "1001"
        mark, ended = dial_end(cc_ami, uid, mark)
        assert ended["DialStatus"] == "ANSWER"
        cc_ami.wait_for(_agi_start(uid, "STREAM FILE"), timeout=30, since=mark, what="the survey question")
        call.press("4")
        call.wait_hung_up(timeout=30, since=0)  # thanked, then the hotline hangs up
        view = wait_until(
            lambda: (v := store.get(uid)) is not None and v.ended_at is not None and v.survey_score is not None and v,
            20,
            "the call record closed with its survey",
        )
        assert (
            view.caller_number,
            view.dialed_number,
            view.flow,
            view.digits,
            view.ivr_exit,
            view.ivr_exit_detail,
            view.queue,
            view.agent_id,
            view.survey_score,
            view.survey_agent_id,
            view.status,
        ) == (CITIZEN, "12333", "main", "0", "queue", "general", "general", "1001", 4, "1001", "ended")
        assert view.answered_at == view.connected_at and view.connected_at is not None
        assert view.arrived_at < view.queued_at < view.connected_at < view.ended_at  # type: ignore[operator]
        path = [node for _at, _flow, node, kind in store.ivr_path(uid) if kind in KINDS]
        assert path[:3] == ["welcome", "hours", "main_menu"] and path[-2:] == ["agent", "agent_queue"]
        kinds = [kind for _at, kind, _detail in view.events]
        assert kinds.index("queued") < kinds.index("ring") < kinds.index("agent_answered") < kinds.index("agent_left")
        assert [c.uniqueid for c in store.recent(10)] == [uid]
        wait_agent(hotline, "1001", "available")
        # 2. The citizen is to be called back (as the workstation's list holds it): the
        # controller on PostgreSQL finds it due, rings agent 1001 first, then the citizen.
        world_mark = world.ami.mark()
        world.phone("1001").answers_after(0.5).plays("").hangs_up_after(4)
        world.phone(CITIZEN).answers_after(0.5)
        callback_id = callbacks.request(CITIZEN, uid, "requested", datetime.now(UTC))
        world.ami.wait_for(
            match(Event="UserEvent", UserEvent="PhoneAnswered", Phone=CITIZEN), timeout=40, since=world_mark
        )
        done = wait_until(
            lambda: (c := callbacks.get(callback_id)) is not None and c.status == "done" and c,
            40,
            "the callback closed as done",
        )
        assert (done.number, done.reason, done.status, done.agent_id, done.attempts) == (
            CITIZEN,
            "requested",
            "done",
            "1001",
            1,
        )
        assert done.reached_at is not None and done.closed_at is not None
        [attempt] = callbacks.attempts(callback_id)
        assert (attempt.callback_id, attempt.agent_id, attempt.result) == (callback_id, "1001", "reached")
        assert callbacks.calls(callback_id) == [uid]
        assert [c.id for c in callbacks.list_day(done.day)] == [callback_id]
        wait_agent(hotline, "1001", "available")
    finally:
        engine.dispose()
