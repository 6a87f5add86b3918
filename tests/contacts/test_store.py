"""Contacts in the database: calls linked as they are recorded, the returning citizen across
channels, merges, ID cards as keyed hashes (issue 12 item 4). SQLite and PostgreSQL each."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from cc_core.calls.store import CallStore
from cc_core.contacts.identity import Channel, Identity, IdentityError, IdentityKind, phone, web_visitor, wechat
from cc_core.contacts.merge import MergeConflict, MergePlan
from cc_core.contacts.store import ContactStore, link_call
from cc_core.db.models import Contact, ContactIdentity, Interaction
from cc_core.db.writer import DbWriter
from cc_core.secrets import load_or_create, secrets_path
from cc_core.settings import Settings
from cc_core.web.workstation import Views
from tests.db.test_writer import _together

T0 = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # 10:00 in Beijing, "yesterday"
DAY = timedelta(days=1)
KEY = b"contact-key-for-tests-0123456789"
ID = "11010519491231002X"
MOBILE = phone("13800138000")
assert MOBILE is not None


@pytest.fixture
def sessions(store: CallStore) -> sessionmaker[Session]:
    return store._sessions


@pytest.fixture
def contacts(sessions: sessionmaker[Session]) -> ContactStore:
    return ContactStore(sessions, id_card_key=KEY)


def _count(sessions: sessionmaker[Session], model: type[Any]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _call(store: CallStore, uid: str, number: str, at: datetime, agent: str | None = None) -> None:
    store.call_arrived(uid, uid, number, "12333", "PJSIP/carrier-1", at)
    if agent is not None:
        store.agent_answered(uid, agent, at + timedelta(seconds=20))


def test_each_call_is_one_interaction_of_its_callers_contact(store: CallStore, sessions: sessionmaker[Session]) -> None:
    _call(store, "c.1", "13800138000", T0)
    _call(store, "c.2", "+86 138 0013 8000", T0 + timedelta(hours=1))
    _call(store, "c.3", "13900139000", T0 + timedelta(hours=2))
    _call(store, "c.4", "anonymous", T0 + timedelta(hours=3))
    _call(store, "c.5", "", T0 + timedelta(hours=4))
    # A repeated arrival (AMI and AGI both report the call) links nothing more.
    _call(store, "c.1", "13800138000", T0)
    contact = store.contacts.contact_of(MOBILE)
    assert contact is not None
    links = {
        uid: store.contacts.contact_of_interaction(Channel.VOICE, uid) for uid in ("c.1", "c.2", "c.3", "c.4", "c.5")
    }
    assert links["c.1"] == links["c.2"] == contact
    assert len(set(links.values())) == 4  # two withheld callers are two strangers
    assert (_count(sessions, Interaction), _count(sessions, Contact), _count(sessions, ContactIdentity)) == (5, 4, 2)
    assert store.contacts.identities(contact) == [MOBILE]
    assert store.contacts.identities(cast(int, links["c.4"])) == []


def test_an_answer_is_the_interactions_first_answer_and_last_agent(store: CallStore) -> None:
    _call(store, "a.1", "13800138000", T0)
    assert store.agent_answered("a.1", "1001", T0 + timedelta(seconds=10))
    assert store.agent_answered("a.1", "1002", T0 + timedelta(seconds=90))  # a transfer
    [view] = store.contacts.history(cast(int, store.contacts.contact_of(MOBILE)))
    assert (view.ref, view.answered_at, view.agent_id) == ("a.1", T0 + timedelta(seconds=10), "1002")
    assert store.agent_answered("nope.1", "1001", T0) is False


def test_linking_a_known_callers_call_is_one_statement(store: CallStore, sessions: sessionmaker[Session]) -> None:
    """The call path is hot (decision 0014): a known number costs one INSERT … SELECT; a new one
    a contact and its two rows (held to the end of a writer's batch, at once here)."""
    if sessions.kw["bind"].dialect.name != "sqlite":
        pytest.skip("statements are counted with SQLite's trace callback (the same code runs on both)")
    _call(store, "k.1", "13800138000", T0)
    for uid, number, expected in (
        ("k.2", "13800138000", ["INSERT INTO interactions (contact_id, channel, ref, started_at) SELECT"]),
        (
            "k.3",
            "13700137000",
            [
                "INSERT INTO interactions (contact_id, channel, ref, started_at) SELECT",
                "INSERT INTO contacts (created_at) VALUES",
                "INSERT INTO contact_identities (contact_id, kind, value, display, created_at) VALUES",
                "INSERT INTO interactions (contact_id, channel, ref, started_at) VALUES",
            ],
        ),
    ):
        statements: list[str] = []
        with sessions() as session, session.begin():
            raw = session.connection().connection.dbapi_connection
            raw.set_trace_callback(statements.append)  # type: ignore[union-attr]
            link_call(session, uid, number, T0 + timedelta(hours=1))
            raw.set_trace_callback(None)  # type: ignore[union-attr]
        ran = [s for s in statements if not s.startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))]
        assert [s[: len(e)] for s, e in zip(ran, expected, strict=True)] == expected, ran
    assert _count(sessions, Interaction) == 3


