"""The IVR flow validator: what makes a loaded flow unsafe to put callers through (T6, T8, T11).

The loader (:mod:`cc_core.ivr.loader`) already refused what is wrong with the file's shape
(unsafe YAML, unknown keys, wrong types, duplicate keys, a node without exactly one kind).
This module checks what the model means: targets exist, every node can be reached, no loop
traps a caller, menus are at most five levels deep, prompts exist, values are in range.

:func:`validate` is pure (its only I/O is asking whether a prompt file exists) and never
raises: whatever it finds becomes a :class:`Problem` naming the file, the line and the path.
"""

from __future__ import annotations

import difflib
import math
import re
import string
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from cc_core.http_policy import HttpPolicy
from cc_core.ivr.flow import (
    CHECKS,
    DTMF_KEYS,
    MAX_MENU_LEVELS,
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

# Caps on admin-set numbers: beyond them a caller sits in silence or is stuck retrying.
MAX_WAIT_SECONDS = 60.0
MAX_RETRIES = 10
MAX_DIGITS = 64
MAX_VOICEMAIL_SECONDS = 600
HTTP_METHODS = ("GET", "POST")
URL_SCHEMES = ("http", "https")
# The menu-depth search stops after this many steps; real flows need a few hundred.
MENU_SEARCH_BUDGET = 500_000

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PHONE_NUMBER = re.compile(r"\+?[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a flow file, where it is and what it is."""

    file: Path
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        if self.path:
            return f"{self.file}:{self.line}: {self.path}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"


def join_path(base: str, key: str) -> str:
    """The path of ``key`` inside ``base``; keys that are not plain names are quoted (``choices."1"``)."""
    part = key if _IDENTIFIER.fullmatch(key) else '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{base}.{part}" if base else part


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when one of ``choices`` is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def node_path(node: Node) -> str:
    """The path of a node (``nodes.main_menu``)."""
    return join_path("nodes", node.name)


def kind_path(node: Node) -> str:
    """The path of a node's kind key (``nodes.main_menu.menu``)."""
    return join_path(node_path(node), node.kind)


def validate(
    flow: Flow,
    *,
    prompts_dir: Path | None = None,
    known_flows: AbstractSet[str] | None = None,
    known_calendars: AbstractSet[str] | None = None,
    http: HttpPolicy | None = None,
) -> list[Problem]:
    """Every problem of ``flow``, sorted by line; an empty list means callers can be put through it.

    ``prompts_dir``: where ``{file: …}`` prompts must exist (not checked when None).
    ``known_flows``: flow names a ``goto: {flow: …}`` may name (not checked when None).
    ``known_calendars``: calendar names a ``time_switch`` may use (not checked when None).
    ``http``: the hosts ``http`` nodes may call, ``[ivr] http_allow`` (not checked when None).
    """
    checker = _Checker(flow, prompts_dir, known_flows, known_calendars, http)
    checks: list[Callable[[], None]] = [
        checker.check_header,
        checker.check_nodes,
        checker.check_targets,
        checker.check_reachable,
        checker.check_loops,
        checker.check_menu_levels,
        checker.check_stores,
    ]
    for check in checks:
        try:
            check()
        except Exception as exc:  # the validator must report, never crash the reload
            checker.add("", f"internal error in {check.__name__}: {exc!r}")
    return sorted(set(checker.problems), key=lambda p: (str(p.file), p.line, p.path, p.message))


class _Checker:
    """The checks of one flow; each appends to ``problems``."""

    def __init__(
        self,
        flow: Flow,
        prompts_dir: Path | None,
        known_flows: AbstractSet[str] | None,
        known_calendars: AbstractSet[str] | None,
        http: HttpPolicy | None = None,
    ) -> None:
        self.flow = flow
        self.prompts_dir = prompts_dir
        self.known_flows = known_flows
        self.known_calendars = known_calendars
        self.http = http
        self.problems: list[Problem] = []

    # --- helpers ---

    def line_of(self, path: str) -> int:
        """The line of ``path``, or of its nearest parent the loader recorded; 1 when unknown."""
        lines = self.flow.lines
        probe = path
        while probe:
            if probe in lines:
                return max(1, lines[probe])
            probe = probe.rpartition(".")[0] if "." in probe else ""
        for node in self.flow.nodes.values():
            prefix = node_path(node)
            if (path == prefix or path.startswith(prefix + ".")) and node.line > 0:
                return node.line
        return 1

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.flow.source, self.line_of(path), path, message))

    def exit_paths(self, node: Node) -> list[tuple[str, str]]:
        """(path, target) of each exit of ``node`` to a node of this flow, in file order."""
        base = kind_path(node)
        if isinstance(node, Play):
            return [(join_path(node_path(node), "next"), node.next)]
        if isinstance(node, Menu):
            out = [(join_path(join_path(base, "choices"), key), target) for key, target in node.choices.items()]
            return [*out, (join_path(base, "on_fail"), node.on_fail)]
        if isinstance(node, Goto):
            return [(base, node.target)] if node.target is not None else []
        if isinstance(node, TimeSwitch):
            out = [(join_path(base, "open"), node.open), (join_path(base, "closed"), node.closed)]
            for label, target in (("holiday", node.holiday), ("emergency", node.emergency)):
                if target is not None:
                    out.append((join_path(base, label), target))
            return out
        return [(join_path(base, label), target) for label, target in node.exits()]

    def edges(self) -> dict[str, list[str]]:
        """Each node's exits to existing nodes (a missing target is reported once, by check_targets)."""
        nodes = self.flow.nodes
        return {name: [t for _, t in node.exits() if t in nodes] for name, node in nodes.items()}

    # --- the flow as a whole ---

    def check_header(self) -> None:
        flow = self.flow
        stem = flow.source.stem
        if flow.name != stem:
            self.add("flow", f"flow '{flow.name}' must match the file name '{stem}' ({flow.source.name})")
        if not flow.start:
            self.add("start", "no start node given")
        elif flow.start not in flow.nodes:
            self.add("start", f"start node '{flow.start}' does not exist{suggest(flow.start, flow.nodes.keys())}")
        for name, prompt in flow.prompts.items():
            self.check_prompt(prompt, join_path("prompts", name), definition=True)

    def check_targets(self) -> None:
        nodes = self.flow.nodes
        for node in nodes.values():
            for path, target in self.exit_paths(node):
                if not target:
                    self.add(path, "no target node given")
                elif target not in nodes:
                    self.add(path, f"target '{target}' does not exist{suggest(target, nodes.keys())}")

    def check_reachable(self) -> None:
        flow = self.flow
        if flow.start not in flow.nodes:
            return  # already reported; every node would be "unreachable"
        edges = self.edges()
        seen = {flow.start}
        todo = deque([flow.start])
        while todo:
            for target in edges[todo.popleft()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        for name, node in flow.nodes.items():
            if name not in seen:
                self.add(node_path(node), f"node '{name}' is not reachable from start '{flow.start}'")

    def check_loops(self) -> None:
        """A set of nodes the caller can enter but never leave (no key, timeout or exit leads out)."""
        nodes = self.flow.nodes
        edges = self.edges()
        for component in _strongly_connected(edges):
            members = set(component)
            if len(component) == 1 and component[0] not in edges[component[0]]:
                continue  # a single node without a self-loop is not a loop
            if any(nodes[name].terminal for name in component):
                continue
            # A target missing from the flow counts as a way out: it is reported on its own.
            leaves = any(target not in members for name in component for _, target in nodes[name].exits() if target)
            if leaves:
                continue
            ordered = sorted(component, key=lambda name: (nodes[name].line, name))
            if len(ordered) == 1:
                message = f"loop with no way out: '{ordered[0]}' leads only to itself"
            else:
                message = f"loop with no way out: {', '.join(ordered)} lead only to each other"
            self.add(node_path(nodes[ordered[0]]), message)

    def check_menu_levels(self) -> None:
        """More than MAX_MENU_LEVELS menus in a row on some path from start (T6: up to 5 levels)."""
        flow = self.flow
        if flow.start not in flow.nodes:
            return
        edges = self.edges()
        budget = [MENU_SEARCH_BUDGET]

        def first_menus(sources: list[str]) -> list[str]:
            """The menus reached from ``sources`` through non-menu nodes only (in file order)."""
            found: dict[str, None] = {}
            seen: set[str] = set()
            todo = deque(sources)
            while todo:
                name = todo.popleft()
                budget[0] -= 1
                if name in seen:
                    continue
                seen.add(name)
                if isinstance(flow.nodes[name], Menu):
                    found[name] = None
                else:
                    todo.extend(edges[name])
            return list(found)

        menu_next: dict[str, list[str]] = {}
        reported: set[str] = set()
        path: list[str] = []
        on_path: set[str] = set()
        # An explicit stack (menu, next-menu iterator) instead of recursion: flows may be large.
        stack: list[tuple[str, Iterator[str]]] = []

        def enter(menu: str) -> None:
            path.append(menu)
            on_path.add(menu)
            if len(path) > MAX_MENU_LEVELS:
                if menu not in reported:
                    reported.add(menu)
                    levels = " → ".join(path)
                    self.add(
                        node_path(flow.nodes[menu]),
                        f"more than {MAX_MENU_LEVELS} menu levels: {levels}",
                    )
                stack.append((menu, iter(())))
                return
            if menu not in menu_next:
                menu_next[menu] = first_menus(edges[menu])
            stack.append((menu, iter(menu_next[menu])))

        for root in first_menus([flow.start]):
            enter(root)
            while stack:
                budget[0] -= 1
                if budget[0] < 0:
                    self.add("nodes", "too many paths between menus to check the menu levels; simplify the flow")
                    return
                menu, successors = stack[-1]
                successor = next((s for s in successors if s not in on_path), None)
                if successor is None:
                    stack.pop()
                    path.pop()
                    on_path.discard(menu)
                else:
                    enter(successor)

    def check_stores(self) -> None:
        """Values an http node sends, and the agent a queue node reads, must have been collected by
        some collect node of the flow."""
        stored = {node.store for node in self.flow.nodes.values() if isinstance(node, Collect) and node.store}
        for node in self.flow.nodes.values():
            if isinstance(node, Http):
                send = join_path(kind_path(node), "send")
                for param, value in node.send.items():
                    if value not in stored:
                        self.add(join_path(send, param), f"value '{value}' is never collected{suggest(value, stored)}")
            if isinstance(node, Queue) and node.agent_from and node.agent_from not in stored:
                self.add(
                    join_path(kind_path(node), "agent_from"),
                    f"value '{node.agent_from}' is never collected{suggest(node.agent_from, stored)}",
                )

    # --- one node at a time ---

    def check_nodes(self) -> None:
        for node in self.flow.nodes.values():
            if not node.name:
                self.add("nodes", "a node has an empty name")
            base = kind_path(node)
            if isinstance(node, Play):
                self.check_prompt(node.prompt, base)
            elif isinstance(node, Menu):
                self.check_menu(node, base)
            elif isinstance(node, Collect):
                self.check_collect(node, base)
            elif isinstance(node, Http):
                self.check_http(node, base)
            elif isinstance(node, TimeSwitch):
                self.check_time_switch(node, base)
            elif isinstance(node, Queue):
                if not node.queue:
                    self.add(join_path(base, "queue"), "no queue name given")
                if node.priority < 0:
                    self.add(join_path(base, "priority"), f"priority must be 0 or more, not {node.priority}")
            elif isinstance(node, Voicemail):
                self.check_prompt(node.prompt, join_path(base, "prompt"))
                if not 1 <= node.max_seconds <= MAX_VOICEMAIL_SECONDS:
                    self.add(
                        join_path(base, "max_seconds"),
                        f"max_seconds must be between 1 and {MAX_VOICEMAIL_SECONDS}, not {node.max_seconds}",
                    )
            elif isinstance(node, Survey):
                if node.prompt is not None:
                    self.check_prompt(node.prompt, join_path(base, "prompt"))
            elif isinstance(node, Transfer):
                if not _PHONE_NUMBER.fullmatch(node.number):
                    self.add(join_path(base, "number"), f"number '{node.number}' is not a phone number (digits only)")
            elif isinstance(node, Hangup):
                if node.prompt is not None:
                    self.check_prompt(node.prompt, base)
            elif isinstance(node, Goto):
                self.check_goto(node, base)

    def check_prompt(self, prompt: Prompt, path: str, *, definition: bool = False) -> None:
        if not definition and prompt.name is not None and prompt.name in self.flow.prompts:
            return  # a named prompt is checked once, where prompts: defines it
        if prompt.text is None and prompt.file is None:
            if prompt.name is not None:
                names = self.flow.prompts.keys()
                self.add(path, f"prompt '{prompt.name}' is not defined in prompts:{suggest(prompt.name, names)}")
            else:
                self.add(path, "no prompt given")
            return
        if prompt.text is not None and not prompt.text.strip():
            self.add(path, "prompt text is empty")
        if prompt.file is not None:
            self.check_prompt_file(prompt.file, path)

    def check_prompt_file(self, file: str, path: str) -> None:
        parts = PurePosixPath(file).parts
        if not file.strip() or "\\" in file or "\x00" in file or file.startswith("/") or ".." in parts:
            self.add(path, f"prompt file '{file}' must be a file name inside the prompts folder")
            return
        if self.prompts_dir is None:
            return
        try:
            present = (self.prompts_dir / file).is_file()
        except (OSError, ValueError):
            present = False
        if not present:
            self.add(path, f"prompt file '{file}' is not in {self.prompts_dir}")

    def check_wait(self, seconds: float, path: str) -> None:
        if not (math.isfinite(seconds) and 0 < seconds <= MAX_WAIT_SECONDS):
            self.add(path, f"timeout must be more than 0 and at most {MAX_WAIT_SECONDS:g} seconds, not {seconds:g}")

    def check_retries(self, retries: int, path: str) -> None:
        if not 1 <= retries <= MAX_RETRIES:
            self.add(path, f"retries must be between 1 and {MAX_RETRIES}, not {retries}")

    def check_menu(self, node: Menu, base: str) -> None:
        self.check_prompt(node.prompt, join_path(base, "prompt"))
        choices = join_path(base, "choices")
        if not node.choices:
            self.add(choices, "a menu needs at least one choice")
        for key in node.choices:
            if key not in DTMF_KEYS:
                self.add(join_path(choices, key), f"choice '{key}' is not one phone key (0-9, *, #)")
        for label, special in (("repeat", node.repeat), ("back", node.back)):
            if special is None:
                continue
            path = join_path(base, label)
            if special not in DTMF_KEYS:
                self.add(path, f"{label} key '{special}' is not one phone key (0-9, *, #)")
            elif special in node.choices:
                self.add(path, f"{label} key '{special}' is also a choice of this menu")
        if node.repeat is not None and node.repeat == node.back:
            self.add(join_path(base, "back"), f"back key '{node.back}' is also the repeat key")
        self.check_wait(node.timeout, join_path(base, "timeout"))
        self.check_retries(node.retries, join_path(base, "retries"))
        for label, prompt in (("invalid", node.invalid), ("no_input", node.no_input)):
            if prompt is not None:
                self.check_prompt(prompt, join_path(base, label))

    def check_collect(self, node: Collect, base: str) -> None:
        self.check_prompt(node.prompt, join_path(base, "prompt"))
        if node.check not in CHECKS:
            self.add(
                join_path(base, "check"),
                f"check '{node.check}' is not one of {', '.join(CHECKS)}{suggest(node.check, CHECKS)}",
            )
        if not _IDENTIFIER.fullmatch(node.store):
            self.add(join_path(base, "store"), f"store '{node.store}' must be a name (letters, digits, _)")
        if not 1 <= node.min_length <= MAX_DIGITS:
            self.add(join_path(base, "min_length"), f"min_length must be between 1 and {MAX_DIGITS}")
        if not node.min_length <= node.max_length <= MAX_DIGITS:
            self.add(join_path(base, "max_length"), f"max_length must be between min_length and {MAX_DIGITS}")
        self.check_wait(node.timeout, join_path(base, "timeout"))
        self.check_retries(node.retries, join_path(base, "retries"))
        for label, prompt in (("invalid", node.invalid), ("no_input", node.no_input)):
            if prompt is not None:
                self.check_prompt(prompt, join_path(base, label))

    def check_http(self, node: Http, base: str) -> None:
        url = join_path(base, "url")
        try:
            parts = urlsplit(node.url)
            scheme, host = parts.scheme, parts.hostname
        except ValueError:
            scheme, host = "", None
        if scheme not in URL_SCHEMES:
            self.add(url, f"url must start with http:// or https://, not '{node.url[:60]}'")
        elif not host:
            self.add(url, f"url '{node.url[:60]}' has no host")
        elif self.http is not None:
            # The same rule the driver applies before each request (issue 11 item 8).
            refused = self.http.refusal(node.url)
            if refused is not None:
                self.add(url, refused)
        if node.method not in HTTP_METHODS:
            self.add(join_path(base, "method"), f"method must be GET or POST, not '{node.method}'")
        for param in node.send:
            if not param:
                self.add(join_path(base, "send"), "a parameter name is empty")
        self.check_wait(node.timeout, join_path(base, "timeout"))
        if node.say is not None:
            say = join_path(base, "say")
            if not node.say.strip():
                self.add(say, "say is empty")
            else:
                try:
                    fields = [name for _, name, _, _ in string.Formatter().parse(node.say) if name is not None]
                except ValueError as exc:
                    self.add(say, f"say has a broken {{field}}: {exc}")
                else:
                    for name in fields:
                        if not _IDENTIFIER.fullmatch(name):
                            self.add(say, f"say field '{{{name}}}' must be a name from the answer")

    def check_time_switch(self, node: TimeSwitch, base: str) -> None:
        calendar = join_path(base, "calendar")
        if not node.calendar:
            self.add(calendar, "no calendar given")
        elif self.known_calendars is not None and node.calendar not in self.known_calendars:
            hint = suggest(node.calendar, self.known_calendars)
            self.add(calendar, f"calendar '{node.calendar}' does not exist (calendars/{node.calendar}.yaml){hint}")

    def check_goto(self, node: Goto, base: str) -> None:
        if node.target is None and node.flow is None:
            self.add(base, "goto needs a node name or {flow: name}")
        if node.flow is not None:
            path = join_path(base, "flow")
            if not node.flow:
                self.add(path, "no flow name given")
            elif self.known_flows is not None and node.flow not in self.known_flows:
                self.add(path, f"flow '{node.flow}' does not exist{suggest(node.flow, self.known_flows)}")


def _strongly_connected(edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (a long goto chain must not hit the
    recursion limit). Every node in ``edges`` values is a key of ``edges``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            name, position = work.pop()
            if position == 0:
                index[name] = low[name] = counter
                counter += 1
                stack.append(name)
                on_stack.add(name)
            targets = edges[name]
            if position < len(targets):
                work.append((name, position + 1))
                target = targets[position]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[name] = min(low[name], index[target])
                continue
            if low[name] == index[name]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == name:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[name])
    return components
