"""The one safe YAML reader: an admin's file into a tree of values that keep their lines.

Admins' YAML files (IVR flows, business calendars; later tickets' SLA rules) are untrusted input
read while calls run, so this reader refuses what could hurt the controller before YAML builds
anything: characters YAML does not allow, anchors and aliases (an alias bomb expands a few
lines into gigabytes), tags (custom tags build objects), a second document, deep nesting. It
reads YAML *events* itself rather than ``yaml.safe_load`` so every value keeps its line and
duplicate keys are seen (PyYAML silently keeps the last one; in a menu that would hide a
duplicate digit). Nothing is ever constructed: scalars stay the text the admin wrote, with the
tag YAML would resolve them to, and each file's reader decides what a value means.

Why one module (issue 12 item 6): the IVR loader and the calendar each had their own reader,
with different refusals (only the loader limited nesting and a second document). One reader
means a refusal added here protects every file type, and the calendars package (which tickets
and chat use too) need not import the IVR. It is neutral: it imports only PyYAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.resolver import Resolver

__all__ = [
    "FLOAT",
    "INT",
    "MAP",
    "MAX_NESTING",
    "NULL",
    "SEQ",
    "STR",
    "Refused",
    "Value",
    "describe",
    "line_breaks",
    "parse",
]

# A valid flow nests 6 levels (nodes → node → menu → choices …); 20 leaves room and stops abuse.
MAX_NESTING = 20

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
NULL = "tag:yaml.org,2002:null"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"
_WHAT = {
    STR: "text",
    INT: "a number",
    FLOAT: "a number",
    NULL: "nothing",
    "tag:yaml.org,2002:bool": "true/false",
    "tag:yaml.org,2002:timestamp": "a date",
}

# libyaml is ~20x faster than the pure-Python parser on a large file; both give the same events.
_YAML_LOADER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = Resolver()

# Characters YAML does not allow in a stream, checked up front so the line is exact (libyaml
# reports a byte offset, not a line). NEL, LS and PS are refused too: YAML counts them as line
# breaks where an admin's editor does not, so every line number after them would be off.
_NOT_PRINTABLE = re.compile("[^\t\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Refused(Exception):
    """The YAML itself is refused at ``line``: nothing after this point can be trusted."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(slots=True)
class Value:
    """One YAML value and its line: a scalar (``tag`` as YAML resolves it, ``text`` as written),
    a mapping (``pairs``, duplicates kept so they can be reported) or a list (``items``)."""

    line: int
    tag: str
    text: str = ""
    pairs: list[tuple[Value, Value]] = field(default_factory=list)
    items: list[Value] = field(default_factory=list)
    key: Value | None = None  # while a mapping is read: the key waiting for its value

    @property
    def is_scalar(self) -> bool:
        return self.tag not in (MAP, SEQ)


def line_breaks(data: bytes) -> bytes:
    """``data`` with every line end as one ``\\n``, as YAML counts lines."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def describe(node: Value) -> str:
    """What a YAML value is, for 'expected X, got Y' messages."""
    if node.tag == MAP:
        return "a mapping"
    if node.tag == SEQ:
        return "a list"
    what = _WHAT.get(node.tag, "a YAML value")
    if node.tag == NULL:
        return what
    return f"{what} '{node.text[:40]}…'" if len(node.text) > 40 else f"{what} '{node.text}'"


def _resolve(value: str, implicit: tuple[bool, bool]) -> str:
    """The tag YAML gives an untagged scalar (int for ``1``, str for ``"1"``, bool for ``on`` …)."""
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, value, implicit)  # type: ignore[no-untyped-call]
    return tag


def parse(text: str) -> Value | None:
    """The value tree of ``text`` (None for an empty document), or :class:`Refused` with a line.

    Windows and old Mac line ends count once. Refuses characters YAML does not allow, aliases,
    anchors, tags, a second document and nesting deeper than :data:`MAX_NESTING`. Iterative, so
    no input can exhaust the recursion limit.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        raise Refused(line, f"character U+{ord(bad.group()):04X} is not allowed in YAML")
    try:
        return _compose(text)
    except Refused as exc:
        # libyaml puts "unexpected end" on the line after a last line without a newline.
        exc.line = min(exc.line, text.count("\n") + 1)
        raise


def _compose(text: str) -> Value | None:
    root: Value | None = None
    stack: list[Value] = []
    documents = 0

    def attach(value: Value) -> None:
        nonlocal root
        if not stack:
            root = value
            return
        top = stack[-1]
        if top.tag == SEQ:
            top.items.append(value)
        elif top.key is None:
            top.key = value
        else:
            top.pairs.append((top.key, value))
            top.key = None

    try:
        for event in yaml.parse(text, Loader=_YAML_LOADER):
            line = event.start_mark.line + 1 if event.start_mark is not None else 1
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise Refused(line, "only one YAML document per file ('---' starts a second one)")
            elif isinstance(event, yaml.AliasEvent):
                raise Refused(line, f"alias '*{event.anchor}': aliases are not allowed (quote '*' for the star key)")
            elif isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
                if event.anchor is not None:
                    raise Refused(line, f"anchor '&{event.anchor}': anchors and aliases are not allowed")
                if event.tag is not None:
                    tag = event.tag.replace("tag:yaml.org,2002:", "!!", 1)  # as the admin wrote it
                    raise Refused(line, f"tag '{tag}' is not allowed: custom tags are refused")
                if isinstance(event, yaml.ScalarEvent):
                    attach(Value(line, _resolve(event.value, event.implicit), text=event.value))
                    continue
                if len(stack) >= MAX_NESTING:
                    raise Refused(line, f"nested more than {MAX_NESTING} levels deep")
                collection = Value(line, MAP if isinstance(event, yaml.MappingStartEvent) else SEQ)
                attach(collection)
                stack.append(collection)
            elif isinstance(event, yaml.CollectionEndEvent):
                stack.pop()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = "; ".join(part for part in (exc.context, exc.problem) if part)
        if "alias" in detail:
            detail += ' (a bare * starts an alias: write the star key as "*")'
        raise Refused(mark.line + 1 if mark else 1, f"YAML syntax: {detail or 'cannot be parsed'}") from None
    except yaml.YAMLError as exc:
        raise Refused(1, f"YAML: {str(exc).splitlines()[0] if str(exc) else 'cannot be parsed'}") from None
    return root
