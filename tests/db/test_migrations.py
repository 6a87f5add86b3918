"""Schema migrations on SQLite and PostgreSQL, and the errors a user can make with the URL."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.dialects import postgresql

from cc_core.acd.model import AgentState
from cc_core.acd.store import AgentRow, AgentStore, StateChange
from cc_core.archive.retention import set_hold
from cc_core.archive.runs import last_verify, record_run
from cc_core.archive.views import archive_summary, archived_recording
from cc_core.auth.store import AuditLog, UserStore
from cc_core.calls.callbacks import CallbackStore
from cc_core.calls.recordings import RecordingStore
from cc_core.calls.store import CallStore
from cc_core.calls.voicemail import VoicemailStore
from cc_core.contacts.identity import Channel, normalise_phone
from cc_core.db.models import Base, Recording, RecordingManifest, RecordingPurge
from cc_core.db.session import (
    DatabaseError,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    make_sessionmaker,
    mask_url,
    upgrade,
)
from cc_core.errors import HotlineError

AGENT_TABLES = {"agent_states", "agent_state_changes"}
ACD_TABLES = {"recordings", "callbacks", "callback_calls", "callback_attempts"}
APP_TABLES = {"calls", "call_events", "voicemails"} | AGENT_TABLES | ACD_TABLES
# Revision 0005 (the recording archive, issue 5).
ARCHIVE_TABLES = {"recording_manifests", "recording_hold_events", "recording_purges", "archive_runs"}
# Revision 0006 (web accounts, sessions, the audit log; issues 5 and 6).
AUTH_TABLES = {"users", "web_sessions", "audit_log"}
ALL_TABLES = APP_TABLES | ARCHIVE_TABLES | AUTH_TABLES
ARCHIVE_COLUMNS = {
    "archive_state",
    "archive_day",
    "archive_path",
    "archive_sha256",
    "archive_size_bytes",
    "archive_duration_s",
    "archive_format",
    "archive_error",
    "archived_at",
    "backed_up_at",
    "manifest_id",
    "hold_at",
    "hold_by",
    "hold_reason",
    "purged_at",
}
IVR_COLUMNS = {"flow", "flow_version", "survey_score", "ivr_exit", "ivr_exit_detail"}
ACD_COLUMNS = {
    "queue",
    "skill",
    "priority",
    "queued_at",
    "connected_at",
    "agent_id",
    "wrapup_ended_at",
    "summary",
    "survey_agent_id",
}
T0 = datetime(2024, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_head_revision_is_the_contacts_migration() -> None:
    assert head_revision() == "0008"


def test_upgrade_from_empty_to_head(db_url: str) -> None:
    assert current_revision(db_url) is None
    assert upgrade(db_url) == head_revision()
    assert current_revision(db_url) == head_revision()
    assert ALL_TABLES | {"alembic_version"} <= _tables(db_url)


def test_upgrade_twice_is_a_noop(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        store = CallStore(make_sessionmaker(engine))
        store.call_arrived("1.1", "1.1", "100", "12333", "PJSIP/carrier-1", datetime.now(UTC))
    finally:
        engine.dispose()
    assert upgrade(db_url) == head_revision()
    engine = make_engine(db_url)
    try:
        assert CallStore(make_sessionmaker(engine)).get("1.1") is not None
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    upgrade(db_url)
    assert downgrade(db_url, "base") is None
    assert current_revision(db_url) is None
    assert not (ALL_TABLES & _tables(db_url))
    assert upgrade(db_url) == head_revision()
    assert ALL_TABLES <= _tables(db_url)


def _columns(url: str, table: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


# Tables as revision 0001 left them, independent of today's models.
_CALLS_0001 = sa.table(
    "calls",
    sa.column("id", sa.Integer()),
    sa.column("uniqueid", sa.String()),
    sa.column("linkedid", sa.String()),
    sa.column("caller_number", sa.String()),
    sa.column("dialed_number", sa.String()),
    sa.column("channel", sa.String()),
    sa.column("arrived_at", sa.DateTime(timezone=True)),
    sa.column("digits", sa.String()),
)
_EVENTS_0001 = sa.table(
    "call_events",
    sa.column("call_id", sa.Integer()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("kind", sa.String()),
    sa.column("detail", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
)


def _insert_0001_rows(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for n in range(2):
                conn.execute(
                    _CALLS_0001.insert().values(
                        id=n + 1,
                        uniqueid=f"1714552215.{n}",
                        linkedid=f"1714552215.{n}",
                        caller_number="13800138000",
                        dialed_number="12333",
                        channel="PJSIP/运营商-1",
                        arrived_at=T0,
                        digits="1",
                    )
                )
                conn.execute(_EVENTS_0001.insert().values(call_id=n + 1, at=T0, kind="arrived", detail={"名": "张三"}))
    finally:
        engine.dispose()


def test_upgrade_0001_to_0002_keeps_existing_calls(db_url: str) -> None:
    assert upgrade(db_url, "0001") == "0001"
    assert "voicemails" not in _tables(db_url)
    assert not (IVR_COLUMNS & _columns(db_url, "calls"))
    _insert_0001_rows(db_url)

    assert upgrade(db_url, "0002") == "0002"
    assert IVR_COLUMNS <= _columns(db_url, "calls")
    # The stores speak the newest schema: read the old rows back through them at head.
    assert upgrade(db_url) == head_revision()
    engine = make_engine(db_url)
    try:
        store = CallStore(make_sessionmaker(engine))
        view = store.get("1714552215.1")
        assert view is not None
        assert (view.channel, view.arrived_at, view.digits, view.status, view.fallback) == (
            "PJSIP/运营商-1",
            T0,
            "1",
            "ivr",
            False,
        )
        assert view.events == [(T0, "arrived", {"名": "张三"})]
        assert (view.flow, view.flow_version, view.survey_score, view.ivr_exit, view.ivr_exit_detail) == (None,) * 5
        # The old rows take the new writes.
        assert store.set_flow("1714552215.1", "main", "ab" * 32, T0)
        assert store.set_survey("1714552215.1", 2, T0)
        assert VoicemailStore(make_sessionmaker(engine)).add("1714552215.1", "138", "main", "vm", "/r/1.wav", 3.5, T0)
        assert len(store.recent()) == 2
    finally:
        engine.dispose()


def test_downgrade_0002_to_0001_and_up_again(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        store = CallStore(make_sessionmaker(engine))
        store.call_arrived("1.1", "1.1", "13800138000", "12333", "PJSIP/运营商-1", T0)
        store.set_flow("1.1", "主菜单", "cd" * 32, T0)
        store.set_ivr_exit("1.1", "queue", "社保咨询", T0)
        VoicemailStore(make_sessionmaker(engine)).add("1.1", "138", "main", "vm", "/r/1.wav", 3.5, T0)
    finally:
        engine.dispose()

    assert downgrade(db_url, "0001") == "0001"
    assert current_revision(db_url) == "0001"
    assert "voicemails" not in _tables(db_url)
    assert not (IVR_COLUMNS & _columns(db_url, "calls"))
    engine = make_engine(db_url)
    try:
        # The rebuilt table (SQLite) keeps its rows, indexes and the cascade to call_events.
        indexes = {index["name"]: bool(index["unique"]) for index in inspect(engine).get_indexes("calls")}
        assert indexes == {"ix_calls_linkedid": False, "ix_calls_uniqueid": True}
        with engine.begin() as conn:
            assert conn.execute(text("SELECT uniqueid, channel FROM calls")).all() == [("1.1", "PJSIP/运营商-1")]
            kinds = conn.execute(text("SELECT kind FROM call_events ORDER BY id")).scalars().all()
            assert kinds == ["arrived", "flow", "ivr_exit"]
            if engine.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            conn.execute(text("DELETE FROM calls"))
            assert conn.execute(text("SELECT count(*) FROM call_events")).scalar() == 0
    finally:
        engine.dispose()

    assert upgrade(db_url, "0002") == "0002"
    assert IVR_COLUMNS <= _columns(db_url, "calls")
    assert APP_TABLES - AGENT_TABLES - ACD_TABLES <= _tables(db_url)
    assert not ((AGENT_TABLES | ACD_TABLES) & _tables(db_url))
    engine = make_engine(db_url)
    try:
        assert VoicemailStore(make_sessionmaker(engine)).list() == []
    finally:
        engine.dispose()


def _indexes(url: str, table: str) -> dict[str | None, bool]:
    engine = make_engine(url)
    try:
        # PostgreSQL also lists the index behind each unique constraint: that one is a constraint.
        return {
            index["name"]: bool(index["unique"])
            for index in inspect(engine).get_indexes(table)
            if not index.get("duplicates_constraint")
        }
    finally:
        engine.dispose()


def _unique_constraints(url: str, table: str) -> dict[str | None, list[str]]:
    engine = make_engine(url)
    try:
        return {c["name"]: c["column_names"] for c in inspect(engine).get_unique_constraints(table)}
    finally:
        engine.dispose()


def _insert_0002_rows(url: str) -> None:
    """A call with its flow and a voicemail, written as revision 0002 knows them."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                _CALLS_0001.insert().values(
                    id=1,
                    uniqueid="1.1",
                    linkedid="1.1",
                    caller_number="13800138000",
                    dialed_number="12333",
                    channel="PJSIP/运营商-1",
                    arrived_at=T0,
                    digits="",
                )
            )
            conn.execute(text("UPDATE calls SET flow = :flow WHERE id = 1"), {"flow": "主菜单"})
            conn.execute(
                _VOICEMAILS_0002.insert().values(
                    call_id=1,
                    uniqueid="1.1",
                    caller_number="138",
                    flow="下班后",
                    node="留言",
                    file="/录音/1.wav",
                    duration_s=3.5,
                    created_at=T0,
                )
            )
    finally:
        engine.dispose()


