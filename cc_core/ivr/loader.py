"""The IVR flow loader: an admin's YAML file, read safely, into a :class:`~cc_core.ivr.flow.Flow` (T6).

A flow file is untrusted input that a reload reads while calls run: the loader refuses files over
256 KB and text that is not UTF-8, then reads the YAML with the product's one safe reader,
:mod:`cc_core.safeyaml` (no anchors, aliases, tags, second documents or deep nesting; every value
keeps its line and duplicate keys are seen).

Then it checks the file's shape — known keys only, the right type for each value, exactly one
kind per node — and builds the model. What the model means (targets, reachability, loops, menu
depth, prompts) is checked by :mod:`cc_core.ivr.validator`; :func:`load_flows` runs both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from cc_core import safeyaml
from cc_core.errors import HotlineError
from cc_core.http_policy import HttpPolicy
from cc_core.ivr.flow import (
    KINDS,
    Collect,
    Flow,
    Goto,
    Hangup,
    Http,
    Menu,
    Node,
    Play,
    Prompt,
    Queue,
    Survey,
    TimeSwitch,
    Transfer,
    Voicemail,
)
from cc_core.ivr.validator import Problem, join_path, suggest, validate
from cc_core.safeyaml import FLOAT, INT, MAP, NULL, SEQ, STR, Value, describe

__all__ = ["MAX_FILE_BYTES", "FlowError", "Problem", "check_file", "load_flow", "load_flows", "parse_flow"]

MAX_FILE_BYTES = 256 * 1024
# A prompt written as a bare ASCII word is a name from ``prompts:``; anything else (Chinese
# text, text with spaces) is said as it is.
_PROMPT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")

_TOP_KEYS = ("flow", "title", "start", "prompts", "nodes")
_NODE_KEYS = (*KINDS, "next")
# Settings that name a phone key: empty is never meant (it is usually an unquoted #).
_KEY_SETTINGS = ("repeat", "back")
_PROMPT_HELP = "a prompt is a name from prompts:, text, {file: name.wav} or {text: …}"


class FlowError(HotlineError):
    """A flow file that cannot be loaded; ``problems`` says every reason, with file and line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def load_flow(path: Path) -> Flow:
    """Read and build the flow in ``path``, or raise :class:`FlowError` listing every problem.

    This checks the file's safety and shape only; run :func:`cc_core.ivr.validator.validate` on
    the result (or use :func:`load_flows`) before putting callers through it.
    """
    try:
        with path.open("rb") as file:
            # One byte more than allowed is enough to know the file is too large.
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise FlowError([Problem(path, 1, "", f"cannot read the file: {exc.strerror or exc}")]) from None
    return parse_flow(data, path)


def parse_flow(data: bytes, source: Path) -> Flow:
    """Build the flow whose file content is ``data`` (``source`` names it in problems), like :func:`load_flow`."""
    problems: list[Problem] = []
    flow = _parse(data, source, problems)
    if flow is None or problems:
        raise FlowError(problems or [Problem(source, 1, "", "the flow could not be read")])
    return flow


def load_flows(folder: Path, *, http: HttpPolicy | None = None) -> tuple[dict[str, Flow], list[Problem]]:
    """Load and validate every ``*.yaml`` directly in ``folder`` (``ivr_flows/``).

    Returns the flows without any problem, by name, and the problems of the others. Prompt
    files are looked up in ``folder/prompts``, calendars in ``folder/calendars/*.yaml``, and a
    ``goto: {flow: x}`` must name a flow file of the folder. ``http``: the hosts ``http`` nodes
    may call (``[ivr] http_allow``; not checked when None).
    """
    if not folder.is_dir():
        return {}, [Problem(folder, 1, "", "the flow folder does not exist")]
    # Dot-files are editor leftovers (.#main.yaml), never flows.
    files = sorted(p for p in folder.glob("*.yaml") if p.is_file() and not p.name.startswith("."))
    problems = [
        Problem(p, 1, "", "flow files end in .yaml; this file is not loaded")
        for p in sorted(folder.glob("*.yml"))
        if p.is_file() and not p.name.startswith(".")
    ]
    calendars = folder / "calendars"
    known_calendars = {p.stem for p in calendars.glob("*.yaml")} if calendars.is_dir() else set()
    known_flows = {p.stem for p in files}
    flows: dict[str, Flow] = {}
    for path in files:
        try:
            flow = load_flow(path)
        except FlowError as exc:
            problems.extend(exc.problems)
            continue
        found = validate(
            flow,
            prompts_dir=folder / "prompts",
            known_flows=known_flows,
            known_calendars=known_calendars,
            http=http,
        )
        if found:
            problems.extend(found)
        else:
            flows[flow.name] = flow
    return flows, problems


