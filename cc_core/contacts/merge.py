"""Merging two contacts that turn out to be one citizen (pure; issue 12 item 4).

Two contacts become one when a later identity links them: a web-chat visitor gives the phone
number they called from last week, or an ID-card number already known from a call. Which one
survives and whether they may be merged at all is decided here, without the database;
:meth:`cc_core.contacts.store.ContactStore.merge` carries the plan out in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cc_core.contacts.identity import Identity, IdentityKind


class MergeConflict(ValueError):
    """Two contacts that must not be merged (the message is Chinese, then English)."""


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """What a merge decision looks at: the contact's id, when it was first seen, its identities."""

    id: int
    created_at: datetime
    identities: frozenset[Identity]


@dataclass(frozen=True, slots=True)
class MergePlan:
    """Keep ``keep``; move ``moved`` (the identities of ``drop``) and every interaction of ``drop``
    to it; ``drop`` remains as a pointer to ``keep`` (``contacts.merged_into_id``)."""

    keep: int
    drop: int
    moved: tuple[Identity, ...]


def plan_merge(a: ContactFacts, b: ContactFacts) -> MergePlan:
    """The plan for merging ``a`` and ``b``, in either order: the same plan both ways.

    The contact first seen survives (the older id on a tie), so a citizen's id stays the one
    their first call got, and links made to it elsewhere keep working. Raises MergeConflict for
    a contact merged with itself, and for two contacts with different ID-card numbers: those are
    two people (a family sharing a phone), and one phone number must not make them one.
    """
    if a.id == b.id:
        raise MergeConflict(f"不能与自身合并：联系人 {a.id} (a contact cannot be merged with itself)")
    cards = {i.value for i in a.identities | b.identities if i.kind == IdentityKind.ID_CARD}
    if len(cards) > 1:
        raise MergeConflict(
            f"联系人 {a.id} 与 {b.id} 的身份证号不同，不能合并 "
            "(the two contacts have different ID-card numbers: they are two people)"
        )
    keep, drop = sorted((a, b), key=lambda c: (c.created_at, c.id))
    return MergePlan(keep=keep.id, drop=drop.id, moved=tuple(sorted(drop.identities)))
