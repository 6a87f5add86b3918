"""Identities are normalised so that one citizen is one key (issue 12 item 4; pure)."""

from __future__ import annotations

import pytest

from cc_core.contacts.identity import (
    Identity,
    IdentityError,
    IdentityKind,
    id_card,
    id_card_hash,
    mask_id_card,
    normalise_id_card,
    normalise_phone,
    parse,
    phone,
    web_visitor,
    wechat,
)

KEY = b"k" * 32
ID = "11010519491231002X"  # a valid number (GB 11643 check character X)


@pytest.mark.parametrize(
    ("raw", "national"),
    [
        ("13800138000", "13800138000"),
        ("+8613800138000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("013800138000", "13800138000"),  # a trunk's long-distance 0 before a mobile
        ("+86 138-0013-8000", "13800138000"),
        ("１３８００１３８０００", "13800138000"),  # full-width digits
        ("01012345678", "01012345678"),  # a landline keeps its area code
        ("+861012345678", "01012345678"),  # … and gets its 0 back from the international form
        ("00861012345678", "01012345678"),
        ("+86 010 1234 5678", "01012345678"),
        ("(010) 1234-5678", "01012345678"),
        ("12345678", "12345678"),  # a local number without area code: as given
        ("86123456", "86123456"),  # 86 is dropped only before a mobile
        ("8612345678901", "8612345678901"),  # 86 + not a mobile (12…): kept
        ("12333", "12333"),
        ("+14155550100", "+14155550100"),
        ("0014155550100", "+14155550100"),
    ],
)
def test_phone_numbers_come_to_one_national_form(raw: str, national: str) -> None:
    assert normalise_phone(raw) == national
    assert phone(raw) == Identity(IdentityKind.PHONE, national, national)


@pytest.mark.parametrize(
    "raw", ["", "anonymous", "<unknown>", "+", "00", "+86", "0086", "sipp", "138abc", "٣٣٣٣", "1" * 33]
)
def test_withheld_or_unusable_numbers_have_no_identity(raw: str) -> None:
    assert normalise_phone(raw) is None
    assert phone(raw) is None
    with pytest.raises(IdentityError, match=r"^电话号码无效"):
        parse("phone", raw)


def test_id_card_is_kept_as_a_keyed_hash_and_a_masked_form() -> None:
    identity = id_card(ID, KEY)
    assert identity.kind is IdentityKind.ID_CARD
    assert identity.display == "110***********002X" == mask_id_card(ID)
    assert len(identity.value) == 64 and set(identity.value) <= set("0123456789abcdef")
    assert ID not in identity.value and "19491231" not in identity.display
    # The same number the way a caller keys it (* for X) or a chat writes it (lower x, full-width, spaces).
    for spelling in ("11010519491231002*", "11010519491231002x", "１１０１０５ １９４９１２３１００２Ｘ"):
        assert id_card(spelling, KEY) == identity
    # Keyed: another installation's key gives another hash; an unkeyed SHA-256 is not it.
    assert id_card(ID, b"o" * 32).value != identity.value
    import hashlib

    assert hashlib.sha256(ID.encode()).hexdigest() != identity.value
    assert id_card_hash(ID, KEY) == identity.value


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("110105194912310021", "校验位"),  # checksum off by one character
        ("11010519491331002X", "出生日期"),  # month 13
        ("11010518991231002X", "出生日期"),  # before 1900
        ("110105194912310", "18位"),  # the old 15-digit form
        ("11010519491231002Y", "18位"),
        ("١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", "18位"),  # Arabic-Indic digits are not folded to ASCII
    ],
)
def test_invalid_id_cards_are_refused_with_the_reason(raw: str, message: str) -> None:
    with pytest.raises(IdentityError, match=message):
        normalise_id_card(raw)
    with pytest.raises(IdentityError, match=message):
        parse("id_card", raw, key=KEY)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        id_card(ID, b"short")
    with pytest.raises(ValueError, match="contact key"):
        parse("id_card", ID)


def test_web_visitor_and_wechat_ids_are_kept_as_given() -> None:
    assert web_visitor("v-1.a:B_2") == Identity(IdentityKind.WEB_VISITOR, "v-1.a:B_2", "v-1.a:B_2")
    assert wechat("wmAbC_1-x") == Identity(IdentityKind.WECHAT, "wmAbC_1-x", "wmAbC_1-x")
    assert wechat("wmAbC") != wechat("wmabc")  # case-sensitive
    assert parse("web_visitor", "v1") == web_visitor("v1") and parse("wechat", "wm1") == wechat("wm1")
    for bad in ("", "a b", "x" * 65, "访客", "a\x00"):
        with pytest.raises(IdentityError, match=r"^网页访客标识无效"):
            web_visitor(bad)
        with pytest.raises(IdentityError, match=r"^企业微信 external_userid 无效"):
            wechat(bad)
    with pytest.raises(IdentityError, match=r"^企业微信"):
        wechat("wm.1")  # a dot is a visitor id's, not an external_userid's


def test_unknown_kind() -> None:
    with pytest.raises(
        IdentityError, match=r"^未知的身份类型.*\(unknown identity kind; one of phone, web_visitor, wechat, id_card\)"
    ):
        parse("email", "a@b")
