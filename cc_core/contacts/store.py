"""Contacts, their identities and interactions in the database (issue 12 item 4, decision 0016).

Two kinds of callers use this module:

- the call path, inside :meth:`cc_core.calls.store.CallStore.call_arrived` and
  ``agent_answered``, which run on the database writer (decision 0014): :func:`link_call` and
  :func:`call_answered` take the caller's session and cost one statement for a citizen already
  known (an ``INSERT … SELECT`` that finds the contact by its identity and links the call in one
  go), and two plus two rows held to the end of the writer's batch for a new one;
- everything else (the workstation, the ACD's look-up, a chat channel later) through
  :class:`ContactStore`, one transaction per method.

A citizen whose number is withheld is a contact of their own for each call: strangers must not
share one history, nor one agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cc_core.contacts.identity import Channel, Identity, IdentityError, IdentityKind, phone
from cc_core.contacts.identity import id_card as id_card_identity
from cc_core.contacts.merge import ContactFacts, MergeConflict, MergePlan, plan_merge
from cc_core.db.models import Call, Contact, ContactIdentity, Interaction, UTCDateTime, table_of
from cc_core.db.writer import Prepared, in_batch, insert_later, transaction

_REF_LEN = 64
_AGENT_LEN = 16

_CONTACTS = table_of(Contact)
_IDENTITIES = table_of(ContactIdentity)
_INTERACTIONS = table_of(Interaction)
_I = _INTERACTIONS.c
_ID = _IDENTITIES.c

# A known citizen's call, linked in one statement: the contact comes from its identity, and a
# repeat (the call linked already) inserts nothing.
_LINK_KNOWN = Prepared(
    insert(_INTERACTIONS).from_select(
        ["contact_id", "channel", "ref", "started_at"],
        select(
            _ID.contact_id,
            bindparam("channel", type_=_I.channel.type),
            bindparam("ref", type_=_I.ref.type),
            bindparam("at", type_=UTCDateTime()),
        ).where(
            _ID.kind == bindparam("kind"),
            _ID.value == bindparam("value"),
            ~exists().where(_I.channel == bindparam("channel"), _I.ref == bindparam("ref")),
        ),
    )
)
_NEW_CONTACT = Prepared(insert(_CONTACTS).returning(_CONTACTS.c.id))
_INSERT_IDENTITY = Prepared(insert(_IDENTITIES))
_INSERT_INTERACTION = Prepared(insert(_INTERACTIONS))
# The first answer is kept (as calls.connected_at); the agent is the one who has it last.
_ANSWERED = Prepared(
    update(_INTERACTIONS)
    .where(_I.channel == bindparam("p_channel"), _I.ref == bindparam("p_ref"))
    .values(
        answered_at=func.coalesce(_I.answered_at, bindparam("p_at", type_=UTCDateTime())),
        agent_id=bindparam("p_agent"),
    )
)


def link_call(session: Session, uniqueid: str, caller_number: str, at: datetime) -> None:
    """Link a new call to its caller's contact, inside the call record's own transaction.

    A known number: one ``INSERT … SELECT``. A new or withheld one: a new contact (one INSERT
    with RETURNING), and its identity and interaction held to the end of the writer's batch. Two
    new calls from one new number in one batch both make a contact; the second identity then
    fails the batch's unique key, and the writer runs each write again alone, where the second
    call finds the first's contact (decision 0014).
    """
    link_interaction(session, phone(caller_number), Channel.VOICE, uniqueid, at)


def link_interaction(session: Session, identity: Identity | None, channel: Channel, ref: str, at: datetime) -> None:
    """Link interaction ``(channel, ref)`` to the contact of ``identity`` (a new contact when
    it has none, or when ``identity`` is None: an unknown citizen). Idempotent for a known
    identity; see :func:`link_call`."""
    params = {"channel": channel.value, "ref": ref, "at": at}
    if identity is not None:
        found = _LINK_KNOWN.run(session, {**params, "kind": identity.kind.value, "value": identity.value})
        if found.rowcount > 0:
            return
    contact_id = _NEW_CONTACT.scalar(session, {"created_at": at})
    if identity is not None:
        insert_later(
            session,
            _INSERT_IDENTITY,
            {
                "contact_id": contact_id,
                "kind": identity.kind.value,
                "value": identity.value,
                "display": identity.display,
                "created_at": at,
            },
        )
    insert_later(
        session,
        _INSERT_INTERACTION,
        {"contact_id": contact_id, "channel": channel.value, "ref": ref, "started_at": at},
    )


def call_answered(session: Session, uniqueid: str, agent_id: str, at: datetime) -> None:
    """The call's interaction was answered by ``agent_id`` (see ``CallStore.agent_answered``)."""
    interaction_answered(session, Channel.VOICE, uniqueid, agent_id, at)


