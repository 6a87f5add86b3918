"""The IVR runtime as a pure state machine: a generator of steps (T6, T8, T11).

:func:`run` walks a flow and *yields* what should happen next (say this, ask for a key, call
this system, record a message, hand the call to a queue…); whoever drives it sends back what
happened (the key pressed, the digits, the system's answer). The FastAGI driver
(:mod:`cc_core.ivr.agi_driver`) carries the steps out on a real call; the simulator
(:mod:`cc_core.ivr.simulate`) prints them; the tests feed them directly. No I/O here.

A call runs on the flows it started with: the driver passes a snapshot of the flow set, so a
reload in the middle of a call never changes what that caller hears.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cc_core.ivr import checks
from cc_core.ivr.flow import (
    Collect,
    Flow,
    Goto,
    Hangup,
    Http,
    Menu,
    Play,
    Prompt,
    Queue,
    Survey,
    TimeSwitch,
    Transfer,
    Voicemail,
)

# A flow with a bug the validator missed must never hold a caller for ever.
MAX_STEPS = 200
SURVEY_KEYS = "12345"
SURVEY_LEVELS = {"1": "非常满意", "2": "满意", "3": "一般", "4": "不满意", "5": "非常不满意"}
SURVEY_PROMPT = Prompt(
    text="请您对本次服务进行评价。非常满意请按1，满意请按2，一般请按3，不满意请按4，非常不满意请按5。",
    name="survey",
)
SAY_FAILED = Prompt(text="抱歉，暂时无法查询，请稍后再试。", name="query_failed")
# The name of prompts made from a business system's answer: rendered per call, kept apart and
# deleted after a while (they hold personal data such as pension amounts).
DYNAMIC = "<answer>"
RECORD_BEEP = Prompt(text="请在提示音后开始留言，留言完毕请按井号键。", name="voicemail")


class CalendarLike(Protocol):
    """What the runtime needs of a calendar (:class:`cc_core.calendars.Calendar`)."""

    def state_at(self, when: datetime) -> str: ...


# ---- steps (runtime → driver) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Visit:
    """The caller reached a node (recorded on the call's path). Answer: None."""

    flow: str
    node: str
    kind: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Say:
    """Play a prompt, or dynamic ``text`` (rendered by TTS). Answer: None."""

    prompt: Prompt


@dataclass(frozen=True, slots=True)
class AskKey:
    """Play a prompt (interruptible), then wait ``timeout`` s for one of ``keys``.
    Answer: the key, or "" on timeout."""

    prompt: Prompt
    timeout: float
    keys: str


@dataclass(frozen=True, slots=True)
class AskDigits:
    """Play a prompt, then collect up to ``max_digits`` keys ended by ``#``.
    Answer: the keys ("" on timeout)."""

    prompt: Prompt
    timeout: float
    max_digits: int


@dataclass(frozen=True, slots=True)
class Fetch:
    """Call a business system's HTTP API. Answer: a dict (the JSON object) or None on any failure."""

    url: str
    method: str
    values: Mapping[str, str]
    timeout: float


@dataclass(frozen=True, slots=True)
class RecordMessage:
    """Play a prompt, beep, record until ``#``, silence or ``max_seconds``.
    Answer: an identifier of the stored message, or None if nothing was recorded."""

    prompt: Prompt
    max_seconds: int


@dataclass(frozen=True, slots=True)
class ToQueue:
    """Final: hand the caller to a queue."""

    queue: str
    skill: str | None
    priority: int
    requested_agent: str | None = None


@dataclass(frozen=True, slots=True)
class ToNumber:
    """Final: connect the caller to an outside number."""

    number: str


@dataclass(frozen=True, slots=True)
class End:
    """Final: say goodbye (optional) and hang up."""

    prompt: Prompt | None


Step = Visit | Say | AskKey | AskDigits | Fetch | RecordMessage | ToQueue | ToNumber | End
FINAL = (ToQueue, ToNumber, End)


@dataclass
class CallContext:
    """What the runtime knows about the call; collected values are added as the call goes."""

    caller_number: str = ""
    dialed_number: str = ""
    values: dict[str, str] = field(default_factory=dict)
    survey: str | None = None


def fill(template: str, answer: Mapping[str, Any]) -> str | None:
    """Fill ``{field}`` placeholders from a JSON answer; None if a field is missing."""

    class _Strict(dict[str, Any]):
        def __missing__(self, key: str) -> Any:
            raise KeyError(key)

    try:
        return template.format_map(_Strict({k: v for k, v in answer.items() if isinstance(k, str)}))
    except (KeyError, ValueError, IndexError, AttributeError):
        return None


def run(
    flows: Mapping[str, Flow],
    flow_name: str,
    context: CallContext,
    calendars: Mapping[str, CalendarLike],
    clock: Callable[[], datetime],
    fallback_queue: str = "general",
) -> Generator[Step, Any, None]:
    """Walk ``flow_name`` for one call, yielding steps until a final one (queue, number, end)."""
    flow = flows[flow_name]
    node_name = flow.start
    menus_above: list[str] = []  # menus that led here, for the "back" key
    for _ in range(MAX_STEPS):
        node = flow.nodes[node_name]
        yield Visit(flow.name, node.name, node.kind)
        match node:
            case Play():
                yield Say(node.prompt)
                node_name = node.next
            case Menu():
                target = yield from _menu(node, menus_above)
                if target is None:
                    node_name = node.on_fail
                elif target == "<back>":
                    node_name = menus_above.pop()
                else:
                    menus_above.append(node.name)
                    node_name = target
            case Collect():
                value = yield from _collect(node)
                if value is None:
                    yield Visit(flow.name, node.name, "collect_failed")
                    node_name = node.on_fail
                else:
                    context.values[node.store] = value
                    node_name = node.next
            case Http():
                answer = yield Fetch(node.url, node.method, _values(node, context), node.timeout)
                text = None if answer is None else (fill(node.say, answer) if node.say else "")
                if text is None:
                    yield Visit(flow.name, node.name, "http_failed")
                    node_name = node.on_error
                else:
                    if text:
                        yield Say(Prompt(text=text, name=DYNAMIC))
                    node_name = node.next
            case TimeSwitch():
                state = calendars[node.calendar].state_at(clock())
                target = {
                    "open": node.open,
                    "closed": node.closed,
                    "holiday": node.holiday or node.closed,
                    "emergency": node.emergency or node.holiday or node.closed,
                }.get(state, node.closed)
                yield Visit(flow.name, node.name, "decided", {"state": state})
                node_name = target
            case Queue():
                requested = context.values.get(node.agent_from) if node.agent_from else None
                yield ToQueue(node.queue, node.skill, node.priority, requested or None)
                return
            case Voicemail():
                yield RecordMessage(node.prompt, node.max_seconds)
                node_name = node.next
            case Survey():
                key = yield from _ask(node.prompt or SURVEY_PROMPT, 6.0, SURVEY_KEYS, retries=2)
                context.survey = key
                yield Visit(
                    flow.name, node.name, "survey_answer", {"score": key, "level": SURVEY_LEVELS.get(key or "")}
                )
                node_name = node.next
            case Transfer():
                yield ToNumber(node.number)
                return
            case Hangup():
                yield End(node.prompt)
                return
            case Goto():
                if node.flow is not None:
                    flow = flows[node.flow]
                    node_name = flow.start
                    menus_above.clear()
                else:
                    node_name = node.target or flow.start
            case _:
                raise AssertionError(f"unknown node kind {type(node).__name__}")
    # Only a flow with a cycle the validator could not see gets here: hand the caller to a human.
    yield Visit(flow.name, node_name, "step_limit")
    yield ToQueue(fallback_queue, None, 0)


def _menu(node: Menu, menus_above: list[str]) -> Generator[Step, Any, str | None]:
    """Ask until a valid choice; return the target, ``"<back>"``, or None after the last try."""
    keys = "".join(node.choices) + (node.repeat or "") + (node.back or "")
    tries = 0
    while tries < node.retries:
        key = yield AskKey(node.prompt, node.timeout, keys)
        if key in node.choices:
            return node.choices[key]
        if node.repeat and key == node.repeat:
            continue  # asking again is not a failed try
        if node.back and key == node.back and menus_above:
            return "<back>"
        tries += 1
        problem = node.no_input if key == "" else node.invalid
        if problem is not None and tries < node.retries:
            yield Say(problem)
    return None


def _collect(node: Collect) -> Generator[Step, Any, str | None]:
    limit = checks.max_keys(node.check, node.max_length)
    for attempt in range(node.retries):
        keyed = yield AskDigits(node.prompt, node.timeout, limit)
        value = checks.check(node.check, keyed or "", node.min_length, node.max_length)
        if value is not None:
            return value
        problem = node.no_input if not keyed else node.invalid
        if problem is not None and attempt + 1 < node.retries:
            yield Say(problem)
    return None


def _ask(prompt: Prompt, timeout: float, keys: str, retries: int) -> Generator[Step, Any, str | None]:
    for _ in range(retries):
        key = yield AskKey(prompt, timeout, keys)
        if key and key in keys:
            return str(key)
    return None


def _values(node: Http, context: CallContext) -> dict[str, str]:
    known = {"caller_number": context.caller_number, "dialed_number": context.dialed_number, **context.values}
    return {param: known.get(source, "") for param, source in node.send.items()}
