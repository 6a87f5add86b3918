"""The numbers the controller lets the switch dial (issue 11 item 6): cc_core/switch/numbers.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cc_core.switch.numbers import BadNumber, dialable, is_dialable


@pytest.mark.parametrize("number", ["110", "12333", "13800138000", "01063000000", "+8613800138000", "9" * 20])
def test_ordinary_numbers_are_dialable(number: str) -> None:
    assert dialable(number) == number


@pytest.mark.parametrize(
    "number",
    [
        "",
        "12",
        "9" * 21,
        "139&PJSIP/1001",  # a second destination
        "139,tT",  # Dial options
        "139/evil",
        "139@other-trunk",
        "139\n00",
        "139\r\nAction: Command",
        "139%0A",
        "1+39",  # '+' only first
        "++139",
        " 139 ",
        "１３９００",  # full-width digits
        "١٢٣٤",  # Arabic-Indic digits pass str.isdigit()
        "²³⁴",
        "sipp",
        "anonymous",
    ],
)
def test_anything_else_is_refused(number: str) -> None:
    assert is_dialable(number) is False
    with pytest.raises(BadNumber, match="3 to 20 digits"):
        dialable(number)


@given(st.text(max_size=30))
def test_a_dialable_number_holds_only_ascii_digits_and_a_leading_plus(text: str) -> None:
    if is_dialable(text):
        assert set(text.lstrip("+")) <= set("0123456789") and text.count("+") <= 1
        assert 3 <= len(text.lstrip("+")) <= 20
