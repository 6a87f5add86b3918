"""What every benchmark prints about the machine it ran on, and pinning to one core.

Imported by the scripts/bench_*.py scripts (they run as ``python scripts/bench_x.py``, so this
folder is on sys.path).
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import Any


def machine(pinned: int | None, **extra: Any) -> dict[str, Any]:
    """CPU model, cores, pinned CPU, Python, platform, UTC date and load, plus ``extra``."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.partition(":")[2].strip()
                    break
    except OSError:
        model = platform.processor()
    return {
        "cpu": model or "unknown",
        "cores": os.cpu_count(),
        "pinned_cpu": pinned,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        **extra,
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def pin(cpu: int | None, enabled: bool) -> int | None:
    """Pin this process to one CPU (the last allowed one by default); None if not pinned."""
    if not enabled or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    target = allowed[-1] if cpu is None else cpu
    os.sched_setaffinity(0, {target})
    return target
