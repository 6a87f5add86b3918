"""Start, stop and ask the switch (Asterisk in its chroot), tracked by a PID file.

``chroot`` execs Asterisk, so the PID we get is Asterisk's own. Asterisk runs in the
foreground (``-f``) as a child in its own session: Ctrl-C in the user's terminal reaches the
controller, which then stops the switch in order.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cc_core.errors import SwitchError
from cc_core.switch.instance import Instance


@dataclass(frozen=True)
class Ports:
    """The ports an instance binds; checked free before it starts."""

    sip_udp: int
    ami_tcp: int
    http_tcp: int
    sip_host: str = "0.0.0.0"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); read its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    if state != "Z":
        return True
    # The main thread of a process that is exiting shows "Z" while its other threads are still
    # going, and they hold its sockets: Asterisk's SIP port stayed bound for a moment after "core
    # stop now" and the restart that followed found it taken (seen in a full test run).
    return _threads(pid) > 1


def _threads(pid: int) -> int:
    """How many threads the process still has (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def port_free(port: int, kind: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(ports: Ports) -> None:
    """Raise a one-line :class:`SwitchError` naming the first port already taken."""
    for port, kind, label, host in (
        (ports.sip_udp, socket.SOCK_DGRAM, "SIP (udp)", ports.sip_host),
        (ports.ami_tcp, socket.SOCK_STREAM, "AMI (tcp)", "127.0.0.1"),
        (ports.http_tcp, socket.SOCK_STREAM, "HTTP/ARI (tcp)", "127.0.0.1"),
    ):
        if not port_free(port, kind, host):
            raise SwitchError(
                f"port {port} for {label} is already in use (another Asterisk or hotline?); "
                "stop that program or change the port in hotline.toml [switch]"
            )


class Switch:
    """Control of one Asterisk instance."""

    def __init__(self, instance: Instance, pid_file: Path) -> None:
        self.instance = instance
        self.pid_file = pid_file

    def _cmd(self, *args: str) -> list[str]:
        return ["chroot", str(self.instance.root), "asterisk", "-C", str(self.instance.config_inside), *args]

    @property
    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def is_running(self) -> bool:
        return self.pid is not None

    def start(self, ports: Ports, timeout: float = 30.0) -> int:
        """Start Asterisk (config must be rendered) and wait until it is fully booted."""
        if not self.instance.is_installed():
            raise SwitchError(f"the switch is not installed in {self.instance.root}; run scripts/setup.sh")
        running = self.pid
        if running is not None:
            return running
        if os.geteuid() != 0:
            raise SwitchError("starting the switch needs root (it runs in a chroot); run as root")
        check_ports(ports)
        self.instance.log_dir.mkdir(parents=True, exist_ok=True)
        # A stale control socket makes "asterisk -r" talk to nobody; remove it.
        ctl = self.instance.host_dir / "run" / "asterisk.ctl"
        ctl.unlink(missing_ok=True)
        with open(self.instance.console_log, "ab") as log:
            proc = subprocess.Popen(
                self._cmd("-f", "-n", "-U", "root", "-G", "root"),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # What Asterisk creates (recordings, voicemail, its database, logs) is for root
                # only: recordings hold citizens' voices, the database their numbers.
                umask=0o077,
            )
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise SwitchError(
                    f"the switch exited at start (code {proc.returncode}); see {self.instance.console_log}"
                    f"{self._console_tail()}"
                )
            if ctl.exists():
                result = self.cli("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
                if "fully booted" in result.lower():
                    return proc.pid
            time.sleep(0.1)
        tail = self._console_tail()
        self.stop()
        raise SwitchError(f"the switch did not boot in {timeout:.0f} s; see {self.instance.console_log}{tail}")

    def _console_tail(self, lines: int = 12) -> str:
        """The end of the console log, indented, for an error message ('' if there is none)."""
        try:
            text = self.instance.console_log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        tail = [line for line in text.splitlines()[-lines:] if line.strip()]
        return "".join(f"\n    {line}" for line in tail)

    def cli(self, command: str, timeout: float = 10.0) -> str:
        """Run one Asterisk CLI command (``asterisk -rx``) and return its output."""
        try:
            result = subprocess.run(
                self._cmd("-rx", command), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise SwitchError(f"the switch did not answer '{command}' in {timeout:.0f} s") from exc
        if result.returncode != 0 and "Unable to connect" in (result.stdout + result.stderr):
            raise SwitchError("the switch is not running; start it with 'hotline switch start'")
        return result.stdout

    def reload_module(self, module: str, timeout: float = 15.0) -> None:
        """Reload one module (``res_pjsip.so`` after agents' SIP accounts changed) through the
        CLI's control socket, which only root can open.

        Not over AMI: that needs the ``command`` (or ``system``/``config``) write class, and with
        it anyone holding the AMI secret has a root shell (issue 11 item 5). Raises
        :class:`SwitchError` with the switch's answer when it did not reload.
        """
        answer = self.cli(f"module reload {module}", timeout=timeout).strip()
        if "reloaded" not in answer.lower() and "queued" not in answer.lower():
            raise SwitchError(f"the switch did not reload {module}: {answer or 'no answer'}")

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop Asterisk: ask it nicely, then SIGTERM, then SIGKILL. Returns whether it was running."""
        pid = self.pid
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        try:
            self.cli("core stop now", timeout=5)
        except SwitchError:
            pass
        if not _wait_gone(pid, timeout / 2):
            os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, timeout / 2):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """SIGKILL the switch at once (tests of a crash)."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our child; ignore if it is not.
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)
