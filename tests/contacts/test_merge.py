"""Which of two contacts survives a merge, and when two must not be merged (issue 12 item 4; pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cc_core.contacts.identity import id_card, phone, web_visitor
from cc_core.contacts.merge import ContactFacts, MergeConflict, MergePlan, plan_merge

T0 = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
KEY = b"k" * 32
MOBILE = phone("13800138000")
assert MOBILE is not None


def test_the_contact_first_seen_survives_in_either_order() -> None:
    caller = ContactFacts(7, T0, frozenset({MOBILE}))
    visitor = ContactFacts(3, T0 + timedelta(days=1), frozenset({web_visitor("v-9"), web_visitor("v-1")}))
    plan = MergePlan(keep=7, drop=3, moved=(web_visitor("v-1"), web_visitor("v-9")))
    assert plan_merge(caller, visitor) == plan
    assert plan_merge(visitor, caller) == plan


def test_a_tie_keeps_the_older_id() -> None:
    a = ContactFacts(5, T0, frozenset())
    b = ContactFacts(4, T0, frozenset({MOBILE}))
    assert plan_merge(a, b) == MergePlan(keep=4, drop=5, moved=())
    assert plan_merge(b, a) == MergePlan(keep=4, drop=5, moved=())


def test_two_different_id_cards_are_two_people() -> None:
    one = ContactFacts(1, T0, frozenset({MOBILE, id_card("11010519491231002X", KEY)}))
    other = ContactFacts(2, T0, frozenset({id_card("110101199003070011", KEY)}))
    with pytest.raises(MergeConflict, match=r"^联系人 1 与 2 的身份证号不同"):
        plan_merge(one, other)
    # The same ID card on both is one person.
    same = ContactFacts(2, T0 + timedelta(hours=1), frozenset({id_card("11010519491231002X", KEY)}))
    assert plan_merge(one, same).keep == 1


def test_a_contact_is_not_merged_with_itself() -> None:
    with pytest.raises(MergeConflict, match="不能与自身合并"):
        plan_merge(ContactFacts(1, T0, frozenset()), ContactFacts(1, T0, frozenset()))
