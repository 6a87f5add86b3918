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

# An 18-character ID-card number (last may be X), then mobile and landline numbers.
_ID_CARD = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[0-9Xx])(?![0-9A-Za-z])")
# The country code may come as 86, +86 or 0086 (international caller IDs), alone or with a separator.
_MOBILE = re.compile(r"(?<!\d)(?:(?:\+|00)?86[- ]?)?(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3}-?)\d{3,4}(\d{4})(?!\d)")
_STANDARD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def mask_personal_data(text: str) -> str:
    """Mask ID-card and phone numbers: ``110105********1234``, ``138****8000``."""
    text = _ID_CARD.sub(lambda m: f"{m.group(1)}********{m.group(2)}", text)
    text = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)
    return _LANDLINE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)


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
