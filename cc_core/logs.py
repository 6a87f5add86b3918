"""Structured logs (one JSON object a line) with personal data masked (P2).

Every record passes through :func:`mask_personal_data` before it is written, so an ID-card
number or a phone number that reaches a log message by any route is masked.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

# What may stand between the groups of a number as people write it: a hyphen or one space
# (also the no-break and the ideographic space). Separators are allowed only where phone and
# ID numbers are grouped (138-0013-8000, +86 138 0013 8000, 6512 3456, 110105 19900101 1234),
# so ranges and lists of other numbers (rtp 10000-14999, ports 5060 5061) stay as they are.
_S = "[-\u00a0\u3000 ]?"
# Not glued to a longer number: no digit (nor a digit and a dot: the fraction of a uniqueid
# such as 1733300000.123) right before, and no digit (nor a dot and a digit) right after.
_BEFORE = r"(?<!\d)(?<!\d\.)"
_AFTER = r"(?!\d)(?!\.\d)"
# An 18-character ID-card number (last may be X): area, birth date, sequence and check.
_ID_CARD = re.compile(rf"(?<![0-9A-Za-z])(\d{{6}}){_S}\d{{8}}{_S}(\d{{3}}[0-9Xx])(?![0-9A-Za-z])")
# A 15-digit (first-generation) ID-card number: area, birth date YYMMDD, sequence. The birth
# date must be a real month and day, so that other 15-digit numbers are left alone.
_ID_CARD_15 = re.compile(
    rf"(?<![0-9A-Za-z])([1-8]\d{{5}}){_S}\d{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]){_S}(\d{{3}})(?![0-9A-Za-z])"
)
# A mobile number, grouped 3-4-4 or not; the country code may come as 86, +86 or 0086
# (international caller IDs), alone or with a separator.
_MOBILE = re.compile(rf"{_BEFORE}(?:(?:\+|00)?86{_S})?(1[3-9]\d){_S}\d{{4}}{_S}(\d{{4}}){_AFTER}")
# A landline with its area code (010-65123456, 010 6512 3456, (010)65123456, 0571-8888888)…
_LANDLINE = re.compile(rf"{_BEFORE}(\(?0\d{{2,3}}\)?{_S})\d{{3,4}}{_S}(\d{{4}}){_AFTER}")
# …or in international form without the long-distance 0 (+86 10 6512 3456, +861065123456);
# area codes are 10 and 2x (two digits), or three digits.
_LANDLINE_INTL = re.compile(rf"{_BEFORE}((?:\+|00)86{_S}(?:10|2\d|[3-9]\d\d){_S})\d{{3,4}}{_S}(\d{{4}}){_AFTER}")
# An 8-digit local number without its area code (65123456, 6512 3456): Chinese local numbers
# never start with 0, 1 or 9. One starting with 20 is left alone, as it is far more often a
# date (20261204) or a year (2026 2027) than a phone number. A hyphen is not taken as a
# separator here (6512-3456 could as well be a range), and the number must stand alone: no
# other group of digits joined to it by a separator, no letter or dot glued to it (Chinese
# text may be: 来电65123456).
_LOCAL = re.compile(
    r"(?<![0-9A-Za-z_.])(?<!\d[-\u00a0\u3000 ])(?!20)([2-8]\d{3})[\u00a0\u3000 ]?(\d{4})"
    r"(?![0-9A-Za-z_])(?!\.\d)(?![-\u00a0\u3000 ]\d)"
)
_STANDARD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def mask_personal_data(text: str) -> str:
    """Mask ID-card and phone numbers: ``110105********1234``, ``110105******123``,
    ``138****8000``, ``010-****3456``, ``****3456``.

    Numbers are recognised however they are grouped (hyphens or spaces between the groups:
    ``138-0013-8000``, ``+86 138 0013 8000``); an ID card or a mobile is written back without
    its separators. Timestamps, uniqueids (``1733300000.123``), ports, durations and ranges are
    left alone. Masking twice changes nothing.
    """
    text = _ID_CARD.sub(lambda m: f"{m.group(1)}********{m.group(2)}", text)
    text = _ID_CARD_15.sub(lambda m: f"{m.group(1)}******{m.group(2)}", text)
    text = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)
    text = _LANDLINE_INTL.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)
    text = _LANDLINE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)
    return _LOCAL.sub(lambda m: f"****{m.group(2)}", text)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_FIELDS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_personal_data(record.getMessage()),
        }
        # Each value is masked, not the serialised line: masking the JSON text would turn a
        # number field (a caller ID logged as an int) into invalid JSON such as 138****8000.
        for key, value in _extras(record).items():
            payload[key] = _masked_value(value)
        if record.exc_info:
            payload["exc"] = mask_personal_data(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)


def _masked_value(value: object) -> object:
    """A JSON-ready extra field: numbers stay numbers unless they hold personal data."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        text = str(value)
        masked = mask_personal_data(text)
        return value if masked == text else masked
    return mask_personal_data(str(value))


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, masked the same way."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return mask_personal_data(line)


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Send logs to stderr in the chosen format (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # panoramisk logs every lost connection at ERROR with a traceback; our AMI link reports it.
    logging.getLogger("panoramisk").setLevel(logging.CRITICAL)
    # APScheduler logs every run of every job at INFO (the ACD ticks each second): only problems.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
