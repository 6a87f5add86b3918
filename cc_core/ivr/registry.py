"""The flows and calendars the controller serves, reloaded without disturbing calls (T6).

A reload loads every flow file and calendar again. A flow that fails validation is *not*
replaced: the last good version keeps serving and the problems are reported. Calls hold a
snapshot of the flow set taken when they started, so a reload never changes a call in progress.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType

from cc_core.calendars import Calendar, CalendarError, load_calendars
from cc_core.calendars.days import local_zone
from cc_core.http_policy import HttpPolicy
from cc_core.ivr.flow import Flow
from cc_core.ivr.loader import FlowError, Problem, load_flows
from cc_core.ivr.prompts import PromptError, PromptLibrary

log = logging.getLogger(__name__)


@dataclass
class ReloadReport:
    """What a reload did: flows (re)loaded, flows kept at their last good version, problems."""

    loaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def calendar_warnings(calendars: Mapping[str, Calendar], today: date) -> list[str]:
    """Years whose public holidays an admin has not entered yet: this year's always, and next
    year's from November (the State Council publishes them then). A calendar without any
    holidays at all (e.g. one open round the clock) is left alone."""
    years = [today.year] + ([today.year + 1] if today.month >= 11 else [])
    out = []
    for name, calendar in sorted(calendars.items()):
        if not calendar.holidays:
            continue
        missing = [str(y) for y in years if not calendar.has_holidays_for(y)]
        if missing:
            out.append(
                f"calendar {name}: no public holidays entered for {', '.join(missing)}; "
                "add them (and the make-up workdays) from the State Council's notice"
            )
    return out


def fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes of the folder's files: a change means "reload"."""
    out = []
    for path in sorted(folder.rglob("*")):
        try:
            if path.is_file():
                stat = path.stat()
                out.append((str(path), stat.st_size, stat.st_mtime_ns))
        except OSError:
            continue
    return tuple(out)


class FlowRegistry:
    """Holds the last good flows and calendars of ``folder``."""

    def __init__(
        self,
        folder: Path,
        prompts: PromptLibrary | None = None,
        today: Callable[[], date] | None = None,
        http: HttpPolicy | None = None,
    ) -> None:
        self.folder = folder
        # The hosts http nodes may call ([ivr] http_allow): a flow naming another is not loaded.
        self.http_policy = http
        self.today = today or (lambda: datetime.now(local_zone()).date())
        self.prompts = prompts
        self._flows: Mapping[str, Flow] = MappingProxyType({})
        self.calendars: Mapping[str, Calendar] = MappingProxyType({})
        self.last_report = ReloadReport()
        self.reloads = 0
        self._lock = threading.Lock()
        self._seen: tuple[tuple[str, int, int], ...] = ()

    def snapshot(self) -> Mapping[str, Flow]:
        """The current flow set; immutable, safe to keep for the length of a call."""
        return self._flows

    def reload(self) -> ReloadReport:
        """Load flows and calendars again (blocking: run it in a thread from the event loop).

        Reloads are serialised: the file watcher and a 'hotline ivr reload' may ask at once."""
        with self._lock:
            return self._reload()

    def _reload(self) -> ReloadReport:
        report = ReloadReport()
        self._seen = fingerprint(self.folder)
        try:
            calendars = load_calendars(self.folder / "calendars")
            self.calendars = MappingProxyType(dict(calendars))
        except CalendarError as exc:
            report.problems.append(str(exc))
        except FileNotFoundError:
            self.calendars = MappingProxyType({})
        try:
            good, problems = load_flows(self.folder, http=self.http_policy)
        except FlowError as exc:
            good, problems = {}, list(exc.problems)
        report.problems.extend(str(p) for p in problems)
        failed = {_flow_of(p) for p in problems}
        merged = dict(self._flows)
        for name, flow in good.items():
            old = merged.get(name)
            if old is not None and old.version == flow.version:
                report.unchanged.append(name)
                continue
            if not self._prepare(flow, report):
                if old is not None:
                    report.kept.append(name)
                continue
            merged[name] = flow
            report.loaded.append(name)
        for name in sorted(failed):
            if name in self._flows and name not in good:
                report.kept.append(name)
        self._flows = MappingProxyType(merged)
        report.warnings = calendar_warnings(self.calendars, self.today())
        self.last_report = report
        self.reloads += 1
        level = logging.WARNING if report.problems else logging.INFO
        log.log(
            level,
            "IVR flows reloaded",
            extra={"loaded": report.loaded, "kept": report.kept, "problems": len(report.problems)},
        )
        for problem in report.problems:
            log.warning("IVR flow problem: %s", problem)
        for warning in report.warnings:
            log.warning("IVR calendar: %s", warning)
        return report

    def _prepare(self, flow: Flow, report: ReloadReport) -> bool:
        """Render the flow's prompts now, so no caller waits for TTS; a missing file fails it."""
        if self.prompts is None:
            return True
        try:
            self.prompts.prepare(flow)
        except PromptError as exc:
            report.problems.append(f"{flow.source}: prompts: {exc}")
            return False
        return True

    def changed(self) -> bool:
        return fingerprint(self.folder) != self._seen

    async def watch(self, interval: float) -> None:
        """Reload whenever a file under the folder changes (polled: no inotify dependency)."""
        while True:
            await asyncio.sleep(interval)
            try:
                if await asyncio.to_thread(self.changed):
                    await asyncio.to_thread(self.reload)
            except Exception:
                log.exception("IVR flow watch failed; will retry")


def _flow_of(problem: Problem) -> str:
    return Path(problem.file).stem
