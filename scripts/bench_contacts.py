#!/usr/bin/env python3
"""Benchmark: what linking calls to contacts costs the call path (issue 12 item 4, decision 0016).

Each call is recorded as the controller records it: ``CallStore.call_arrived`` and then
``agent_answered`` on a fresh migrated SQLite database, on one thread, each write its own
transaction (the writer's quietest case, one write per batch). Three paths alternate inside
each round (each goes first in turn):

* ``unlinked``: the contact link replaced by nothing (the call path before contacts);
* ``new``: every call from a number never seen (a new contact, its identity, the interaction);
* ``known``: every call from one of 50 numbers seen before (one ``INSERT … SELECT``).

Printed: the median CPU time per call over the rounds (with min and max), and the median of
the per-round ratios to ``unlinked``. Checked at the end: every linked round left exactly one
interaction per call, and the unlinked ones none.

Usage: .venv/bin/python scripts/bench_contacts.py [--calls N] [--rounds R] [--cpu N | --no-pin]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cc_core.calls.store as call_store
from cc_core.db.session import make_engine, make_sessionmaker, upgrade

T0 = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
KNOWN = 50
PATHS = ("unlinked", "new", "known")


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


def one_round(path: str, calls: int, round_no: int) -> tuple[float, int]:
    """CPU ms per call on ``path``, and the interactions left in the database."""
    real: tuple[Callable[..., None], Callable[..., None]] = (call_store.link_call, call_store.call_answered)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'hotline.db'}"
        upgrade(url)
        engine = make_engine(url)
        try:
            store = call_store.CallStore(make_sessionmaker(engine))
            if path == "unlinked":
                call_store.link_call = _nothing  # type: ignore[assignment]
                call_store.call_answered = _nothing  # type: ignore[assignment]
            if path == "known":
                for i in range(KNOWN):
                    store.call_arrived(f"w.{i}", f"w.{i}", f"1380000{i:04d}", "12333", "PJSIP/c", T0)
            started = time.process_time()
            for i in range(calls):
                number = f"1380000{i % KNOWN:04d}" if path == "known" else f"139{round_no:02d}{i:06d}"
                uid = f"u.{i}"
                store.call_arrived(uid, uid, number, "12333", "PJSIP/carrier-1", T0 + timedelta(seconds=i))
                store.agent_answered(uid, "1001", T0 + timedelta(seconds=i + 5))
            spent = (time.process_time() - started) * 1000 / calls
            with engine.connect() as conn:
                linked = conn.exec_driver_sql("SELECT count(*) FROM interactions WHERE ref LIKE 'u.%'").scalar()
        finally:
            call_store.link_call, call_store.call_answered = real
            engine.dispose()
    return spent, int(linked or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cpu", type=int, default=0, help="the core to pin to (default 0)")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args()
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
        print(f"pinned to CPU {args.cpu}")
    times: dict[str, list[float]] = {p: [] for p in PATHS}
    problems: list[str] = []
    for round_no in range(args.rounds):
        order = PATHS[round_no % 3 :] + PATHS[: round_no % 3]
        for path in order:
            spent, linked = one_round(path, args.calls, round_no)
            times[path].append(spent)
            expected = 0 if path == "unlinked" else args.calls
            if linked != expected:
                problems.append(f"round {round_no} {path}: {linked} interactions, expected {expected}")
    print(f"{args.calls} calls a round, {args.rounds} rounds; CPU ms per call (call_arrived + agent_answered)")
    for path in PATHS:
        values = times[path]
        line = f"  {path:9s} median {statistics.median(values):.3f}  min {min(values):.3f}  max {max(values):.3f}"
        if path != "unlinked":
            ratio = statistics.median(a / b for a, b in zip(values, times["unlinked"], strict=True))
            extra = statistics.median(a - b for a, b in zip(values, times["unlinked"], strict=True))
            line += f"  ratio {ratio:.3f}  +{extra:.3f} ms"
        print(line)
    for problem in problems:
        print("CHECK FAILED:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