def check_file(path: Path, folder: Path, *, http: HttpPolicy | None = None) -> tuple[Flow | None, list[Problem]]:
    """Validate the one flow file ``path`` as if it were published into ``folder``.

    What ``hotline ivr validate some.yaml`` runs: the file is checked with everything a flow of
    ``folder`` is checked against — its prompts, calendars and the other flows a ``goto`` may
    name — wherever the file itself lies (a draft in another folder, or one of ``folder``'s own
    flows). A file of the same name in ``folder`` is left out: the new text takes its place.
    Returns the flow (None if it has problems) and its problems, which name ``path``.
    """
    if path.suffix != ".yaml":
        return None, [Problem(path, 1, "", "flow files end in .yaml; this file would not be loaded")]
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, [Problem(path, 1, "", f"cannot read the file: {exc.strerror or exc}")]
    with tempfile.TemporaryDirectory(prefix="hotline-flow-check-") as scratch:
        root = Path(scratch)
        if folder.is_dir():
            for item in folder.iterdir():
                if item.name in (path.name, f"{path.stem}.yml") or item.name.startswith("."):
                    continue
                (root / item.name).symlink_to(item.resolve())
        copy = root / path.name
        copy.write_bytes(data)
        flows, problems = load_flows(root, http=http)
        mine = [dataclasses.replace(p, file=path) for p in problems if p.file == copy]
    flow = flows.get(path.stem)
    if mine or flow is None:
        return None, mine
    return dataclasses.replace(flow, source=path), []


def _parse(data: bytes, source: Path, problems: list[Problem]) -> Flow | None:
    if len(data) > MAX_FILE_BYTES:
        problems.append(Problem(source, 1, "", f"the file is larger than {MAX_FILE_BYTES // 1024} KB"))
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = safeyaml.line_breaks(data[: exc.start]).count(b"\n") + 1
        byte = data[exc.start]
        problems.append(
            Problem(source, line, "", f"not UTF-8: byte 0x{byte:02x} at offset {exc.start}; save the file as UTF-8")
        )
        return None
    try:
        root = safeyaml.parse(text)
    except safeyaml.Refused as exc:
        problems.append(Problem(source, exc.line, "", exc.message))
        return None
    if root is None:
        problems.append(Problem(source, 1, "", "the file is empty"))
        return None
    builder = _Builder(source)
    flow = builder.flow(root, hashlib.sha256(data).hexdigest())
    problems.extend(builder.problems)
    return flow


def _is_null(node: Value) -> bool:
    return node.tag == NULL


_Entries = dict[str, tuple[Value, Value]]


