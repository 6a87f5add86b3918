"""Checks of what a caller keys in (T8): digits, ID-card numbers, phone numbers, dates.

Pure functions: each returns the normalised value, or ``None`` when the input is not valid.
On a phone keypad ``*`` stands for the ID card's final ``X``.
"""

from __future__ import annotations

import re
from datetime import date

# GB 11643-1999: weights of the first 17 digits, and the check character by sum mod 11.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# [0-9], not \d, and fullmatch, not ^…$: \d takes any Unicode digit and $ a trailing newline.
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_LANDLINE = re.compile(r"0[0-9]{9,11}")


def _digits(text: str) -> bool:
    """Whether ``text`` is keypad digits: ASCII only, as ``str.isdigit`` also takes "²", "١" and
    full-width "１", which no phone sends (and ``int`` refuses "²")."""
    return text.isascii() and text.isdigit()


def id_card_check_char(first17: str) -> str:
    """The check character of an ID-card number from its first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def check_id_card(keyed: str) -> str | None:
    """An 18-character ID-card number with a valid birth date and checksum (``*`` → ``X``)."""
    value = keyed.replace("*", "X").upper()
    if len(value) != 18 or not _digits(value[:17]) or not (_digits(value[17]) or value[17] == "X"):
        return None
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None
    if born.year < 1900:
        return None
    return value if id_card_check_char(value[:17]) == value[17] else None


def check_phone(keyed: str) -> str | None:
    """A mainland mobile (11 digits, 1[3-9]…) or a landline with its area code (0…)."""
    return keyed if _MOBILE.fullmatch(keyed) or _LANDLINE.fullmatch(keyed) else None


def check_date(keyed: str) -> str | None:
    """A date keyed as YYYYMMDD; returned as ``YYYY-MM-DD``."""
    if len(keyed) != 8 or not _digits(keyed):
        return None
    try:
        return date(int(keyed[:4]), int(keyed[4:6]), int(keyed[6:])).isoformat()
    except ValueError:
        return None


def check_digits(keyed: str, min_length: int = 1, max_length: int = 20) -> str | None:
    """Digits only, with a length between the bounds."""
    return keyed if _digits(keyed) and min_length <= len(keyed) <= max_length else None


def check(kind: str, keyed: str, min_length: int = 1, max_length: int = 20) -> str | None:
    """Dispatch on a collect node's ``check``."""
    if kind == "id_card":
        return check_id_card(keyed)
    if kind == "phone":
        return check_phone(keyed)
    if kind == "date":
        return check_date(keyed)
    return check_digits(keyed, min_length, max_length)


def max_keys(kind: str, max_length: int = 20) -> int:
    """How many keys to collect at most for a check."""
    return {"id_card": 18, "phone": 12, "date": 8}.get(kind, max_length)
