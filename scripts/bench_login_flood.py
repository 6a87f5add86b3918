#!/usr/bin/env python3
"""Login flood benchmark: real calls through the IVR, with and without a flood of wrong logins on
``/api/login`` (issue 11 item 1; P1: a login flood must not slow the IVR).

It starts the contact center and its outside world the way ``scripts/bench_load.py`` does (an
Asterisk instance, the controller process, a second Asterisk playing the carrier and the agents'
phones) and runs ``--rounds`` pairs of runs of ``--calls`` calls each through IVR → queue → agent
→ survey: one run quiet, one while a separate process floods ``/api/login`` (the order swaps
every round). The flood sends ``--flood-rate`` wrong logins a second, at most
``--flood-concurrency`` at once, each for a made-up user name (so each costs a full argon2 check
unless refused first), from ``--flood-addresses`` client addresses (127.1.x.y: all of 127/8 is
local; one address is a single attacker, many are a botnet, which the per-address limit alone
does not stop). The flood process runs at nice 19: a real attacker's CPU is not the server's.

IVR step latency, per call, from the contact center's AMI events as they arrive here (bench_load's
milestones): answer → first prompt, menu key (DTMFEnd) → next prompt, survey key → thanks
prompt. The report gives p50/p95/p99/max of all those steps over every completed call of each
condition side by side, their ratio (target: flood p99 at most 1.10 × quiet p99; also per round),
the calls that failed, the flood's answers by status (401 = a password was checked, 429 limit,
503 cap; "skipped": due while all its connections waited) and the controller's CPU. The run
checks itself (bench_load's checks of every call; the flood got answers) and exits 1 if not.

Needs root (the switch runs in a chroot) and the switch built by scripts/setup.sh. Runs against
any checkout that has scripts/bench_load.py (e.g. the old code in a ``git archive`` copy).

Usage: .venv/bin/python scripts/bench_login_flood.py [--calls 20] [--rounds 2] [--flood-rate 100]
       [--flood-concurrency 50] [--flood-addresses 1000] [--rate 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_load
from benchmachine import machine

STEPS = (("answered", "prompt1"), ("dtmf1", "prompt2"), ("dtmf2", "thanks"))
TARGET_RATIO = 1.10
FLOOD_PASSWORD = "wrong-Password-2026"


# ---- the flood (its own process, so its work does not delay this script's event stamps) ---------


def flood_address(i: int, count: int) -> str:
    """The ``i``-th client address of a flood from ``count`` addresses (127.1.0.1 …)."""
    if count <= 1:
        return "127.0.0.1"
    n = i % count
    return f"127.1.{n // 250}.{n % 250 + 1}"


async def one_login(port: int, source: str, name: str, timeout: float) -> int:
    """One wrong login over a fresh connection from ``source``; the HTTP status (0: no answer)."""
    body = json.dumps({"username": name, "password": FLOOD_PASSWORD}).encode()
    head = (
        "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), timeout
        )
        writer.write(head + body)
        line = await asyncio.wait_for(reader.readline(), timeout)
        await asyncio.wait_for(reader.read(), timeout)
        return int(line.split()[1])
    except (OSError, TimeoutError, ValueError, IndexError):
        return 0
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def flood(port: int, rate: float, concurrency: int, addresses: int, stop: asyncio.Event) -> dict[str, Any]:
    """Send wrong logins at ``rate`` per second until ``stop``; an attempt due while
    ``concurrency`` are in flight is skipped (counted), so the offered rate stays bounded."""
    counts: Counter[str] = Counter()
    in_flight: set[asyncio.Task[None]] = set()
    latencies: list[float] = []

    async def attempt(i: int) -> None:
        started = time.monotonic()
        status = await one_login(port, flood_address(i, addresses), f"flood{i}", 30.0)
        counts[str(status)] += 1
        latencies.append(time.monotonic() - started)

    t0 = time.monotonic()
    for i in itertools.count():
        due = t0 + i / rate
        if stop.is_set():
            break
        delay = due - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                break
        if len(in_flight) >= concurrency:
            counts["skipped"] += 1
            continue
        task = asyncio.create_task(attempt(i))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight, timeout=35)
    latencies.sort()
    wall = time.monotonic() - t0
    sent = sum(v for k, v in counts.items() if k != "skipped")
    return {
        "seconds": round(wall, 1),
        "sent": sent,
        "sent_per_s": round(sent / wall, 1) if wall else None,
        "by_status": dict(sorted(counts.items())),
        "answer_p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "answer_max_ms": round(1000 * latencies[-1], 1) if latencies else None,
    }


def flood_main(args: argparse.Namespace) -> int:
    """The flood process: runs until SIGTERM, then prints its counts as one JSON line. It runs
    at the lowest CPU priority: an attacker's own CPU is elsewhere, here it shares the cores with
    what is measured (the network work of its connections still counts on the server)."""
    os.nice(19)

    async def run() -> dict[str, Any]:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        return await flood(args.flood_port, args.flood_rate, args.flood_concurrency, args.flood_addresses, stop)

    print(json.dumps(asyncio.run(run())), flush=True)
    return 0


# ---- the calls ------------------------------------------------------------------------------------


class FloodBench(bench_load.Bench):
    """bench_load's Bench, keeping every call of the last run (their event times)."""

    def __init__(self, args: argparse.Namespace, plan: bench_load.Plan) -> None:
        super().__init__(args, plan)
        self.last_calls: list[bench_load.Call] = []

    async def place(self, call: bench_load.Call) -> None:
        await super().place(call)
        self.last_calls.append(call)