def interaction_answered(session: Session, channel: Channel, ref: str, agent_id: str, at: datetime) -> None:
    """``agent_id`` took interaction ``(channel, ref)``: the first answer is kept, the agent replaced."""
    _ANSWERED.run(session, {"p_channel": channel.value, "p_ref": ref, "p_at": at, "p_agent": agent_id})


@dataclass(frozen=True, slots=True)
class InteractionView:
    """One earlier interaction of a contact, for the workstation's history. The call's columns
    (summary, survey score, status, queue) are there for a voice interaction whose call row is
    kept; None otherwise."""

    channel: str
    ref: str
    started_at: datetime
    answered_at: datetime | None
    agent_id: str | None
    summary: str | None = None
    survey_score: int | None = None
    status: str | None = None
    queue: str | None = None


def _ref(value: str, name: str = "ref") -> str:
    if not value or len(value) > _REF_LEN or "\x00" in value:
        raise ValueError(f"{name} must be 1 to {_REF_LEN} characters without NUL, got {value[:80]!r}")
    return value


def _aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}; pass an aware one (datetime.now(UTC))")


class ContactStore:
    """Reads and writes contacts through a sessionmaker; ``id_card_key`` (the installation's
    ``contact_key``) is needed only to make or look up ID-card identities."""

    def __init__(self, sessions: sessionmaker[Session], *, id_card_key: bytes | None = None) -> None:
        self._sessions = sessions
        self._key = id_card_key

    # --- identities ------------------------------------------------------------------------------

    def id_card(self, number: str) -> Identity:
        """The identity of an ID-card number under this installation's key (IdentityError if invalid)."""
        if self._key is None:
            raise ValueError("this ContactStore has no contact key: ID cards cannot be looked up")
        return id_card_identity(number, self._key)

    def contact_of(self, identity: Identity) -> int | None:
        """The contact ``identity`` belongs to, or None."""
        with self._sessions() as session:
            return _contact_of(session, identity)

    def contact_of_interaction(self, channel: Channel, ref: str) -> int | None:
        """The contact of interaction ``(channel, ref)`` (a call's uniqueid), or None."""
        with self._sessions() as session:
            return session.scalar(select(_I.contact_id).where(_I.channel == channel.value, _I.ref == ref))

    def identities(self, contact_id: int) -> list[Identity]:
        """The contact's identities, sorted."""
        with self._sessions() as session:
            return _identities(session, contact_id)

    def create(self, at: datetime, *identities: Identity) -> int:
        """A new contact with ``identities`` (none: an unknown citizen); returns its id. Raises
        IdentityError, creating nothing, if one of them belongs to a contact already."""
        _aware(at)
        try:
            with transaction(self._sessions) as session:
                contact_id: int = _NEW_CONTACT.scalar(session, {"created_at": at})
                for identity in identities:
                    _INSERT_IDENTITY.run(session, _identity_row(contact_id, identity, at))
                return contact_id
        except IntegrityError as exc:
            raise IdentityError("该身份已属于另一联系人 (an identity already belongs to a contact)") from exc

    def add_identity(self, contact_id: int, identity: Identity, at: datetime) -> int:
        """Give contact ``contact_id`` the identity ``identity``; returns the contact that holds it after.

        Unchanged when the contact has it already. When another contact has it, the two are one
        citizen and are merged (:func:`~cc_core.contacts.merge.plan_merge`: the older survives,
        and its id is returned). A contact merged away before stands for the one it went into.
        Raises KeyError for an unknown contact, and MergeConflict (changing nothing) for a second,
        different ID card, or a merge of two contacts with different ID cards.
        """
        _aware(at)
        with transaction(self._sessions) as session:
            contact_id = _live(session, contact_id)
            owner = _contact_of(session, identity)
            if owner == contact_id:
                return contact_id
            if owner is not None:
                return _merge(session, contact_id, owner, at).keep
            if identity.kind == IdentityKind.ID_CARD and any(
                i.kind == IdentityKind.ID_CARD for i in _identities(session, contact_id)
            ):
                raise MergeConflict(
                    f"联系人 {contact_id} 已有另一身份证号 (the contact has a different ID-card number already)"
                )
            _INSERT_IDENTITY.run(session, _identity_row(contact_id, identity, at))
            return contact_id

    def merge(self, a: int, b: int, at: datetime) -> MergePlan:
        """Merge contacts ``a`` and ``b`` into one (see :func:`~cc_core.contacts.merge.plan_merge`)
        in one transaction: identities and interactions move to the survivor, and the other points
        to it. Raises KeyError for an unknown contact and MergeConflict for two people."""
        _aware(at)
        with transaction(self._sessions) as session:
            return _merge(session, _live(session, a), _live(session, b), at)

    # --- interactions ----------------------------------------------------------------------------

    def record_interaction(self, identity: Identity | None, channel: Channel, ref: str, at: datetime) -> int:
        """Record interaction ``(channel, ref)`` (a chat conversation, say) of the contact of
        ``identity``, a new contact if it has none; returns the contact id. A repeat changes nothing.
        Calls are linked by :meth:`CallStore.call_arrived` (:func:`link_call`), not here."""
        _aware(at)
        ref = _ref(ref)
        for attempt in range(2):
            try:
                with transaction(self._sessions) as session:
                    linked = session.scalar(select(_I.contact_id).where(_I.channel == channel.value, _I.ref == ref))
                    if linked is not None:
                        return int(linked)
                    contact_id = None if identity is None else _contact_of(session, identity)
                    if contact_id is None:
                        contact_id = _NEW_CONTACT.scalar(session, {"created_at": at})
                        if identity is not None:
                            _INSERT_IDENTITY.run(session, _identity_row(contact_id, identity, at))
                    _INSERT_INTERACTION.run(
                        session, {"contact_id": contact_id, "channel": channel.value, "ref": ref, "started_at": at}
                    )
                    return int(contact_id)
            except IntegrityError:  # lost a race for the identity or the interaction: it exists now
                if in_batch() or attempt:
                    raise
        raise AssertionError("unreachable")

    def answered(self, channel: Channel, ref: str, agent_id: str, at: datetime) -> None:
        """``agent_id`` took interaction ``(channel, ref)`` (for channels other than voice)."""
        _aware(at)
        if not agent_id or len(agent_id) > _AGENT_LEN:
            raise ValueError(f"agent_id must be 1 to {_AGENT_LEN} characters, got {agent_id!r}")
        with transaction(self._sessions) as session:
            interaction_answered(session, channel, ref, agent_id, at)

    def last_agent(self, contact_id: int, since: datetime) -> str | None:
        """The agent who last served the contact on an interaction of any channel answered at
        or after ``since``, else None ("returning citizen to the same agent", T9): the agent of
        the newest such interaction, the one who had it last. One indexed query."""
        _aware(since)
        with self._sessions() as session:
            return session.scalar(
                select(_I.agent_id)
                .where(_I.contact_id == contact_id, _I.answered_at >= since, _I.agent_id.is_not(None))
                .order_by(_I.started_at.desc(), _I.id.desc())
                .limit(1)
            )

    def last_agent_for(self, identity: Identity | None, since: datetime) -> str | None:
        """:meth:`last_agent` of the contact ``identity`` belongs to, in one query; None for an
        unknown identity or None (a withheld number)."""
        _aware(since)
        if identity is None:
            return None
        with self._sessions() as session:
            return session.scalar(
                select(_I.agent_id)
                .join(_IDENTITIES, _ID.contact_id == _I.contact_id)
                .where(
                    _ID.kind == identity.kind.value,
                    _ID.value == identity.value,
                    _I.answered_at >= since,
                    _I.agent_id.is_not(None),
                )
                .order_by(_I.started_at.desc(), _I.id.desc())
                .limit(1)
            )

    def history(
        self, contact_id: int, *, exclude: tuple[Channel, str] | None = None, limit: int = 10
    ) -> list[InteractionView]:
        """The contact's interactions of every channel, newest first, without ``exclude`` (the
        one going on); a voice interaction carries its call's summary, score, status and queue."""
        if limit < 1:
            return []
        stmt = (
            select(
                _I.channel,
                _I.ref,
                _I.started_at,
                _I.answered_at,
                _I.agent_id,
                Call.summary,
                Call.survey_score,
                Call.status,
                Call.queue,
            )
            .outerjoin(Call, (_I.channel == literal(Channel.VOICE.value)) & (Call.uniqueid == _I.ref))
            .where(_I.contact_id == contact_id)
        )
        if exclude is not None:
            stmt = stmt.where(~((_I.channel == exclude[0].value) & (_I.ref == exclude[1])))
        with self._sessions() as session:
            rows = session.execute(stmt.order_by(_I.started_at.desc(), _I.id.desc()).limit(limit))
            return [InteractionView(*row) for row in rows]

    def history_of_call(self, uniqueid: str, caller_number: str, *, limit: int = 10) -> list[InteractionView]:
        """Earlier interactions of the citizen on call ``uniqueid``, across channels (the agent's
        pop-up, T1): the call's contact, or for a call with no record (a callback's leg) the
        contact of ``caller_number``. Empty for a stranger (a withheld number)."""
        contact = self.contact_of_interaction(Channel.VOICE, uniqueid) if uniqueid else None
        if contact is None:
            identity = phone(caller_number)
            contact = None if identity is None else self.contact_of(identity)
        if contact is None:
            return []
        return self.history(contact, exclude=(Channel.VOICE, uniqueid), limit=limit)


