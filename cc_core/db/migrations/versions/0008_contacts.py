"""Contacts: one citizen across channels, with identities and interactions (issue 12 item 4).

Creates ``contacts``, ``contact_identities`` and ``interactions`` (decision 0016) and links every
call already recorded, keeping the calls as they are: one contact per distinct caller number
(numbers normalised as the code of this version does, so ``+8613800138000`` and
``13800138000`` are one citizen), with that number as its phone identity; one contact of its
own per call from a withheld number; one voice interaction per call (its arrival, first answer
and last agent). The normalising is done in Python over the distinct numbers only (a few hundred
thousand at most); the calls themselves are linked by two ``INSERT … SELECT`` statements.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
_BATCH = 5000

# A copy of cc_core.contacts.identity.normalise_phone as of this revision: a migration must do
# the same thing whatever the code becomes later (tests/db/test_migrations.py compares the two).
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_SEPARATORS = re.compile(r"[\s\-().]")


def normalise_phone(raw: str) -> str | None:
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    plus = text.startswith("+")
    digits = text[1:] if plus else text
    if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > 32:
        return None
    national: str | None = None
    if plus:
        if not digits.startswith("86"):
            return "+" + digits
        national = digits[2:]
    elif digits.startswith("0086"):
        national = digits[4:]
    elif digits.startswith("00"):
        return "+" + digits[2:] if len(digits) > 2 else None
    elif digits.startswith("86") and _MOBILE.fullmatch(digits[2:]):
        return digits[2:]
    if national is not None:
        if not national:
            return None
        if _MOBILE.fullmatch(national) or national.startswith("0"):
            return national
        return "0" + national
    if digits.startswith("0") and _MOBILE.fullmatch(digits[1:]):
        return digits[1:]
    return digits


def _create_tables() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.Column("merged_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(["merged_into_id"], ["contacts.id"], name=op.f("fk_contacts_merged_into_id_contacts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    op.create_index(op.f("ix_contacts_merged_into_id"), "contacts", ["merged_into_id"], unique=False)
    op.create_table(
        "contact_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("display", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_contact_identities_contact_id_contacts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_identities")),
        sa.UniqueConstraint("kind", "value", name="uq_contact_identities_kind_value"),
    )
    op.create_index(op.f("ix_contact_identities_contact_id"), "contact_identities", ["contact_id"], unique=False)
    op.create_table(
        "interactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("answered_at", UTC_DATETIME, nullable=True),
        sa.Column("agent_id", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_interactions_contact_id_contacts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interactions")),
        sa.UniqueConstraint("channel", "ref", name="uq_interactions_channel_ref"),
    )
    op.create_index("ix_interactions_contact_id_started_at", "interactions", ["contact_id", "started_at"], unique=False)


def _link_existing_calls() -> None:
    bind = op.get_bind()
    calls = sa.table(
        "calls",
        sa.column("caller_number", sa.String()),
        sa.column("arrived_at", UTC_DATETIME),
    )
    # Each distinct number once, with its first arrival (the contact's created_at).
    firsts: dict[str, tuple[datetime, list[str]]] = {}
    for raw, first in bind.execute(
        sa.select(calls.c.caller_number, sa.func.min(calls.c.arrived_at)).group_by(calls.c.caller_number)
    ):
        number = normalise_phone(raw)
        if number is None:
            continue  # withheld: a contact per call, below
        at, raws = firsts.get(number, (first, []))
        raws.append(raw)
        firsts[number] = (min(at, first), raws)
    contacts, identities, mapping = [], [], []
    for contact_id, (number, (at, raws)) in enumerate(sorted(firsts.items()), start=1):
        contacts.append({"id": contact_id, "created_at": at})
        identities.append(
            {"contact_id": contact_id, "kind": "phone", "value": number, "display": number, "created_at": at}
        )
        mapping.extend({"caller_number": raw, "contact_id": contact_id} for raw in raws)
    base = len(contacts)
    numbers = op.create_table(
        "_contact_numbers_0008",
        sa.Column("caller_number", sa.String(length=32), primary_key=True),
        sa.Column("contact_id", sa.Integer(), nullable=False),
    )
    contacts_t = sa.table("contacts", sa.column("id", sa.Integer()), sa.column("created_at", UTC_DATETIME))
    identities_t = sa.table(
        "contact_identities",
        sa.column("contact_id", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("value", sa.String()),
        sa.column("display", sa.String()),
        sa.column("created_at", UTC_DATETIME),
    )
    for table, rows in ((contacts_t, contacts), (identities_t, identities), (numbers, mapping)):
        for start in range(0, len(rows), _BATCH):
            bind.execute(sa.insert(table), rows[start : start + _BATCH])
    # A number's calls go to its contact; a withheld number's call gets a contact of its own,
    # numbered after the others by the call's id.
    op.execute(
        sa.text(
            "INSERT INTO contacts (id, created_at) SELECT :base + c.id, c.arrived_at FROM calls c "
            "LEFT JOIN _contact_numbers_0008 m ON m.caller_number = c.caller_number WHERE m.contact_id IS NULL"
        ).bindparams(base=base)
    )
    op.execute(
        sa.text(
            "INSERT INTO interactions (contact_id, channel, ref, started_at, answered_at, agent_id) "
            "SELECT COALESCE(m.contact_id, :base + c.id), 'voice', c.uniqueid, c.arrived_at, c.connected_at, "
            "c.agent_id FROM calls c LEFT JOIN _contact_numbers_0008 m ON m.caller_number = c.caller_number"
        ).bindparams(base=base)
    )
    op.drop_table("_contact_numbers_0008")
    if bind.dialect.name == "postgresql":
        # The ids were given here: the sequence continues after them.
        op.execute("SELECT setval(pg_get_serial_sequence('contacts', 'id'), max(id)) FROM contacts HAVING count(*) > 0")


def upgrade() -> None:
    _create_tables()
    _link_existing_calls()


def downgrade() -> None:
    # The calls are untouched by upgrade(); what is lost is only what was linked or added since
    # (identities given on other channels, merges).
    op.drop_index("ix_interactions_contact_id_started_at", table_name="interactions")
    op.drop_table("interactions")
    op.drop_index(op.f("ix_contact_identities_contact_id"), table_name="contact_identities")
    op.drop_table("contact_identities")
    op.drop_index(op.f("ix_contacts_merged_into_id"), table_name="contacts")
    op.drop_table("contacts")
