"""Structured logs with personal data masked (P2): ID-card and phone numbers, never the rest."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cc_core import logs
from cc_core.logs import JsonFormatter, TextFormatter, mask_personal_data


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # 18-character ID-card numbers, the last character may be X.
        ("身份证110105199001011234", "身份证110105********1234"),
        ("id=11010519900101123X;", "id=110105********123X;"),
        ("11010519900101123x", "110105********123x"),
        ("证件: 440301198512310017 已核验", "证件: 440301********0017 已核验"),
        # Mobiles, with or without the country code.
        ("13800138000", "138****8000"),
        ("来电 19912345678，请回拨", "来电 199****5678，请回拨"),
        ("+8613800138000", "138****8000"),
        ("8613800138000", "138****8000"),
        ("008613800138000", "138****8000"),
        ("+86 13800138000", "138****8000"),
        ("caller=<13800138000>", "caller=<138****8000>"),
        # Landlines, with or without the hyphen; a mobile with the long-distance 0 is caught too.
        ("010-12345678", "010-****5678"),
        ("0571-8888888", "0571-****8888"),
        ("02112345678", "0211****5678"),
        ("013800138000", "0138****8000"),
        # Written with separators: normalised, then masked (issue 11 item 8).
        ("138-0013-8000", "138****8000"),
        ("138 0013 8000", "138****8000"),
        ("+86 138 0013 8000", "138****8000"),
        ("+86-138-0013-8000", "138****8000"),
        ("0086 138 0013 8000", "138****8000"),
        ("来电号码：138-0013-8000。", "来电号码：138****8000。"),
        ("110105 19900101 1234", "110105********1234"),
        ("110105-19900101-123X", "110105********123X"),
        # 15-digit (first-generation) ID-card numbers: the birth date is masked.
        ("身份证110105491231002", "身份证110105******002"),
        ("id 110105 491231 002 ok", "id 110105******002 ok"),
        # Landlines: 8-digit local numbers alone or with the area code, in every usual writing.
        ("010-65123456", "010-****3456"),
        ("010-6512 3456", "010-****3456"),
        ("010 6512 3456", "010 ****3456"),
        ("(010)65123456", "(010)****3456"),
        ("01065123456", "0106****3456"),
        ("+86 10 6512 3456", "+86 10 ****3456"),
        ("+861065123456", "+8610****3456"),
        ("6512 3456", "****3456"),
        ("来电65123456", "来电****3456"),
        ("caller=65123456,", "caller=****3456,"),
        # Several in one line.
        (
            "13800138000 and 13900139000 and 110105199001011234",
            "138****8000 and 139****9000 and 110105********1234",
        ),
    ],
)
def test_masks_id_cards_and_phone_numbers(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "dialed 12333",
        "agent 1001 logged in",
        "PJSIP/1001-00000002",
        "uniqueid=1732861234.15 linkedid=1732861234.150",
        "timestamp 1732861234567",
        "2024-11-29T06:40:34.123Z",
        "20241129064034",
        "rtp 10000-14999 sip 5060 ami 5038",
        "127.0.0.1:4573",
        "digits 12345678",
        "138001380001",  # 12 digits: not a mobile number
        "12800138000",  # 12x is no mobile prefix
        "sha a3f5110105199001011234ef",  # an ID-shaped run inside a hex string
        "emergency 110, 120, 119",
        # Issue 11: what the separator-aware patterns must still leave alone.
        "uniqueid 1733300000.123",
        "uniqueid 1733300000.65123456",
        "linkedid=1733300000.123 uniqueid=1733300000.124",
        "2026-12-04 19:02:54",
        "2026-12-04T19:02:54.123Z",
        "day 20261204",
        "years 2026 2027",
        "years 2024-2026",
        "ports 5060-5080",
        "ports 5060 5061 5062",
        "rtp 10000-14999",
        "duration 12.5 s, took 0.0123 s",
        "talked 3456.78 s",
        "1001 1002 1003 1004",
        "call 42 of 65123",
        "sha256 5f2b6512345678ab",
        "173286123456789",  # 15 digits, but month 34 is no birth date
        "timestamp 1733300000123456",
        "",
    ],
)
def test_leaves_other_numbers_alone(text: str) -> None:
    assert mask_personal_data(text) == text


def test_masking_is_idempotent() -> None:
    once = mask_personal_data("13800138000 010-12345678 110105199001011234")
    assert mask_personal_data(once) == once
    once = mask_personal_data("138-0013-8000, +86 10 6512 3456, 6512 3456, 110105491231002")
    assert once == "138****8000, +86 10 ****3456, ****3456, 110105******002"
    assert mask_personal_data(once) == once


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.logs.json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_formatter_masks_message_and_extra_fields(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    logger.info(
        "call from %s, id %s",
        "13800138000",
        "110105199001011234",
        extra={
            "caller": "+8613900139000",
            "caller_as_int": 13800138000,
            "digits": "110105199001011234",
            "uniqueid": "1732861234.15",
            "uniqueid_as_float": 1732861234.15,
            "queue_position": 3,
            "timed_out": False,
            "nothing": None,
            "caller_name": "张三",
            "recording": Path("/srv/hotline/cc/spool/monitor/13800138000.wav"),
        },
    )
    [line] = lines(stream)
    record = json.loads(line)  # still valid JSON after masking
    assert record["msg"] == "call from 138****8000, id 110105********1234"
    assert record["caller"] == "139****9000"
    assert record["caller_as_int"] == "138****8000"
    assert record["digits"] == "110105********1234"
    assert record["uniqueid"] == "1732861234.15"
    assert record["uniqueid_as_float"] == 1732861234.15
    assert record["queue_position"] == 3
    assert record["timed_out"] is False
    assert record["nothing"] is None
    assert record["caller_name"] == "张三"
    assert record["recording"] == "/srv/hotline/cc/spool/monitor/138****8000.wav"
    assert record["level"] == "INFO" and record["logger"] == "tests.logs.json"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"])
    assert "13800138000" not in line and "13900139000" not in line and "19900101" not in line


def test_json_output_is_utf8_text_not_escapes(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    logger.warning("您好，欢迎致电社保服务热线", extra={"caller_name": "张三"})
    [line] = lines(stream)
    assert "您好，欢迎致电社保服务热线" in line and "张三" in line
    assert "\\u" not in line
    line.encode("utf-8")  # writable as UTF-8


def test_json_exception_is_masked_and_the_record_stays_one_line(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    try:
        raise ValueError("no call record for caller 13800138000\nsecond line")
    except ValueError:
        logger.exception("lookup failed for %s", "010-12345678")
    [line] = lines(stream)  # the traceback's newlines are escaped inside the JSON string
    record = json.loads(line)
    assert record["msg"] == "lookup failed for 010-****5678"
    assert "ValueError: no call record for caller 138****8000" in record["exc"]
    assert "13800138000" not in line


def test_text_formatter_masks_message_and_extras() -> None:
    record = logging.makeLogRecord(
        {"name": "cc", "levelname": "INFO", "levelno": logging.INFO, "msg": "call from %s", "args": ("13800138000",)}
    )
    record.caller = "110105199001011234"
    line = TextFormatter().format(record)
    assert line.endswith("call from 138****8000 caller=110105********1234")
    assert "INFO" in line and " cc: " in line


def test_configure_replaces_root_handlers_and_quiets_panoramisk() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    panoramisk = logging.getLogger("panoramisk")
    saved_panoramisk = panoramisk.level
    try:
        logs.configure("DEBUG", "json")
        logs.configure("WARNING", "text")
        assert len(root.handlers) == 1
        assert isinstance(root.handlers[0].formatter, TextFormatter)
        assert root.level == logging.WARNING
        assert panoramisk.level == logging.CRITICAL
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        panoramisk.setLevel(saved_panoramisk)