def _identity_row(contact_id: int, identity: Identity, at: datetime) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "kind": identity.kind.value,
        "value": identity.value,
        "display": identity.display,
        "created_at": at,
    }


def _contact_of(session: Session, identity: Identity) -> int | None:
    return session.scalar(select(_ID.contact_id).where(_ID.kind == identity.kind.value, _ID.value == identity.value))


def _identities(session: Session, contact_id: int) -> list[Identity]:
    rows = session.execute(select(_ID.kind, _ID.value, _ID.display).where(_ID.contact_id == contact_id))
    return sorted(Identity(IdentityKind(kind), value, display) for kind, value, display in rows)


def _live(session: Session, contact_id: int) -> int:
    """The contact itself, or the one it was merged into (followed to the end); KeyError if unknown."""
    seen: set[int] = set()
    current = contact_id
    while current not in seen:
        seen.add(current)
        row = session.execute(select(_CONTACTS.c.merged_into_id).where(_CONTACTS.c.id == current)).first()
        if row is None:
            raise KeyError(contact_id)
        if row.merged_into_id is None:
            return current
        current = row.merged_into_id
    raise KeyError(contact_id)  # a cycle: cannot happen through merge()


def _facts(session: Session, contact_id: int) -> ContactFacts:
    created = session.scalar(select(_CONTACTS.c.created_at).where(_CONTACTS.c.id == contact_id))
    if created is None:
        raise KeyError(contact_id)
    return ContactFacts(contact_id, created, frozenset(_identities(session, contact_id)))


def _merge(session: Session, a: int, b: int, at: datetime) -> MergePlan:
    plan = plan_merge(_facts(session, a), _facts(session, b))
    keep, drop = plan.keep, plan.drop
    session.execute(update(_IDENTITIES).where(_ID.contact_id == drop).values(contact_id=keep))
    session.execute(update(_INTERACTIONS).where(_I.contact_id == drop).values(contact_id=keep))
    # Contacts merged into the one going away point to the survivor directly.
    session.execute(update(_CONTACTS).where(_CONTACTS.c.merged_into_id == drop).values(merged_into_id=keep))
    session.execute(update(_CONTACTS).where(_CONTACTS.c.id == drop).values(merged_into_id=keep, merged_at=at))
    return plan