class _Builder:
    """Checks the shape of one file's node tree and builds the flow, collecting problems."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.lines: dict[str, int] = {}
        self.prompts: dict[str, Prompt] = {}
        self.constructor = SafeConstructor()

    def add(self, node: Value, path: str, message: str) -> None:
        self.problems.append(Problem(self.source, node.line, path, message))

    def add_at(self, path: str, node: Value, message: str) -> None:
        """A problem about ``path`` as a whole: on the line of its key when known."""
        line = self.lines.get(path, node.line)
        self.problems.append(Problem(self.source, line, path, message))

    # --- generic values ---

    def entries(
        self,
        node: Value,
        path: str,
        *,
        allowed: Sequence[str] | None,
        duplicate: str = "duplicate key '{key}' (first on line {first})",
        expected: str = "a mapping",
    ) -> _Entries | None:
        """The keys of a mapping (as written, so ``1:`` is ``"1"``); unknown and duplicate keys are reported."""
        if node.tag != MAP:
            self.add_at(path, node, f"expected {expected}, got {describe(node)}")
            return None
        out: _Entries = {}
        for key_node, value in node.pairs:
            if key_node.tag in (MAP, SEQ):
                self.add(key_node, path, f"a key must be plain text, not {describe(key_node)}")
                continue
            key = key_node.text
            key_path = join_path(path, key)
            if key in out:
                first = out[key][0].line
                self.add(key_node, key_path, duplicate.format(key=key, first=first))
                continue
            if allowed is not None and key not in allowed:
                self.add(key_node, key_path, f"unknown key '{key}'{suggest(key, allowed)}")
                continue
            out[key] = (key_node, value)
            self.lines[key_path] = key_node.line
        return out

    def text(self, node: Value, path: str, *, expected: str = "text") -> str | None:
        if node.tag == STR:
            return node.text
        self.add(node, path, f"expected {expected}, got {describe(node)}")
        return None

    def target(self, node: Value, path: str) -> str | None:
        return self.text(node, path, expected="a node name")

    def key_text(self, node: Value, path: str) -> str | None:
        """Text where YAML may have read a number: ``1`` and ``01063000000`` keep their written form."""
        if node.tag in (STR, INT, FLOAT):
            return node.text
        self.add(node, path, f"expected text, got {describe(node)}")
        return None

    def integer(self, node: Value, path: str) -> int | None:
        if node.tag == INT:
            try:
                return int(self.constructor.construct_yaml_int(yaml.ScalarNode(INT, node.text)))
            except ValueError:  # e.g. more digits than Python converts
                pass
        self.add(node, path, f"expected a whole number, got {describe(node)}")
        return None

    def seconds(self, node: Value, path: str) -> float | None:
        if node.tag in (INT, FLOAT):
            try:
                if node.tag == INT:
                    return float(self.constructor.construct_yaml_int(yaml.ScalarNode(INT, node.text)))
                return float(self.constructor.construct_yaml_float(yaml.ScalarNode(FLOAT, node.text)))
            except (ValueError, OverflowError):
                pass
        self.add(node, path, f"expected a number of seconds, got {describe(node)}")
        return None

    def prompt(self, node: Value, path: str) -> Prompt | None:
        """A node's prompt: a name from ``prompts:`` (resolved, keeping the name), text or a file.

        A bare ASCII word that ``prompts:`` lacks stays an unresolved ``Prompt(name=…)``: the
        validator reports it as a missing prompt (with a did-you-mean)."""
        if node.tag == STR:
            value = node.text
            if value in self.prompts:
                return self.prompts[value]
            if _PROMPT_NAME.fullmatch(value):
                return Prompt(name=value)
            return Prompt(text=value)
        return self.prompt_content(node, path, None)

    def prompt_content(self, node: Value, path: str, name: str | None) -> Prompt | None:
        """Text, ``{file: …}`` or ``{text: …}``; ``name`` is set for the entries of ``prompts:``."""
        if node.tag == STR:
            return Prompt(text=node.text, name=name)
        if node.tag != MAP:
            self.add(node, path, f"expected a prompt, got {describe(node)}; {_PROMPT_HELP}")
            return None
        entries = self.entries(node, path, allowed=("file", "text"))
        if entries is None:
            return None
        if len(entries) != 1:
            self.add_at(path, node, f"give exactly one of file or text; {_PROMPT_HELP}")
            return None
        key, (_, value) = next(iter(entries.items()))
        content = self.text(value, join_path(path, key))
        if content is None:
            return None
        return Prompt(file=content, name=name) if key == "file" else Prompt(text=content, name=name)

    def choices(self, node: Value, path: str) -> dict[str, str] | None:
        entries = self.entries(
            node, path, allowed=None, duplicate="digit '{key}' is used twice in this menu (first on line {first})"
        )
        if entries is None:
            return None
        out: dict[str, str] = {}
        for key, (_, value) in entries.items():
            target = self.target(value, join_path(path, key))
            if target is not None:
                out[key] = target
        return out

    def send(self, node: Value, path: str) -> dict[str, str] | None:
        entries = self.entries(node, path, allowed=None)
        if entries is None:
            return None
        out: dict[str, str] = {}
        for key, (_, value) in entries.items():
            stored = self.text(value, join_path(path, key), expected="the name of a collected value")
            if stored is not None:
                out[key] = stored
        return out

    def fields(self, node: Value, path: str, spec: _Spec, expected: str) -> dict[str, Any]:
        """The keyword arguments of a node class from a mapping, by ``spec``: key → (convert, required)."""
        entries = self.entries(node, path, allowed=tuple(spec), expected=expected)
        if entries is None:
            return {}
        kwargs: dict[str, Any] = {}
        for key, (convert, required) in spec.items():
            key_path = join_path(path, key)
            if key not in entries:
                if required:
                    self.add_at(path, node, f"missing required key '{key}'")
                continue
            value = entries[key][1]
            if _is_null(value):
                # An empty optional value means "not given"; an empty required one is an error.
                if required:
                    self.add(value, key_path, f"'{key}' has no value")
                elif key in _KEY_SETTINGS:
                    # `back: #` reads as empty: the bare # started a comment.
                    self.add(value, key_path, f"'{key}' has no value (a bare # starts a comment: write \"#\")")
                continue
            converted = convert(self, value, key_path)
            if converted is not None:
                kwargs[key] = converted
        return kwargs

    # --- the flow ---

    def flow(self, root: Value, version: str) -> Flow | None:
        entries = self.entries(root, "", allowed=_TOP_KEYS, expected="a mapping with flow, start and nodes")
        if entries is None:
            return None
        for key in ("flow", "start", "nodes"):
            if key not in entries:
                self.add(root, "", f"missing required key '{key}'")
        name = self.top_text(entries, "flow") or ""
        title = self.top_text(entries, "title") or ""
        start = self.top_text(entries, "start", expected="a node name") or ""
        if "prompts" in entries and not _is_null(entries["prompts"][1]):
            self.read_prompts(entries["prompts"][1])
        nodes: dict[str, Node] = {}
        if "nodes" in entries:
            nodes = self.read_nodes(entries["nodes"][1])
        return Flow(
            name=name,
            title=title,
            start=start,
            nodes=nodes,
            prompts=dict(self.prompts),
            source=self.source,
            version=version,
            lines=dict(self.lines),
        )

    def top_text(self, entries: _Entries, key: str, *, expected: str = "text") -> str | None:
        if key not in entries:
            return None
        return self.text(entries[key][1], key, expected=expected)

    def read_prompts(self, node: Value) -> None:
        duplicate = "prompt '{key}' is defined twice (first on line {first})"
        entries = self.entries(node, "prompts", allowed=None, duplicate=duplicate)
        for name, (_, value) in (entries or {}).items():
            prompt = self.prompt_content(value, join_path("prompts", name), name)
            if prompt is not None:
                self.prompts[name] = prompt

    def read_nodes(self, node: Value) -> dict[str, Node]:
        duplicate = "node '{key}' is defined twice (first on line {first})"
        entries = self.entries(node, "nodes", allowed=None, duplicate=duplicate)
        nodes: dict[str, Node] = {}
        for name, (key_node, value) in (entries or {}).items():
            path = join_path("nodes", name)
            if not name:
                self.add(key_node, path, "a node name is empty")
                continue
            built = self.read_node(name, key_node.line, value, path)
            if built is not None:
                nodes[name] = built
        return nodes

    def read_node(self, name: str, line: int, node: Value, path: str) -> Node | None:
        expected = f"a node (a mapping with one of {', '.join(KINDS)})"
        entries = self.entries(node, path, allowed=_NODE_KEYS, expected=expected)
        if entries is None:
            return None
        kinds = [key for key in entries if key in KINDS]
        if not kinds:
            self.add_at(path, node, f"the node has no kind; give one of {', '.join(KINDS)}")
            return None
        if len(kinds) > 1:
            second = entries[kinds[1]][0]
            self.add(second, path, f"a node has exactly one kind, this one has {' and '.join(kinds)}")
            return None
        kind = kinds[0]
        value = entries[kind][1]
        value_path = join_path(path, kind)
        if "next" in entries and kind != "play":
            where = "goes inside" if "next" in _SPECS.get(kind, {}) else "is not allowed for"
            self.add(entries["next"][0], join_path(path, "next"), f"'next' {where} '{kind}:'")
        common: dict[str, Any] = {"name": name, "line": line}
        if kind == "play":
            prompt = self.prompt(value, value_path)
            if "next" not in entries:
                self.add_at(path, node, "missing required key 'next'")
                return None
            following = self.target(entries["next"][1], join_path(path, "next"))
            if prompt is None or following is None:
                return None
            return Play(**common, prompt=prompt, next=following)
        if kind == "hangup":
            if _is_null(value):
                return Hangup(**common)
            goodbye = self.prompt(value, value_path)
            return Hangup(**common, prompt=goodbye) if goodbye is not None else None
        if kind == "goto":
            return self.read_goto(common, value, value_path)
        fields = self.fields(value, value_path, _SPECS[kind], f"a mapping of {kind} settings")
        return _KIND_CLASS[kind](**common, **fields)

    def read_goto(self, common: dict[str, Any], value: Value, path: str) -> Node | None:
        if value.tag == MAP:
            entries = self.entries(value, path, allowed=("flow",))
            if entries is None:
                return None
            if "flow" not in entries:
                self.add_at(path, value, "missing required key 'flow'")
                return None
            other = self.text(entries["flow"][1], join_path(path, "flow"), expected="a flow name")
            return Goto(**common, flow=other) if other is not None else None
        target = self.text(value, path, expected="a node name or {flow: name}")
        return Goto(**common, target=target) if target is not None else None


# Each kind's settings: key (the node class's field) → (converter, required).
_Spec = dict[str, tuple[Callable[[_Builder, Value, str], Any], bool]]
_TEXT = _Builder.text
_TARGET = _Builder.target
_KEY = _Builder.key_text
_INTEGER = _Builder.integer
_SECONDS = _Builder.seconds
_PROMPT = _Builder.prompt
_CHOICES = _Builder.choices
_SEND = _Builder.send

_SPECS: dict[str, _Spec] = {
    "menu": {
        "prompt": (_PROMPT, True),
        "choices": (_CHOICES, True),
        "timeout": (_SECONDS, False),
        "retries": (_INTEGER, False),
        "invalid": (_PROMPT, False),
        "no_input": (_PROMPT, False),
        "repeat": (_KEY, False),
        "back": (_KEY, False),
        "on_fail": (_TARGET, True),
    },
    "collect": {
        "prompt": (_PROMPT, True),
        "check": (_TEXT, False),
        "store": (_TEXT, True),
        "min_length": (_INTEGER, False),
        "max_length": (_INTEGER, False),
        "timeout": (_SECONDS, False),
        "retries": (_INTEGER, False),
        "invalid": (_PROMPT, False),
        "no_input": (_PROMPT, False),
        "next": (_TARGET, True),
        "on_fail": (_TARGET, True),
    },
    "http": {
        "url": (_TEXT, True),
        "method": (_TEXT, False),
        "send": (_SEND, False),
        "timeout": (_SECONDS, False),
        "say": (_TEXT, False),
        "next": (_TARGET, True),
        "on_error": (_TARGET, True),
    },
    "time_switch": {
        "calendar": (_TEXT, True),
        "open": (_TARGET, True),
        "closed": (_TARGET, True),
        "holiday": (_TARGET, False),
        "emergency": (_TARGET, False),
    },
    "queue": {
        "queue": (_TEXT, True),
        "skill": (_TEXT, False),
        "priority": (_INTEGER, False),
        "agent_from": (_TEXT, False),
    },
    "voicemail": {"prompt": (_PROMPT, True), "max_seconds": (_INTEGER, False), "next": (_TARGET, True)},
    "survey": {"prompt": (_PROMPT, False), "next": (_TARGET, True)},
    "transfer": {"number": (_KEY, True)},
}
_KIND_CLASS: dict[str, type[Node]] = {
    "menu": Menu,
    "collect": Collect,
    "http": Http,
    "time_switch": TimeSwitch,
    "queue": Queue,
    "voicemail": Voicemail,
    "survey": Survey,
    "transfer": Transfer,
}
