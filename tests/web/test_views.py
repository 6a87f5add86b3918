"""The wallboard's day figures (issue 11): a call an agent is talking on counts as answered (and
in progress) at once, not after the figures' cache runs out. Views over a real SQLite call record;
the ACD's memory is a plain stand-in (its behaviour is tested in tests/acd and tests/integration)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from cc_core.calls.store import CallStore
from cc_core.db.session import make_engine, make_sessionmaker, upgrade
from cc_core.web.workstation import Views

NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)  # 11:00 in Beijing
UID = "1764817080.1"


@pytest.fixture
def calls(tmp_path: Path) -> Iterator[CallStore]:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield CallStore(make_sessionmaker(engine))
    engine.dispose()


def test_a_call_taken_by_an_agent_counts_as_answered_at_once(calls: CallStore) -> None:
    waiter = SimpleNamespace(
        uniqueid=UID,
        state="waiting",
        agent=None,
        contact=SimpleNamespace(queue="general"),
        queued_at=NOW - timedelta(seconds=30),
        number="13800138000",
    )
    acd = SimpleNamespace(agents={}, waiters={UID: waiter}, queues={"general": None}, extension={})
    unused = cast(Any, None)
    views = Views(cast(Any, acd), unused, calls, unused, unused, clock=lambda: NOW)
    calls.call_arrived(UID, UID, "13800138000", "12333", "PJSIP/carrier-1", NOW - timedelta(minutes=1))
    calls.queue_entered(UID, "general", None, 0, NOW - timedelta(seconds=30))
    today = views.wallboard()["today"]
    assert (today["offered"], today["answered"], today["waiting"]) == (1, 0, 1)
    assert today["in_progress"] == 0
    # The agent answers (the record, then what the wallboard shows from memory), within the
    # figures' cache time: the next wallboard counts the call as answered and in progress.
    calls.agent_answered(UID, "1001", NOW)
    waiter.state, waiter.agent = "connected", "1001"
    today = views.wallboard()["today"]
    assert (today["offered"], today["answered"], today["waiting"]) == (1, 1, 0)
    assert today["in_progress"] == 1
    assert (today["abandoned"], today["answered_rate"]) == (0, 1.0)
    # Nothing changed in memory: the cached answer serves (one query per change, not per page).
    calls.call_ended(UID, 16, None, NOW + timedelta(minutes=2))
    assert views.wallboard()["today"]["in_progress"] == 1
