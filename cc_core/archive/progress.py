"""Progress of long archive, backup, verify and purge runs, for the command line.

Every long archive function takes an optional ``progress`` callback, called as
``progress(done, total, what)`` after each item (``what`` names the item, e.g. a file). The
controller passes none; ``hotline recordings …`` passes a :class:`ProgressBar`:

    with ProgressBar("verify") as bar:
        report = verify_archive(sessions, config, progress=bar)

On a terminal the bar is redrawn in place (at most every 0.1 s); elsewhere (a log file, a pipe
under systemd) a plain line is written every 10 %, so logs stay readable. Standard library only.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

Progress = Callable[[int, int, str], None]

_BAR_WIDTH = 28
_REDRAW_S = 0.1
_LINE_STEP_PERCENT = 10


def _clock_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def render(label: str, done: int, total: int, elapsed: float, what: str = "", width: int = _BAR_WIDTH) -> str:
    """One line of progress: label, bar, count, percent, rate, time left, the current item.

    Pure, for tests: ``render("verify", 45, 120, 9.0)`` →
    ``verify [##########------------------]  45/120  37%  5.0/s  left 0:15``.
    """
    total = max(total, 0)
    done = min(max(done, 0), total) if total else max(done, 0)
    fraction = done / total if total else 1.0
    filled = int(fraction * width)
    bar = "#" * filled + "-" * (width - filled)
    count = f"{done:>{len(str(total))}}/{total}"
    line = f"{label} [{bar}] {count} {int(fraction * 100):3d}%"
    if elapsed > 0 and done > 0:
        rate = done / elapsed
        line += f"  {rate:.1f}/s" if rate >= 1 else f"  {rate * 60:.1f}/min"
        if total and done < total:
            line += f"  left {_clock_text((total - done) / rate)}"
        elif total:
            line += f"  took {_clock_text(elapsed)}"
    if what:
        line += f"  {what}"
    return line


class ProgressBar:
    """A progress callback that draws on ``stream`` (standard error by default)."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        interactive: bool | None = None,
    ) -> None:
        self.label = label
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._interactive = self._stream.isatty() if interactive is None else interactive
        self._started = clock()
        self._last_draw = float("-inf")
        self._last_step = -1
        self._width = 0
        self._state: tuple[int, int] | None = None

    def __call__(self, done: int, total: int, what: str = "") -> None:
        self._state = (done, total)
        now = self._clock()
        elapsed = now - self._started
        if self._interactive:
            if done < total and now - self._last_draw < _REDRAW_S:
                return
            self._last_draw = now
            line = render(self.label, done, total, elapsed, what[-40:])
            # Pad over the previous, longer line; \r returns to the line's start.
            self._stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            step = (done * 100 // total) // _LINE_STEP_PERCENT if total else _LINE_STEP_PERCENT
            if step == self._last_step and done < total:
                return
            self._last_step = step
            self._stream.write(render(self.label, done, total, elapsed) + "\n")
        self._stream.flush()

    def close(self) -> None:
        """End the bar's line (on a terminal), so what is printed next starts on a fresh one."""
        if self._interactive and self._width:
            self._stream.write("\n")
            self._stream.flush()
            self._width = 0

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