_VOICEMAILS_0002 = sa.table(
    "voicemails",
    sa.column("call_id", sa.Integer()),
    sa.column("uniqueid", sa.String()),
    sa.column("caller_number", sa.String()),
    sa.column("flow", sa.String()),
    sa.column("node", sa.String()),
    sa.column("file", sa.String()),
    sa.column("duration_s", sa.Float()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def _call_rows(url: str) -> list[tuple[str, str]]:
    """(uniqueid, channel) of every call, read with plain SQL (the models may be newer than the schema)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [(u, c) for u, c in conn.execute(text("SELECT uniqueid, channel FROM calls ORDER BY id"))]
    finally:
        engine.dispose()


def test_upgrade_0002_to_0003_keeps_existing_calls_and_voicemails(db_url: str) -> None:
    assert upgrade(db_url, "0002") == "0002"
    assert not (AGENT_TABLES & _tables(db_url))
    _insert_0002_rows(db_url)

    assert upgrade(db_url, "0003") == "0003"
    assert APP_TABLES - ACD_TABLES <= _tables(db_url)
    assert not (ACD_TABLES & _tables(db_url))
    assert _indexes(db_url, "agent_state_changes") == {
        "ix_agent_state_changes_agent_id": False,
        "ix_agent_state_changes_at": False,
    }
    assert _unique_constraints(db_url, "agent_state_changes") == {
        "uq_agent_state_changes_agent_id_at_to_state": ["agent_id", "at", "to_state"]
    }
    assert _call_rows(db_url) == [("1.1", "PJSIP/运营商-1")]
    engine = make_engine(db_url)
    try:
        # The new tables take writes at once.
        agents = AgentStore(make_sessionmaker(engine), clock=lambda: T0)
        agents.record("1001", T0, "offline", "available", extension="1001")
        assert agents.current() == {"1001": AgentRow("1001", AgentState.AVAILABLE, T0, None, None, "1001", T0)}
    finally:
        engine.dispose()

    assert upgrade(db_url) == head_revision()
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        view = CallStore(sessions).get("1.1")
        assert view is not None
        assert (view.channel, view.flow, view.arrived_at) == ("PJSIP/运营商-1", "主菜单", T0)
        [voicemail] = VoicemailStore(sessions).list()
        assert (voicemail.call_id, voicemail.flow, voicemail.file) == (view.id, "下班后", "/录音/1.wav")
    finally:
        engine.dispose()


def test_downgrade_0003_to_0002_and_up_again(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        CallStore(sessions).call_arrived("1.1", "1.1", "13800138000", "12333", "PJSIP/运营商-1", T0)
        agents = AgentStore(sessions)
        agents.record("1001", T0, "offline", "available", extension="1001")
        agents.record("1001", T0 + timedelta(minutes=1), "available", "paused", reason="小休", pause_reason="小休")
    finally:
        engine.dispose()

    assert downgrade(db_url, "0002") == "0002"
    assert current_revision(db_url) == "0002"
    assert not ((AGENT_TABLES | ACD_TABLES) & _tables(db_url))
    assert APP_TABLES - AGENT_TABLES - ACD_TABLES <= _tables(db_url)
    assert IVR_COLUMNS <= _columns(db_url, "calls")
    assert _call_rows(db_url) == [("1.1", "PJSIP/运营商-1")]

    assert upgrade(db_url, "0003") == "0003"
    assert APP_TABLES - ACD_TABLES <= _tables(db_url)
    engine = make_engine(db_url)
    try:
        agents = AgentStore(make_sessionmaker(engine))
        assert agents.current() == {}
        assert agents.changes(None, T0 - timedelta(days=1), T0 + timedelta(days=1)) == []
        agents.record("1001", T0, "offline", "available", reason="登录")
        assert agents.changes("1001", T0, T0 + timedelta(seconds=1)) == [
            StateChange("1001", T0, AgentState.OFFLINE, AgentState.AVAILABLE, "登录")
        ]
    finally:
        engine.dispose()


def test_upgrade_0003_to_0004_keeps_existing_calls_voicemails_and_agents(db_url: str) -> None:
    assert upgrade(db_url, "0003") == "0003"
    assert not (ACD_TABLES & _tables(db_url))
    assert not (ACD_COLUMNS & _columns(db_url, "calls"))
    _insert_0002_rows(db_url)
    engine = make_engine(db_url)
    try:
        AgentStore(make_sessionmaker(engine), clock=lambda: T0).record("1001", T0, "offline", "available")
    finally:
        engine.dispose()

    assert upgrade(db_url, "0004") == "0004"
    assert APP_TABLES <= _tables(db_url)
    assert ACD_COLUMNS <= _columns(db_url, "calls")
    assert _indexes(db_url, "calls") == {
        "ix_calls_linkedid": False,
        "ix_calls_uniqueid": True,
        "ix_calls_queued_at": False,
        "ix_calls_agent_id": False,
        "ix_calls_caller_number": False,
    }
    assert _unique_constraints(db_url, "callbacks") == {"uq_callbacks_number_day": ["number", "day"]}
    assert _unique_constraints(db_url, "recordings") == {"uq_recordings_file": ["file"]}
    assert _indexes(db_url, "callback_attempts") == {"ix_callback_attempts_callback_id": False}
    # The stores speak the newest schema: use them at head.
    assert upgrade(db_url) == head_revision()
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        calls = CallStore(sessions)
        view = calls.get("1.1")
        assert view is not None
        assert (view.channel, view.flow, view.arrived_at) == ("PJSIP/运营商-1", "主菜单", T0)
        assert (view.queue, view.queued_at, view.agent_id, view.summary, view.survey_agent_id) == (None,) * 5
        [voicemail] = VoicemailStore(sessions).list()
        assert voicemail.call_id == view.id
        assert set(AgentStore(sessions).current()) == {"1001"}
        # The old call and the new tables take the new writes at once.
        assert calls.queue_entered("1.1", "社保", None, 5, T0)
        assert calls.agent_answered("1.1", "1001", T0 + timedelta(seconds=9))
        assert RecordingStore(sessions).started("1.1", "1001", "agent", "/var/spool/asterisk/1.wav", T0) > 0
        callbacks = CallbackStore(sessions)
        callback_id = callbacks.request("13800138000", "1.1", "abandoned", T0)
        assert callbacks.calls(callback_id) == ["1.1"]
    finally:
        engine.dispose()


def test_downgrade_0004_to_0003_and_up_again(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        calls = CallStore(sessions)
        calls.call_arrived("1.1", "1.1", "13800138000", "12333", "PJSIP/运营商-1", T0)
        calls.set_flow("1.1", "主菜单", "cd" * 32, T0)
        calls.queue_entered("1.1", "社保", "养老金", 1, T0)
        calls.agent_answered("1.1", "1001", T0 + timedelta(seconds=5))
        calls.set_wrapup("1.1", "1001", T0 + timedelta(minutes=2), "咨询养老金到账时间")
        RecordingStore(sessions).started("1.1", "1001", "agent", "/rec/1.wav", T0)
        callbacks = CallbackStore(sessions)
        callback_id = callbacks.request("13800138000", "1.1", "abandoned", T0)
        callbacks.attempt_started(callback_id, "1001", T0)
        AgentStore(sessions).record("1001", T0, "offline", "available")
    finally:
        engine.dispose()

    assert downgrade(db_url, "0003") == "0003"
    assert current_revision(db_url) == "0003"
    assert not (ACD_TABLES & _tables(db_url))
    assert not (ACD_COLUMNS & _columns(db_url, "calls"))
    assert AGENT_TABLES <= _tables(db_url)
    # The rebuilt calls table (SQLite) keeps its rows, old indexes and the cascade to call_events.
    assert _indexes(db_url, "calls") == {"ix_calls_linkedid": False, "ix_calls_uniqueid": True}
    assert _call_rows(db_url) == [("1.1", "PJSIP/运营商-1")]
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            kinds = conn.execute(text("SELECT kind FROM call_events ORDER BY id")).scalars().all()
            assert kinds == ["arrived", "flow", "queued", "agent_answered", "wrapup_ended"]
            if engine.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        assert set(AgentStore(make_sessionmaker(engine)).current()) == {"1001"}
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM calls"))
            assert conn.execute(text("SELECT count(*) FROM call_events")).scalar() == 0
    finally:
        engine.dispose()

    assert upgrade(db_url) == head_revision()
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        assert RecordingStore(sessions).open_recordings() == []
        callbacks = CallbackStore(sessions)
        assert callbacks.list_day(T0.date()) == []
        assert callbacks.request("13800138000", "2.1", "abandoned", T0) > 0
    finally:
        engine.dispose()


_RECORDINGS_0004 = sa.table(
    "recordings",
    sa.column("id", sa.Integer()),
    sa.column("call_id", sa.Integer()),
    sa.column("uniqueid", sa.String()),
    sa.column("agent_id", sa.String()),
    sa.column("leg", sa.String()),
    sa.column("file", sa.String()),
    sa.column("started_at", sa.DateTime(timezone=True)),
    sa.column("ended_at", sa.DateTime(timezone=True)),
    sa.column("duration_s", sa.Float()),
    sa.column("size_bytes", sa.Integer()),
    sa.column("status", sa.String()),
)
RECORDING_INDEXES_0004 = {
    "ix_recordings_call_id": False,
    "ix_recordings_uniqueid": False,
    "ix_recordings_status": False,
}


def _recording_rows(url: str) -> list[tuple[int, int | None, str, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, call_id, file, status FROM recordings ORDER BY id"))
            return [(i, c, f, st) for i, c, f, st in rows]
    finally:
        engine.dispose()


def _check_recordings_cascade(url: str) -> None:
    """Foreign keys intact after a table rebuild: deleting the call only clears call_id."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            conn.execute(text("DELETE FROM calls"))
            assert conn.execute(text("SELECT count(*) FROM recordings WHERE call_id IS NULL")).scalar() == 2
    finally:
        engine.dispose()


def test_upgrade_0004_to_0005_keeps_recordings(db_url: str) -> None:
    assert upgrade(db_url, "0004") == "0004"
    assert not (ARCHIVE_TABLES & _tables(db_url))
    assert not (ARCHIVE_COLUMNS & _columns(db_url, "recordings"))
    _insert_0002_rows(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                _RECORDINGS_0004.insert(),
                [
                    {
                        "id": 1, "call_id": 1, "uniqueid": "1.1", "agent_id": "1001", "leg": "agent",
                        "file": "/srv/hotline/cc/spool/monitor/2024-05-01/1.2.wav", "started_at": T0,
                        "ended_at": T0 + timedelta(seconds=12), "duration_s": 12.5, "size_bytes": 200044,
                        "status": "done",
                    },
                    {
                        "id": 2, "call_id": 1, "uniqueid": "1.1", "agent_id": "1002", "leg": "consult",
                        "file": "/srv/hotline/cc/spool/monitor/2024-05-01/1.3.wav", "started_at": T0,
                        "ended_at": None, "duration_s": None, "size_bytes": None, "status": "recording",
                    },
                ],
            )  # fmt: skip
    finally:
        engine.dispose()

    assert upgrade(db_url, "0005") == "0005"
    assert ARCHIVE_TABLES <= _tables(db_url)
    assert ARCHIVE_COLUMNS <= _columns(db_url, "recordings")
    assert _indexes(db_url, "recordings") == RECORDING_INDEXES_0004 | {
        "ix_recordings_archive_state": False,
        "ix_recordings_archive_day": False,
        "ix_recordings_manifest_id": False,
    }
    assert _unique_constraints(db_url, "recordings") == {
        "uq_recordings_file": ["file"],
        "uq_recordings_archive_path": ["archive_path"],
    }
    assert _unique_constraints(db_url, "recording_manifests") == {
        "uq_recording_manifests_day_part": ["day", "part"],
        "uq_recording_manifests_path": ["path"],
        "uq_recording_manifests_position": ["position"],
        "uq_recording_manifests_sha256": ["sha256"],
    }
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        # The old rows read back through the archive's views, not taken up by the archiver yet.
        view = archived_recording(sessions, 1)
        assert view is not None and (view.status, view.state, view.path, view.hold_at) == ("done", None, None, None)
        assert archive_summary(sessions)["waiting"] == 1
        assert set_hold(sessions, 1, by="审计员", reason="投诉", at=T0).held
        assert RecordingStore(sessions).open_recordings()[0].id == 2
    finally:
        engine.dispose()
    assert _recording_rows(db_url)[0] == (1, 1, "/srv/hotline/cc/spool/monitor/2024-05-01/1.2.wav", "done")
    _check_recordings_cascade(db_url)


def test_downgrade_0005_to_0004_and_up_again(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        CallStore(sessions).call_arrived("1.1", "1.1", "13800138000", "12333", "PJSIP/运营商-1", T0)
        recordings = RecordingStore(sessions)
        first = recordings.started("1.1", "1001", "agent", "/rec/1.2.wav", T0)
        second = recordings.started("1.1", "1002", "consult", "/rec/1.3.wav", T0)
        with sessions() as session, session.begin():
            manifest = RecordingManifest(
                position=1, day=T0.date(), part=0, sealed_at=T0, entry_count=1, previous_sha256="0" * 64,
                sha256="a" * 64, path="2024/05/01/MANIFEST.json", body="{}",
            )  # fmt: skip
            session.add(manifest)
            session.flush()
            session.execute(
                sa.update(Recording)
                .where(Recording.id == first)
                .values(
                    status="done", archive_state="archived", archive_day=T0.date(),
                    archive_path="2024/05/01/1.2.opus", archive_sha256="b" * 64, archive_size_bytes=9000,
                    manifest_id=manifest.id, purged_at=T0,
                )
            )  # fmt: skip
            session.add(
                RecordingPurge(
                    recording_id=first, archive_path="2024/05/01/1.2.opus", sha256="b" * 64, size_bytes=9000,
                    day=T0.date(), purged_at=T0, by="retention", reason="test",
                )
            )  # fmt: skip
        set_hold(sessions, second, by="审计员", reason="投诉", at=T0)
        record_run(sessions, "verify", T0, T0, ok=True, counts={"files_checked": 1}, chain_head="a" * 64)
    finally:
        engine.dispose()

    assert downgrade(db_url, "0004") == "0004"
    assert current_revision(db_url) == "0004"
    assert not (ARCHIVE_TABLES & _tables(db_url))
    assert not (ARCHIVE_COLUMNS & _columns(db_url, "recordings"))
    assert APP_TABLES <= _tables(db_url)
    # The rebuilt recordings table (SQLite) keeps its rows, indexes, unique file and foreign key.
    assert _indexes(db_url, "recordings") == RECORDING_INDEXES_0004
    assert _unique_constraints(db_url, "recordings") == {"uq_recordings_file": ["file"]}
    assert [(f, st) for _i, _c, f, st in _recording_rows(db_url)] == [
        ("/rec/1.2.wav", "done"),
        ("/rec/1.3.wav", "recording"),
    ]
    _check_recordings_cascade(db_url)

    assert upgrade(db_url) == head_revision()
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        assert last_verify(sessions) is None
        views = [archived_recording(sessions, first), archived_recording(sessions, second)]
        assert [(v.state, v.hold_at, v.purged_at) for v in views if v is not None] == [(None, None, None)] * 2
    finally:
        engine.dispose()


def test_migrations_match_models(db_url: str) -> None:
    """Autogenerate finds nothing to do: the migration and the models describe the same schema."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    finally:
        engine.dispose()


def test_upgrade_creates_missing_sqlite_folder(tmp_path: Path) -> None:
    path = tmp_path / "state" / "deeper" / "hotline.db"
    assert upgrade(f"sqlite:///{path}") == head_revision()
    assert path.is_file()


def test_current_revision_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    assert current_revision(f"sqlite:///{path}") is None
    assert not path.exists()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_scheme_without_driver_means_psycopg(db_url: str) -> None:
    plain = db_url.replace("postgresql+psycopg://", "postgresql://", 1)
    assert upgrade(plain) == head_revision()


# --- errors a user can make -------------------------------------------------------------------


def _one_line_error(call: object, *args: str) -> str:
    assert callable(call)
    with pytest.raises(DatabaseError) as info:
        call(*args)
    message = str(info.value)
    assert isinstance(info.value, HotlineError)
    assert "\n" not in message and message.strip() == message
    assert "hotline.toml" in message or "install" in message
    return message


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "hotline.db",
        "mysql://root@localhost/hotline",
        "postgresql+asyncpg://u@h/db",
        "nosuch://x",
    ],
)
@pytest.mark.parametrize("action", [upgrade, current_revision, make_engine])
def test_bad_url(url: str, action: object) -> None:
    message = _one_line_error(action, url)
    assert "[database] url" in message


def test_unreachable_postgresql() -> None:
    url = "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test"
    for action in (upgrade, current_revision):
        message = _one_line_error(action, url)
        assert message.startswith("cannot reach the database at postgresql+psycopg://postgres:***@127.0.0.1:1/test")
        assert "refused" in message.lower()
        assert "s3cret" not in message


@pytest.mark.postgres
def test_missing_postgresql_database() -> None:
    if os.environ.get("HOTLINE_SKIP_POSTGRES") == "1":
        pytest.skip("HOTLINE_SKIP_POSTGRES=1")
    base = os.environ.get("HOTLINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    url = base.rsplit("/", 1)[0] + "/hotline_no_such_db"
    message = _one_line_error(upgrade, url)
    assert 'database "hotline_no_such_db" does not exist' in message


def test_database_from_a_newer_hotline(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    assert current_revision(db_url) == "9999"
    message = _one_line_error(upgrade, db_url)
    assert "newer hotline" in message and "9999" in message


def test_sqlite_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    message = _one_line_error(upgrade, f"sqlite:///{blocker / 'hotline.db'}")
    assert str(blocker) in message


def test_sqlite_path_that_cannot_be_opened(tmp_path: Path) -> None:
    # A folder where the file should be: SQLite cannot open it (works even when run as root).
    folder = tmp_path / "hotline.db"
    folder.mkdir()
    for action in (upgrade, current_revision):
        message = _one_line_error(action, f"sqlite:///{folder}")
        assert message.startswith(f"cannot open the SQLite database {folder}")


# The user the permission check runs as when the suite runs as root (scripts/test.sh does):
# root ignores folder permissions, so the check drops to an unprivileged user in a child process.
NOBODY_UID = 65534
# What the child prints: the one-line error, or why there was none.
_UPGRADE_AS_USER = """
import sys
from cc_core.db.session import DatabaseError, upgrade
try:
    upgrade(sys.argv[1])
except DatabaseError as exc:
    print("error:" + str(exc))
else:
    print("no error")
"""


def test_sqlite_folder_not_writable(tmp_path: Path) -> None:
    """A folder the controller's user may not write into: a one-line error naming the folder.

    Root may write anywhere, and the test command runs as root, so the check was skipped in every
    real run; as root it now runs ``upgrade`` in a child process that has dropped to ``nobody``
    (uid 65534, no groups), over a folder that user owns with mode 0500."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        try:
            message = _one_line_error(upgrade, f"sqlite:///{folder / 'hotline.db'}")
        finally:
            folder.chmod(0o700)
    else:
        # pytest's tmp_path is under a root-only 0700 folder: nobody could not even reach it.
        base = Path(tempfile.mkdtemp(prefix="hotline-ro-"))
        try:
            base.chmod(0o755)
            folder = base / "ro"
            folder.mkdir()
            os.chown(folder, NOBODY_UID, NOBODY_UID)
            folder.chmod(0o500)
            # setpriv (util-linux, essential in Debian) drops to nobody before it runs Python.
            child = subprocess.run(
                [
                    "setpriv",
                    f"--reuid={NOBODY_UID}",
                    f"--regid={NOBODY_UID}",
                    "--clear-groups",
                    sys.executable,
                    "-c",
                    _UPGRADE_AS_USER,
                    f"sqlite:///{folder / 'hotline.db'}",
                ],
                cwd=str(Path(__file__).resolve().parents[2]),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert child.returncode == 0, child.stderr
            output = child.stdout.strip()
            assert output.startswith("error:"), (output, child.stderr)
            message = output.removeprefix("error:")
            assert list(folder.iterdir()) == []  # nothing was written there
        finally:
            shutil.rmtree(base, ignore_errors=True)
    assert message == (
        f"cannot open the SQLite database {folder / 'hotline.db'} (unable to open database file; "
        f"is the folder {folder} there and writable?); check [database] url in hotline.toml"
    )


def test_mask_url() -> None:
    assert mask_url("postgresql+psycopg://u:pw@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert "pw" not in mask_url("weird://u:pw@h:notaport/db")


def test_downgrade_0006_to_0005_and_up_again(db_url: str) -> None:
    """The accounts go with their tables; the audit log's append-only triggers are dropped and made again."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        UserStore(sessions).add("aud1", "auditor", "Hotline-test-2026", T0)
        AuditLog(sessions).write(T0, "aud1", "auditor", "login", "aud1", "127.0.0.1", allowed=True)
    finally:
        engine.dispose()
    assert downgrade(db_url, "0005") == "0005"
    assert not (AUTH_TABLES & _tables(db_url))
    assert ARCHIVE_TABLES <= _tables(db_url)
    assert upgrade(db_url) == head_revision()
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        assert UserStore(sessions).list() == []
        AuditLog(sessions).write(T0, "aud1", "auditor", "login", "aud1", "127.0.0.1", allowed=True)
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), sessions() as session, session.begin():
            session.execute(sa.text("DELETE FROM audit_log"))
    finally:
        engine.dispose()


# The calls columns the 0006/0007 tests write, independent of today's models (the stores speak
# the newest schema, which has contacts since 0008).
_CALLS_0006 = sa.table(
    "calls",
    sa.column("uniqueid", sa.String()),
    sa.column("linkedid", sa.String()),
    sa.column("caller_number", sa.String()),
    sa.column("dialed_number", sa.String()),
    sa.column("channel", sa.String()),
    sa.column("arrived_at", sa.DateTime(timezone=True)),
    sa.column("queue", sa.String()),
    sa.column("queued_at", sa.DateTime(timezone=True)),
)


def test_upgrade_0006_to_0007_fills_answered_at_from_the_first_answer(db_url: str) -> None:
    """Issue 11: answered_at was never written. Calls answered before 0007 get their first
    agent's answer (connected_at); calls never answered keep none; a second upgrade changes nothing."""
    assert upgrade(db_url, "0006") == "0006"
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:  # as the code of 0006 left it: connected_at only
            for uid in ("answered.1", "abandoned.1"):
                conn.execute(
                    _CALLS_0006.insert().values(
                        uniqueid=uid,
                        linkedid=uid,
                        caller_number="13800138000",
                        dialed_number="12333",
                        channel="PJSIP/carrier-1",
                        arrived_at=T0,
                        queue="q",
                        queued_at=T0 + timedelta(seconds=5),
                    )
                )
            conn.execute(
                text("UPDATE calls SET connected_at = :at, agent_id = '1001' WHERE uniqueid = 'answered.1'"),
                {"at": T0 + timedelta(seconds=30)},
            )
    finally:
        engine.dispose()
    assert upgrade(db_url, "0007") == "0007"
    engine = make_engine(db_url)
    try:
        store = CallStore(make_sessionmaker(engine))
        answered, abandoned = store.get("answered.1"), store.get("abandoned.1")
        assert answered is not None and answered.answered_at == T0 + timedelta(seconds=30)
        assert abandoned is not None and abandoned.answered_at is None
    finally:
        engine.dispose()
    assert downgrade(db_url, "0006") == "0006"
    assert upgrade(db_url, "0007") == "0007"


_CALLS_0007 = sa.table(
    "calls",
    sa.column("uniqueid", sa.String()),
    sa.column("linkedid", sa.String()),
    sa.column("caller_number", sa.String()),
    sa.column("dialed_number", sa.String()),
    sa.column("channel", sa.String()),
    sa.column("arrived_at", sa.DateTime(timezone=True)),
    sa.column("connected_at", sa.DateTime(timezone=True)),
    sa.column("answered_at", sa.DateTime(timezone=True)),
    sa.column("agent_id", sa.String()),
)


def test_upgrade_0007_to_0008_links_every_call_to_a_contact(db_url: str) -> None:
    """Issue 12 item 4: existing calls are kept and linked. One contact per distinct caller
    number after normalising (+86…, 0086… and 1… are one citizen), one contact per withheld
    call, one voice interaction per call with its first answer and last agent; new writes
    continue on the migrated contacts (PostgreSQL's id sequence included)."""
    assert upgrade(db_url, "0007") == "0007"
    minute = timedelta(minutes=1)
    # (uniqueid, caller number, arrival, agent who had the caller last or None)
    rows = [
        ("m.1", "13800138000", T0, "1001"),
        ("m.2", "+8613800138000", T0 + minute, "1002"),
        ("m.3", "008613800138000", T0 + 2 * minute, None),
        ("m.4", "01012345678", T0 + 3 * minute, "1003"),
        ("m.5", "+861012345678", T0 + 4 * minute, None),
        ("m.6", "", T0 + 5 * minute, "1004"),
        ("m.7", "anonymous", T0 + 6 * minute, None),
        ("m.8", "13900139000", T0 - minute, None),
    ]
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            for uid, number, at, agent in rows:
                conn.execute(
                    _CALLS_0007.insert().values(
                        uniqueid=uid,
                        linkedid=uid,
                        caller_number=number,
                        dialed_number="12333",
                        channel="PJSIP/carrier-1",
                        arrived_at=at,
                        connected_at=at + 10 * timedelta(seconds=1) if agent else None,
                        answered_at=at + 10 * timedelta(seconds=1) if agent else None,
                        agent_id=agent,
                    )
                )
    finally:
        engine.dispose()

    assert upgrade(db_url) == "0008"
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 8
            identities = conn.execute(
                text("SELECT kind, value, display, contact_id FROM contact_identities ORDER BY value")
            ).all()
            contacts = dict(conn.execute(text("SELECT id, created_at FROM contacts")).all())
            links = dict(conn.execute(text("SELECT ref, contact_id FROM interactions WHERE channel = 'voice'")).all())
        # 3 numbers, 2 withheld calls.
        assert len(contacts) == 5
        assert [(kind, value, display) for kind, value, display, _ in identities] == [
            ("phone", "01012345678", "01012345678"),
            ("phone", "13800138000", "13800138000"),
            ("phone", "13900139000", "13900139000"),
        ]
        landline, mobile, other = (contact for *_, contact in identities)
        assert links == {
            "m.1": mobile,
            "m.2": mobile,
            "m.3": mobile,
            "m.4": landline,
            "m.5": landline,
            "m.6": links["m.6"],
            "m.7": links["m.7"],
            "m.8": other,
        }
        assert len({links["m.6"], links["m.7"], mobile, landline, other}) == 5
        sessions = make_sessionmaker(engine)
        store = CallStore(sessions)
        # The first call of the number is when the contact was first seen.
        assert store.contacts.history(mobile)[-1].started_at == T0
        assert [(h.ref, h.agent_id, h.answered_at) for h in store.contacts.history(mobile)] == [
            ("m.3", None, None),
            ("m.2", "1002", T0 + minute + timedelta(seconds=10)),
            ("m.1", "1001", T0 + timedelta(seconds=10)),
        ]
        # The returning-caller look-up reads the linked history, in any spelling of the number.
        assert store.last_agent("+86 138 0013 8000", T0 - minute) == "1002"
        assert store.last_agent("01012345678", T0 - minute) == "1003"
        assert store.last_agent("", T0 - minute) is None
        # New calls join the migrated contacts; a new number gets a new id after theirs.
        store.call_arrived("n.1", "n.1", "8613800138000", "12333", "PJSIP/carrier-1", T0 + 9 * minute)
        store.call_arrived("n.2", "n.2", "13700137000", "12333", "PJSIP/carrier-1", T0 + 9 * minute)
        assert store.contacts.contact_of_interaction(Channel.VOICE, "n.1") == mobile
        new = store.contacts.contact_of_interaction(Channel.VOICE, "n.2")
        assert new is not None and new > max(contacts)
    finally:
        engine.dispose()

    # Down again: the calls stay, the contacts go; up again links them anew.
    assert downgrade(db_url, "0007") == "0007"
    assert not ({"contacts", "contact_identities", "interactions"} & _tables(db_url))
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 10
    finally:
        engine.dispose()
    assert upgrade(db_url) == "0008"
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM interactions")).scalar() == 10
            assert conn.execute(text("SELECT count(*) FROM contacts")).scalar() == 6
    finally:
        engine.dispose()


def test_0008_normalises_numbers_as_the_code_of_its_time() -> None:
    """The migration keeps its own copy of the phone normalising (a migration must not change
    with later code): today both give the same national form."""
    path = Path(__file__).resolve().parents[2] / "cc_core/db/migrations/versions/0008_contacts.py"
    spec = importlib.util.spec_from_file_location("migration_0008", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    frozen = migration.normalise_phone
    samples = [
        "13800138000", "+8613800138000", "008613800138000", "8613800138000", "013800138000",
        "01012345678", "+861012345678", "+86 10 1234-5678", "12345678", "86123456", "+14155550100",
        "0014155550100", "12333", "", "anonymous", "+", "00", "+86", "１３８００１３８０００", "٣٣", "1" * 33,
    ]  # fmt: skip
    assert [frozen(s) for s in samples] == [normalise_phone(s) for s in samples]
