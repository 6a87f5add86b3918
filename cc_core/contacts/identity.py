"""Identities of a citizen, normalised so that one person is one key (pure; issue 12 item 4).

Each channel knows a citizen by something else: the voice channel by the caller's number, the web
chat by a visitor id its page keeps, WeChat by the ``external_userid`` WeCom gives the contact,
and any channel by the ID-card number the citizen keys in or writes. An :class:`Identity` is a
(kind, value) pair that is unique per contact (the table holds each pair once) plus what an agent
may be shown of it.

Phone numbers come in many spellings of one number (``+8613800138000``, ``008613800138000``,
``8613800138000``, ``013800138000`` from a trunk that prefixes long-distance calls): they are cut
to one national form, mobiles without any prefix, landlines with their area code (``010…``).

An ID-card number is personal data (P2): the database keeps only a keyed hash (HMAC-SHA256 with
the installation's ``contact_key`` from ``var/secrets.json``) and a masked form for display,
never the number (decision 0016). The same number and key give the same hash, so a citizen who
gives it again is found; a dump of the database alone does not give it back, as an unkeyed hash
of the at most a few billion possible numbers would.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from cc_core.ivr.checks import id_card_check_char

_MOBILE = re.compile(r"1[3-9][0-9]{9}")
# What callers' numbers may be written with, besides digits and a leading "+".
_SEPARATORS = re.compile(r"[\s\-().]")
_VISITOR = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_WECHAT = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Column widths (cc_core.db.models.ContactIdentity).
VALUE_LEN = 64
DISPLAY_LEN = 32


class IdentityKind(StrEnum):
    """How a channel knows a citizen (``contact_identities.kind``)."""

    PHONE = "phone"
    WEB_VISITOR = "web_visitor"
    WECHAT = "wechat"
    ID_CARD = "id_card"


class Channel(StrEnum):
    """What an interaction came by (``interactions.channel``)."""

    VOICE = "voice"
    WEB = "web"
    WECHAT = "wechat"


class IdentityError(ValueError):
    """An identity that is not valid for its kind (the message is Chinese, then English)."""


@dataclass(frozen=True, order=True, slots=True)
class Identity:
    """One identity: ``value`` is the normalised key (an HMAC for an ID card), ``display`` what
    an agent may be shown (the number for a phone, a masked form for an ID card)."""

    kind: IdentityKind
    value: str
    display: str


def normalise_phone(raw: str) -> str | None:
    """The national form of a caller's number, or None when there is none to go by.

    None for a withheld or unusable caller ID: empty, "anonymous", anything with other characters
    than digits, separators and a leading "+" (strangers must not become one citizen), or longer
    than 32 digits. Otherwise: ``+86``/``0086`` are dropped (and a landline written that way gets
    its trunk prefix 0 back: ``+86 10 1234 5678`` → ``01012345678``); ``86`` is dropped before a
    mobile number only (``86123456`` is a local number); a mobile called with a long-distance ``0``
    loses it; other international numbers keep their ``+`` form; the rest is kept as given
    (landlines with area code, local and service numbers).
    """
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


def phone(raw: str) -> Identity | None:
    """The phone identity of a caller ID, or None for a withheld one (see :func:`normalise_phone`)."""
    number = normalise_phone(raw)
    return None if number is None else Identity(IdentityKind.PHONE, number, number)


def web_visitor(raw: str) -> Identity:
    """A web-chat visitor id (the page's own random id): 1 to 64 of ``A-Z a-z 0-9 . _ : -``, as given."""
    if not _VISITOR.fullmatch(raw):
        raise IdentityError(f"网页访客标识无效：{raw[:80]!r} (a web visitor id is 1 to 64 of A-Z a-z 0-9 . _ : -)")
    return Identity(IdentityKind.WEB_VISITOR, raw, raw[:DISPLAY_LEN])


def wechat(raw: str) -> Identity:
    """A WeCom ``external_userid``: 1 to 64 of ``A-Z a-z 0-9 _ -``, as given (it is case-sensitive)."""
    if not _WECHAT.fullmatch(raw):
        raise IdentityError(
            f"企业微信 external_userid 无效：{raw[:80]!r} (a WeChat external_userid is 1 to 64 of A-Z a-z 0-9 _ -)"
        )
    return Identity(IdentityKind.WECHAT, raw, raw[:DISPLAY_LEN])


def normalise_id_card(raw: str) -> str:
    """An 18-character resident ID-card number, upper-case ``X``, checked (GB 11643-1999).

    Full-width digits and spaces (typed on a phone's Chinese keyboard) are folded first; ``*``
    stands for ``X`` as on the phone keypad. Raises IdentityError for anything else: a wrong
    length, a birth date that does not exist or is before 1900, a wrong check character.
    """
    text = unicodedata.normalize("NFKC", raw).replace(" ", "").replace("*", "X").upper()
    if len(text) != 18 or not text.isascii() or not text[:17].isdigit() or not (text[17].isdigit() or text[17] == "X"):
        raise IdentityError("身份证号须为18位，末位可为X (an ID-card number is 18 characters, the last may be X)")
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        born = None
    if born is None or born.year < 1900:
        raise IdentityError("身份证号中的出生日期无效 (the birth date in the ID-card number is not a real date)")
    if id_card_check_char(text[:17]) != text[17]:
        raise IdentityError("身份证号校验位不符 (the ID-card number's check character is wrong)")
    return text


def mask_id_card(number: str) -> str:
    """What an agent is shown of a (normalised) ID-card number: the first 3 and last 4 characters.

    The last four are what a citizen is asked to confirm; the birth date (characters 7-14) and
    the district (4-6) are hidden.
    """
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def id_card_hash(number: str, key: bytes) -> str:
    """The keyed hash kept instead of a (normalised) ID-card number: HMAC-SHA256, 64 hex digits."""
    if len(key) < 16:
        raise ValueError("the contact key must be at least 16 bytes (var/secrets.json contact_key)")
    return hmac.new(key, b"id_card:" + number.encode("ascii"), hashlib.sha256).hexdigest()


def id_card(raw: str, key: bytes) -> Identity:
    """The identity of an ID-card number: its keyed hash and its masked form, never the number.

    Raises IdentityError for an invalid number (see :func:`normalise_id_card`)."""
    number = normalise_id_card(raw)
    return Identity(IdentityKind.ID_CARD, id_card_hash(number, key), mask_id_card(number))


def parse(kind: str, raw: str, *, key: bytes | None = None) -> Identity:
    """An identity of ``kind`` (one of :class:`IdentityKind`'s values) from what a person gave.

    For input from outside (a chat, an API): raises IdentityError for an unknown kind, a
    withheld or unusable phone number, or an invalid value; an ID card needs ``key``.
    """
    if kind == IdentityKind.PHONE:
        found = phone(raw)
        if found is None:
            raise IdentityError(f"电话号码无效：{raw[:80]!r} (not a usable phone number)")
        return found
    if kind == IdentityKind.WEB_VISITOR:
        return web_visitor(raw)
    if kind == IdentityKind.WECHAT:
        return wechat(raw)
    if kind == IdentityKind.ID_CARD:
        if key is None:
            raise ValueError("an ID-card identity needs the contact key (var/secrets.json contact_key)")
        return id_card(raw, key)
    kinds = ", ".join(k.value for k in IdentityKind)
    raise IdentityError(f"未知的身份类型：{kind[:40]!r} (unknown identity kind; one of {kinds})")