def test_two_new_calls_of_one_new_number_in_one_writer_batch_make_one_contact(
    store: CallStore, sessions: sessionmaker[Session]
) -> None:
    """The second call's identity fails the batch's unique key; the writer runs both again alone,
    and the second call finds the first's contact (no duplicate citizen, no lost call)."""
    writer = DbWriter(sessions)
    writer.rollback_hooks.append(store.forget_ids)
    writer.start()
    try:
        results = asyncio.run(
            _together(
                writer,
                writer.run(store.call_arrived, "b.1", "b.1", "13600136000", "12333", "PJSIP/c", T0),
                writer.run(store.call_arrived, "b.2", "b.2", "+8613600136000", "12333", "PJSIP/c", T0),
            )
        )
    finally:
        writer.close()
    assert [isinstance(r, int) for r in results] == [True, True]
    assert writer.replayed_batches == 1
    contact = store.contacts.contact_of(cast(Identity, phone("13600136000")))
    assert [store.contacts.contact_of_interaction(Channel.VOICE, uid) for uid in ("b.1", "b.2")] == [contact] * 2
    assert (_count(sessions, ContactIdentity), _count(sessions, Interaction)) == (1, 2)


def test_returning_caller_is_found_in_any_spelling_of_the_number(store: CallStore) -> None:
    """Before contacts, +8613800138000 and 13800138000 were two callers (the look-up compared
    the raw numbers)."""
    _call(store, "r.1", "+8613800138000", T0, agent="1001")
    assert store.last_agent("13800138000", T0 - DAY) == "1001"
    assert store.last_agent("008613800138000", T0 - DAY) == "1001"
    assert store.last_agent("13800138000", T0 + DAY) is None  # answered before the window
    assert store.last_agent("anonymous", T0 - DAY) is None


def test_a_citizen_who_called_yesterday_and_writes_on_chat_today_goes_to_yesterdays_agent(
    store: CallStore, contacts: ContactStore
) -> None:
    """last_agent_for finds a voice interaction for an identity of another kind (a web visitor)
    once the visitor gives the phone number they called from: the two contacts are merged."""
    _call(store, "y.1", "13800138000", T0, agent="1001")
    now = T0 + DAY
    visitor = web_visitor("visitor-7f3a")
    chat = contacts.record_interaction(visitor, Channel.WEB, "conv-1", now)
    assert contacts.last_agent_for(visitor, now - 2 * DAY) is None  # a stranger so far
    caller = contacts.contact_of(MOBILE)
    assert caller is not None and caller != chat
    # The visitor writes their number: the older contact (the caller) survives.
    assert contacts.add_identity(chat, phone("+8613800138000") or MOBILE, now) == caller
    assert contacts.last_agent_for(visitor, now - 2 * DAY) == "1001"
    assert contacts.last_agent(caller, now - 2 * DAY) == "1001"
    assert contacts.contact_of_interaction(Channel.WEB, "conv-1") == caller
    # Through the chat, the next call of the number sees the chat's agent when that came later.
    contacts.answered(Channel.WEB, "conv-1", "1007", now + timedelta(minutes=1))
    assert store.last_agent("13800138000", now - 2 * DAY) == "1007"
    assert contacts.identities(caller) == sorted([MOBILE, visitor])


