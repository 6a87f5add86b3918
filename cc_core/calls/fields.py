"""The call record's field rules, shared by every writer of call-related rows.

Column widths (see :mod:`cc_core.db.models`): PostgreSQL refuses longer text, so values from the
switch are clipped rather than letting one odd caller ID fail the call's record; keys (call and
agent ids) are refused when too long, never clipped (two agents must not become one). The
checks run before a value reaches SQLAlchemy, so a caller gets a plain ValueError naming it.

Public (issue 12 item 6): the callbacks, recordings, voicemail, the ACD's agent store and the
archive all write rows about calls and used to import these as ``calls.store``'s private names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, select

from cc_core.calendars.days import require_aware
from cc_core.db.models import Call, table_of

__all__ = [
    "AGENT_ID_LEN",
    "CALL_ID_BY_UNIQUEID",
    "CAUSE_TEXT_LEN",
    "CHANNEL_LEN",
    "DIGITS_LEN",
    "EXIT_DETAIL_LEN",
    "FLOW_LEN",
    "ID_LEN",
    "KIND_LEN",
    "NUMBER_LEN",
    "QUEUE_LEN",
    "SUMMARY_LEN",
    "agent_key",
    "clean",
    "clip",
    "is_anonymous",
    "key",
    "require_aware",
]

NUMBER_LEN = 32
CHANNEL_LEN = 128
DIGITS_LEN = 64
CAUSE_TEXT_LEN = 64
ID_LEN = 64
FLOW_LEN = 64
EXIT_DETAIL_LEN = 64
QUEUE_LEN = 32
AGENT_ID_LEN = 16
KIND_LEN = 32
SUMMARY_LEN = 4000

# A call's row id by its uniqueid (bind ``uniqueid``): a Core statement built once, so its cache
# key is computed once and the ORM's per-row work is skipped (docs/PERFORMANCE.md).
_CALLS = table_of(Call).c
CALL_ID_BY_UNIQUEID = select(_CALLS.id).where(_CALLS.uniqueid == bindparam("uniqueid"))


def clip(value: str, limit: int) -> str:
    """``value`` without NUL (PostgreSQL text cannot hold one) and at most ``limit`` characters:
    a garbled caller ID must not lose the call record."""
    return value.replace("\x00", "")[:limit]


def clean(value: Any) -> Any:
    """``value`` with NUL removed from every string in it (PostgreSQL's JSONB cannot hold one)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, Mapping):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def key(value: str, name: str) -> str:
    """``value`` if it is a usable id (1 to :data:`ID_LEN` characters); else ValueError naming ``name``."""
    if not value or len(value) > ID_LEN:
        raise ValueError(f"{name} must be 1 to {ID_LEN} characters, got {value!r}")
    return value


def agent_key(value: str, name: str = "agent_id") -> str:
    """``value`` if it is a usable agent id (1 to :data:`AGENT_ID_LEN` characters, no NUL): a key
    is refused when too long, never clipped (two agents must not become one)."""
    if not value or len(value) > AGENT_ID_LEN or "\x00" in value:
        raise ValueError(f"{name} must be 1 to {AGENT_ID_LEN} characters without NUL, got {value!r}")
    return value


def is_anonymous(number: str) -> bool:
    """True for a caller ID nobody can call back or recognise: empty, "anonymous", "<unknown>" …

    Any caller ID without a digit counts: Asterisk and carriers spell "withheld" many ways.
    """
    return not any(ch.isdigit() for ch in number)
