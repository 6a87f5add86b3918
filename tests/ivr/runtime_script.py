"""Drive the IVR runtime like a caller would, for the runtime's unit tests (issue 12).

:func:`walk` answers each question of :func:`cc_core.ivr.runtime.run` (a key, digits, a business
system's answer, a recording) from a script and returns every step the runtime yielded, so a
test can compare the whole sequence with exact values. It fails if the flow asks more than the
script holds, if answers are left over, or if a step follows a final one: a retry off by one
changes the sequence and fails the test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cc_core.ivr.flow import Flow, Node
from cc_core.ivr.runtime import (
    FINAL,
    AskDigits,
    AskKey,
    CalendarLike,
    CallContext,
    Fetch,
    RecordMessage,
    Step,
    run,
)

QUESTIONS = (AskKey, AskDigits, Fetch, RecordMessage)
NOON = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)  # 12:00 in Beijing, a Monday


def flow(name: str, start: str, *nodes: Node) -> Flow:
    """A validated-looking flow of these nodes (the runtime reads nothing else of a flow)."""
    return Flow(name, name, start, {n.name: n for n in nodes}, {}, Path(f"ivr_flows/{name}.yaml"), "0" * 64)


def walk(
    flows: Mapping[str, Flow] | Flow,
    answers: Sequence[Any] = (),
    *,
    start: str | None = None,
    context: CallContext | None = None,
    calendars: Mapping[str, CalendarLike] | None = None,
    clock: Callable[[], datetime] = lambda: NOON,
    fallback_queue: str = "general",
) -> list[Step]:
    """Every step of one call through ``flows`` (its first flow unless ``start``), answering each
    question with the next of ``answers``."""
    if isinstance(flows, Flow):
        flows = {flows.name: flows}
    name = start or next(iter(flows))
    steps = run(flows, name, context or CallContext(), calendars or {}, clock, fallback_queue)
    pending = list(answers)
    seen: list[Step] = []
    answer: Any = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration:
            break
        assert not (seen and isinstance(seen[-1], FINAL)), f"a step after the final one: {step!r}"
        seen.append(step)
        if isinstance(step, QUESTIONS):
            assert pending, f"the flow asked more than the script holds: {step!r} after {seen[:-1]!r}"
            answer = pending.pop(0)
        else:
            answer = None
    assert pending == [], f"answers left over: {pending!r}; steps: {seen!r}"
    assert seen and isinstance(seen[-1], FINAL), f"the call did not end with a final step: {seen!r}"
    return seen
