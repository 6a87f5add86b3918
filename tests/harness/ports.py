"""Free loopback ports for one test session, so instances never collide with a running
Hotline (5060/5038/8088…), with each other, or with the kernel's ephemeral ports.

Ports come from 20000–30999, below Linux's ephemeral range (32768–60999): a port picked there
could be taken by some process's outgoing connection while a test restarts the switch that
listened on it, and the restart would fail with "port in use".
"""

from __future__ import annotations

import random
import socket

LOW, HIGH = 20000, 31000
# The RTP ranges of the test instances (UDP), kept apart from LOW–HIGH and from production's.
CC_RTP = (16000, 16999)
WORLD_RTP = (17000, 17999)
_handed_out: set[int] = set()
_random = random.Random()


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port free now on both TCP and UDP, never handed out before in this session."""
    for _ in range(500):
        port = _random.randrange(LOW, HIGH)
        if port in _handed_out:
            continue
        if _bindable(port, socket.SOCK_STREAM) and _bindable(port, socket.SOCK_DGRAM):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {LOW}-{HIGH}")
