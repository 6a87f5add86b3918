"""When a stopped process counts as gone: only once its last thread has exited (and its sockets
are closed), not when its main thread has."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from cc_core.switch.process import pid_alive, port_free

# The child binds a UDP port, starts a thread that keeps running, and ends its main thread only
# (pthread_exit): its main thread then shows "Z" in /proc while the process, and its socket, live on.
CHILD = """
import ctypes, socket, sys, threading, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
release = time.monotonic() + float(sys.argv[1])
threading.Thread(target=lambda: time.sleep(max(0.0, release - time.monotonic()))).start()
ctypes.CDLL(None).pthread_exit(None)
"""


def _state(pid: int) -> str:
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]


def test_a_process_whose_main_thread_exited_is_alive_until_its_last_thread_is() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, "4"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        deadline = time.monotonic() + 3
        while _state(child.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _state(child.pid) == "Z"  # the main thread is gone …
        assert not port_free(port, socket.SOCK_DGRAM)  # … its socket is not …
        assert pid_alive(child.pid)  # … so the process is not gone either
        child.wait(timeout=10)  # the other thread ends: now it is
        assert not pid_alive(child.pid)
        assert port_free(port, socket.SOCK_DGRAM)
    finally:
        child.kill()
        child.wait()