def test_history_lists_every_channel_newest_first_with_the_calls_details(
    store: CallStore, contacts: ContactStore
) -> None:
    _call(store, "h.1", "13800138000", T0, agent="1001")
    store.set_summary("h.1", "1001", "咨询养老金", T0 + timedelta(minutes=3))
    store.set_survey("h.1", 1, T0 + timedelta(minutes=4), agent_id="1001")
    contact = cast(int, contacts.contact_of(MOBILE))
    contacts.add_identity(contact, wechat("wmCitizen1"), T0 + DAY)
    contacts.record_interaction(wechat("wmCitizen1"), Channel.WECHAT, "wx-1", T0 + DAY)
    _call(store, "h.2", "13800138000", T0 + 2 * DAY)
    views = contacts.history_of_call("h.2", "13800138000")
    assert [(v.channel, v.ref, v.agent_id, v.summary, v.survey_score) for v in views] == [
        ("wechat", "wx-1", None, None, None),
        ("voice", "h.1", "1001", "咨询养老金", 1),
    ]
    assert views[1].status == "connected" and views[1].started_at == T0
    # A callback's leg has no call record: the number's contact is found.
    assert [v.ref for v in contacts.history_of_call("callback-3", "+8613800138000")] == ["h.2", "wx-1", "h.1"]
    assert contacts.history_of_call("x.1", "anonymous") == []
    assert [v.ref for v in contacts.history(contact, limit=1)] == ["h.2"]


def test_the_workstation_pop_up_shows_earlier_contacts_of_every_channel(
    store: CallStore, contacts: ContactStore
) -> None:
    """GET /api/agent's call.history comes from the citizen's contact: a WeChat conversation is
    in it (before, only calls from the same number were)."""
    _call(store, "w.1", "13800138000", T0, agent="1001")
    contact = cast(int, contacts.contact_of(MOBILE))
    contacts.add_identity(contact, wechat("wmCitizen2"), T0 + DAY)
    contacts.record_interaction(wechat("wmCitizen2"), Channel.WECHAT, "wx-2", T0 + DAY)
    _call(store, "w.2", "13800138000", T0 + 2 * DAY)
    acd = SimpleNamespace(agents={}, waiters={}, queues={}, extension={})
    control = SimpleNamespace(room_state=lambda _uid: None)
    views = Views(cast(Any, acd), cast(Any, control), store, cast(Any, None), cast(Any, None), clock=lambda: T0)
    history = views._call_json("w.2", ringing=True)["history"]
    assert [(h["channel"], h["uniqueid"], h["agent_id"]) for h in history] == [
        ("wechat", "wx-2", None),
        ("voice", "w.1", "1001"),
    ]
    assert history[1]["arrived_at"] == T0.isoformat()


def test_merge_moves_identities_and_interactions_and_leaves_a_pointer(
    store: CallStore, contacts: ContactStore, sessions: sessionmaker[Session]
) -> None:
    _call(store, "m.1", "13800138000", T0, agent="1001")
    caller = cast(int, contacts.contact_of(MOBILE))
    visitor = contacts.record_interaction(web_visitor("v-1"), Channel.WEB, "conv-9", T0 + DAY)
    other = contacts.create(T0 + 2 * DAY, wechat("wm-2"))
    assert contacts.merge(other, visitor, T0 + 3 * DAY) == MergePlan(keep=visitor, drop=other, moved=(wechat("wm-2"),))
    # The contact merged away stands for the survivor; merging again follows the pointers.
    plan = contacts.merge(other, caller, T0 + 4 * DAY)
    assert plan == MergePlan(keep=caller, drop=visitor, moved=tuple(sorted([web_visitor("v-1"), wechat("wm-2")])))
    assert contacts.identities(caller) == sorted([MOBILE, web_visitor("v-1"), wechat("wm-2")])
    assert contacts.identities(visitor) == contacts.identities(other) == []
    assert [v.ref for v in contacts.history(caller)] == ["conv-9", "m.1"]
    with sessions() as session:
        pointers = dict(session.execute(select(Contact.id, Contact.merged_into_id)).all())
    assert pointers == {caller: None, visitor: caller, other: caller}
    assert contacts.add_identity(other, phone("13800138000") or MOBILE, T0 + 5 * DAY) == caller
    with pytest.raises(KeyError):
        contacts.merge(caller, 999_999, T0)


