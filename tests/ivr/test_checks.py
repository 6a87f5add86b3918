"""The checks of what a caller keys in (T8; issue 12: "skipping the ID-card checksum passes all of
tests/ivr" must no longer be true).

The ID-card checksum is compared with an independent computation from GB 11643-1999's
definition (weight of position i counted from the right, 1-based: 2^(i-1) mod 11; check value
(12 − sum mod 11) mod 11, 10 written X), not with the module's own tables; every boundary of
every check (lengths, dates, the first digits of phone numbers) is tested on both sides.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cc_core.ivr.checks import (
    check,
    check_date,
    check_digits,
    check_id_card,
    check_phone,
    id_card_check_char,
    max_keys,
)

VALID = "11010519491231002X"  # the standard's own example


def reference_check_char(first17: str) -> str:
    """GB 11643-1999, from its definition."""
    total = sum(int(digit) * (2 ** (17 - position) % 11) for position, digit in enumerate(first17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def with_check(first17: str) -> str:
    return first17 + reference_check_char(first17)


@given(st.text("0123456789", min_size=17, max_size=17))
def test_the_check_character_follows_the_standard(first17: str) -> None:
    assert id_card_check_char(first17) == reference_check_char(first17)


def test_every_check_character_occurs() -> None:
    # One number for each of the 11 check characters: a wrong table entry fails one of them.
    found = {}
    for n in range(200):
        first17 = f"110105198001{n % 28 + 1:02d}{n:03d}"
        found.setdefault(reference_check_char(first17), first17)
    assert sorted(found) == sorted("0123456789X")
    for char, first17 in found.items():
        assert id_card_check_char(first17) == char
        assert check_id_card(first17 + char) == first17 + char


@pytest.mark.parametrize("length", [16, 18])
def test_the_check_character_needs_exactly_17_digits(length: int) -> None:
    with pytest.raises(ValueError, match="zip"):
        id_card_check_char("1" * length)


def test_a_valid_id_card() -> None:
    assert check_id_card(VALID) == VALID
    assert check_id_card(VALID.replace("X", "*")) == VALID  # * on the keypad stands for X
    assert check_id_card(VALID.lower()) == VALID
    assert check_id_card(with_check("11010519900307123")) == with_check("11010519900307123")


def test_a_wrong_check_character_is_refused() -> None:
    for char in "0123456789X":
        if char != "X":
            assert check_id_card(VALID[:17] + char) is None
    number = with_check("44030119851111467")
    wrong = next(c for c in "0123456789X" if c != number[17])
    assert check_id_card(number[:17] + wrong) is None


@pytest.mark.parametrize(
    "keyed",
    [
        VALID[:17],  # 17 characters
        VALID + "1",  # 19
        "",
        "X" + VALID[1:],  # X only as the last character
        VALID[:10] + "*" + VALID[11:],  # * in the middle is an X in the middle
        VALID[:17] + "#",
        VALID[:17] + "A",
        " " + VALID[:17],
    ],
)
def test_malformed_id_cards_are_refused(keyed: str) -> None:
    assert check_id_card(keyed) is None


@pytest.mark.parametrize(
    ("born", "valid"),
    [
        ("19000101", True),  # the first day accepted
        ("18991231", False),
        ("20000229", True),  # a leap day
        ("19000229", False),  # 1900 was no leap year
        ("19491301", False),  # month 13
        ("19490001", False),  # month 0
        ("19491232", False),  # day 32
        ("19491100", False),  # day 0
        ("00000101", False),  # year 0 does not exist
    ],
)
def test_the_birth_date_must_be_a_real_date_from_1900(born: str, valid: bool) -> None:
    number = with_check("110105" + born + "123")
    assert check_id_card(number) == (number if valid else None)


@pytest.mark.parametrize(
    ("keyed", "valid"),
    [
        ("13800138000", True),
        ("19912345678", True),
        ("13000000000", True),
        ("12800138000", False),  # 1[3-9] only
        ("10800138000", False),
        ("1380013800", False),  # 10 digits
        ("138001380001", False),  # 12 digits
        ("23800138000", False),
        ("0101234567", True),  # a landline: 0 and 9 to 11 more digits
        ("010123456789", True),
        ("01012345678", True),
        ("010123456", False),  # 0 and 8 digits
        ("0101234567890", False),  # 0 and 12 digits
        ("1012345678", False),
        ("", False),
        ("1380013800a", False),
        ("1380013800*", False),
        ("13800138000\n", False),
    ],
)
def test_phone(keyed: str, valid: bool) -> None:
    assert check_phone(keyed) == (keyed if valid else None)


@pytest.mark.parametrize(
    ("keyed", "value"),
    [
        ("20240229", "2024-02-29"),
        ("19491001", "1949-10-01"),
        ("00010101", "0001-01-01"),
        ("20230229", None),
        ("20241301", None),
        ("20240100", None),
        ("2024011", None),
        ("202401011", None),
        ("2024010a", None),
        ("", None),
        ("00000101", None),
    ],
)
def test_date(keyed: str, value: str | None) -> None:
    assert check_date(keyed) == value


def test_digits_defaults_are_one_to_twenty() -> None:
    assert check_digits("0") == "0"
    assert check_digits("1" * 20) == "1" * 20
    assert check_digits("1" * 21) is None
    assert check_digits("") is None
    assert check_digits("12a") is None
    assert check_digits("1*") is None


@pytest.mark.parametrize(("keyed", "valid"), [("123", False), ("1234", True), ("123456", True), ("1234567", False)])
def test_digits_bounds_are_inclusive(keyed: str, valid: bool) -> None:
    assert check_digits(keyed, 4, 6) == (keyed if valid else None)


def test_check_dispatches_on_the_kind() -> None:
    assert check("id_card", VALID.replace("X", "*")) == VALID
    assert check("id_card", "123") is None
    assert check("phone", "13800138000") == "13800138000"
    assert check("phone", "12345") is None
    assert check("date", "20240229") == "2024-02-29"
    assert check("date", "1234") is None
    # Anything else is digits, with the node's bounds.
    assert check("digits", "12345") == "12345"
    assert check("digits", "12", 3, 5) is None
    assert check("digits", "123456", 3, 5) is None
    assert check("digits", "1234", 3, 5) == "1234"
    assert check("digits", "1" * 20) == "1" * 20
    assert check("digits", "1" * 21) is None
    assert check("digits", "") is None
    assert check("unknown", "7") == "7"
    # Bounds never apply to the other kinds.
    assert check("phone", "13800138000", 1, 5) == "13800138000"
    assert check("date", "20240229", 1, 3) == "2024-02-29"
    assert check("id_card", VALID, 1, 3) == VALID


def test_max_keys() -> None:
    assert [max_keys("id_card"), max_keys("phone"), max_keys("date"), max_keys("digits")] == [18, 12, 8, 20]
    assert [max_keys("id_card", 4), max_keys("phone", 4), max_keys("date", 4), max_keys("digits", 4)] == [18, 12, 8, 4]
    assert max_keys("other", 7) == 7


@pytest.mark.parametrize(
    ("kind", "keyed"),
    [
        ("digits", "١٢٣"),  # Arabic-Indic digits: str.isdigit() says yes
        ("digits", "１２３"),  # full-width
        ("digits", "²"),
        ("date", "２０２４０１０１"),
        ("phone", "１３８００１３８０００"),
        ("phone", "13800138000\n"),  # "$" matches before a final newline
        ("phone", "0101234567\n"),
        ("id_card", "１１０１０５１９４９１２３１００２X"),
        ("id_card", "²10105194912310021"),  # int("²") raised ValueError out of the check
    ],
)
def test_only_keypad_digits_pass(kind: str, keyed: str) -> None:
    # Such input can only come from `hotline ivr simulate --digits`, never from the switch's DTMF:
    # it must be refused like any other wrong input, not accepted, stored or crash the walk.
    assert check(kind, keyed) is None