def step_times(calls: list[bench_load.Call]) -> list[float]:
    """Every IVR step latency (seconds) of the completed calls."""
    return [c.t[b] - c.t[a] for c in calls if not c.failed for a, b in STEPS if a in c.t and b in c.t]


def spread_ms(values: list[float]) -> dict[str, float | None]:
    def pct(p: float) -> float | None:
        value = bench_load.percentile(values, p)
        return None if value is None else round(1000 * value, 1)

    return {"n": len(values), "p50": pct(50), "p95": pct(95), "p99": pct(99), "max": pct(100)}


async def start_flood(args: argparse.Namespace, port: int) -> asyncio.subprocess.Process:
    command = [
        sys.executable,
        __file__,
        "--flood-worker",
        "--flood-port",
        str(port),
        "--flood-rate",
        str(args.flood_rate),
        "--flood-concurrency",
        str(args.flood_concurrency),
        "--flood-addresses",
        str(args.flood_addresses),
    ]
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    await asyncio.sleep(2.0)  # the flood is under way (and the first hashes too) before calls start
    return proc


async def stop_flood(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    lines = out.decode().strip().splitlines()
    return json.loads(lines[-1]) if lines else {"error": f"flood process exited {proc.returncode}"}


async def amain(args: argparse.Namespace, argv: list[str]) -> int:
    load_args = bench_load.build_parser().parse_args(
        ["--calls", str(args.calls), "--mode", "controller", "--rate", str(args.rate), "--audio", args.audio]
    )
    plan = bench_load.make_plan(load_args)
    bench = FloodBench(load_args, plan)
    conditions: dict[str, list[bench_load.Call]] = {"quiet": [], "flood": []}
    floods: list[dict[str, Any]] = []
    cpu: dict[str, list[float]] = {"quiet": [], "flood": []}
    runs: list[dict[str, Any]] = []
    per_round: dict[int, dict[str, list[float]]] = {}
    problems: list[str] = []
    try:
        await bench.start()
        assert bench.hotline is not None
        port = bench.hotline.settings.controller.web_port
        for round_no in range(args.rounds):
            order = ("quiet", "flood") if round_no % 2 == 0 else ("flood", "quiet")
            for condition in order:
                bench.last_calls = []
                proc = None
                if condition == "flood":
                    await bench.controller_up()
                    proc = await start_flood(args, port)
                try:
                    run = await bench.run("controller", round_no)
                finally:
                    if proc is not None:
                        floods.append(await stop_flood(proc))
                conditions[condition].extend(bench.last_calls)
                per_round.setdefault(round_no, {})[condition] = step_times(bench.last_calls)
                problems.extend(run["problems"])
                if condition == "flood" and not any(
                    k in floods[-1].get("by_status", {}) for k in ("401", "429", "503")
                ):
                    problems.append(f"round {round_no + 1}: the flood got no answer from /api/login: {floods[-1]}")
                controller_cpu = run["cpu"].get("controller") or {}
                if controller_cpu.get("cpu_s") is not None:
                    cpu[condition].append(controller_cpu["cpu_s"] * 1000 / max(1, run["calls"]))
                runs.append(
                    {
                        "condition": condition,
                        "round": round_no,
                        "completed": run["completed"],
                        "failed": run["failed"],
                        "failure_reasons": run["failure_reasons"],
                        "fallbacks": run["fallbacks"],
                        "problems": run["problems"][:5],
                    }
                )
                print(
                    f"round {round_no + 1} {condition}: {run['completed']}/{run['calls']} completed, "
                    f"steps {spread_ms(step_times(bench.last_calls))}"
                    + (f", flood {floods[-1].get('by_status')}" if condition == "flood" else ""),
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        await bench.close()
    quiet, flooded = spread_ms(step_times(conditions["quiet"])), spread_ms(step_times(conditions["flood"]))
    ratio = round(flooded["p99"] / quiet["p99"], 3) if quiet["p99"] and flooded["p99"] else None
    round_ratios = []
    for steps in per_round.values():
        q, f = (bench_load.percentile(steps.get(k, []), 99) for k in ("quiet", "flood"))
        round_ratios.append(round(f / q, 3) if q and f else None)
    total: Counter[str] = Counter()
    for f in floods:
        total.update(f.get("by_status", {}))
    report = {
        "machine": machine(
            None,
            note="not pinned: two Asterisk instances, the controller, this script and the "
            "flood process share the cores",
        ),
        "command": " ".join(["scripts/bench_login_flood.py", *argv]),
        "calls_per_run": args.calls,
        "rounds": args.rounds,
        "flood": {
            "rate_per_s": args.flood_rate,
            "concurrency": args.flood_concurrency,
            "addresses": args.flood_addresses,
            "runs": floods,
            "by_status_total": dict(sorted(total.items())),
        },
        "ivr_step_ms": {"quiet": quiet, "flood": flooded},
        "p99_ratio_flood_over_quiet": ratio,
        "p99_ratio_per_round": round_ratios,
        "target": {"ratio_at_most": TARGET_RATIO, "met": ratio is not None and ratio <= TARGET_RATIO},
        "failed_calls": {k: sum(1 for c in v if c.failed) for k, v in conditions.items()},
        "fallbacks": {k: sum(c.fallback for c in v) for k, v in conditions.items()},
        "controller_cpu_ms_per_call": {k: round(sum(v) / len(v), 1) if v else None for k, v in cpu.items()},
        "runs": runs,
        "validation": {"ok": not problems, "problems": problems[:20]},
    }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_report(report)
    return 0 if not problems else 1


def print_report(rep: dict[str, Any]) -> None:
    m = rep["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['python']}, {m['date_utc']}, load {m['load_avg']}")
    print(f"command: {rep['command']}")
    fl = rep["flood"]
    print(
        f"flood: {fl['rate_per_s']}/s offered, at most {fl['concurrency']} at once, from {fl['addresses']} "
        f"address(es); answers {fl['by_status_total']} (401 = password checked, 429 limit, 503 cap, 0 none)"
    )
    print(f"{'IVR step latency (ms)':<24}{'n':>6}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}")
    for name in ("quiet", "flood"):
        s = rep["ivr_step_ms"][name]
        print(f"{name:<24}{s['n']:>6}{s['p50']!s:>9}{s['p95']!s:>9}{s['p99']!s:>9}{s['max']!s:>9}")
    print(
        f"p99 flood / quiet: {rep['p99_ratio_flood_over_quiet']} (per round {rep['p99_ratio_per_round']}; "
        f"target <= {rep['target']['ratio_at_most']}: "
        f"{'met' if rep['target']['met'] else 'NOT met'}); failed calls {rep['failed_calls']}, "
        f"fallbacks {rep['fallbacks']}; controller CPU ms/call {rep['controller_cpu_ms_per_call']}"
    )
    if not rep["validation"]["ok"]:
        print("CHECK FAILED:", *rep["validation"]["problems"], sep="\n  ")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=20, help="calls per run (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs, quiet and flooded (default 2)")
    parser.add_argument("--rate", type=float, default=5.0, help="calls placed per second (default 5)")
    parser.add_argument("--audio", choices=("music", "silence"), default="music")
    parser.add_argument("--flood-rate", type=float, default=100.0, help="wrong logins offered per second")
    parser.add_argument("--flood-concurrency", type=int, default=50, help="at most this many in flight")
    parser.add_argument("--flood-addresses", type=int, default=1000, help="client addresses (1: one attacker)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--flood-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--flood-port", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.flood_worker:
        return flood_main(args)
    return asyncio.run(amain(args, argv))


if __name__ == "__main__":
    sys.exit(main())