def test_two_id_cards_refuse_the_merge_and_change_nothing(
    store: CallStore, contacts: ContactStore, sessions: sessionmaker[Session]
) -> None:
    """A family shares a phone: the number must not make two card holders one citizen."""
    _call(store, "f.1", "13800138000", T0)
    parent = cast(int, contacts.contact_of(MOBILE))
    assert contacts.add_identity(parent, contacts.id_card(ID), T0) == parent
    child = contacts.create(T0 + DAY, contacts.id_card("110101199003070011"))
    before = (_count(sessions, ContactIdentity), contacts.identities(parent), contacts.identities(child))
    with pytest.raises(MergeConflict, match="身份证号不同"):
        contacts.add_identity(child, MOBILE, T0 + DAY)
    with pytest.raises(MergeConflict, match="已有另一身份证号"):
        contacts.add_identity(parent, contacts.id_card("11010119900307002X"), T0)
    assert (_count(sessions, ContactIdentity), contacts.identities(parent), contacts.identities(child)) == before
    with pytest.raises(IdentityError, match="已属于另一联系人"):
        contacts.create(T0, MOBILE)
    # The same card given again finds its citizen.
    assert contacts.contact_of(contacts.id_card("11010519491231002x")) == parent


def test_an_id_card_number_is_nowhere_in_the_database(
    store: CallStore, contacts: ContactStore, sessions: sessionmaker[Session]
) -> None:
    """P2: only the keyed hash and the masked form are kept (decision 0016)."""
    contact = contacts.create(T0, contacts.id_card(ID))
    [identity] = contacts.identities(contact)
    assert (identity.kind, identity.display) == (IdentityKind.ID_CARD, "110***********002X")
    with sessions() as session:
        rows = session.execute(text("SELECT * FROM contact_identities")).all()
    dumped = json.dumps([list(map(str, row)) for row in rows])
    assert ID not in dumped and ID[:17] not in dumped and "19491231" not in dumped
    with pytest.raises(ValueError, match="no contact key"):
        ContactStore(sessions).id_card(ID)


def test_bad_input_is_refused_with_a_clear_error(contacts: ContactStore) -> None:
    naive = datetime(2026, 12, 3, 10, 0)
    with pytest.raises(ValueError, match="naive"):
        contacts.record_interaction(MOBILE, Channel.WEB, "c-1", naive)
    with pytest.raises(ValueError, match="naive"):
        contacts.last_agent(1, naive)
    with pytest.raises(ValueError, match="ref must be 1 to 64"):
        contacts.record_interaction(MOBILE, Channel.WEB, "x" * 65, T0)
    with pytest.raises(ValueError, match="agent_id must be 1 to 16"):
        contacts.answered(Channel.WEB, "c-1", "", T0)
    with pytest.raises(KeyError):
        contacts.add_identity(424242, MOBILE, T0)
    assert contacts.record_interaction(None, Channel.WEB, "c-2", T0) == contacts.record_interaction(
        MOBILE, Channel.WEB, "c-2", T0
    )  # a repeat changes nothing, whatever identity it names


def test_the_contact_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = load_or_create(settings)
    assert len(first.contact_key) == 43  # 32 random bytes
    assert json.loads(secrets_path(settings).read_text())["contact_key"] == first.contact_key
    assert load_or_create(settings).contact_key == first.contact_key
