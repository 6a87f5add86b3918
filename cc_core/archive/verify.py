"""Verify (T5): re-hash the archive and the backup, check the manifests' chain, report what is wrong.

:func:`verify_archive` reads every archived file (and its backup copy) back from the disk —
dropping cached pages first, so the disk is really read — and compares its SHA-256 with the one
recorded at archival; walks both folders for files nobody knows; and checks every manifest: its
stored text against its hash, its file (and backup copy) against its text, each one's "previous"
against the manifest before it, and its entries against the recordings. It returns a
:class:`VerifyReport` and stores it (``archive_runs``, kind "verify"): the controller runs it
daily, and the health page shows :func:`~cc_core.archive.runs.last_verify`.

What each finding means (:attr:`Finding.kind`):

=================  ==============================================================================
missing            a file the database lists is not there (archive or backup)
altered            a file's SHA-256 differs from the recorded one — or the recorded one differs
                   from the manifest that sealed it (the database was edited)
unreadable         the file is there but cannot be read (an I/O error)
orphan             a file in a day folder that no recording or manifest accounts for
partial            a temporary file left by a write that was interrupted
not_purged         retention removed the recording but its file is still there
not_backed_up      an archived recording with no backup copy yet
backup_unavailable the backup folder is missing (the disk not mounted): nothing there was checked
manifest_missing   a manifest file is gone
manifest_altered   a manifest file, or its stored text, differs from what was sealed
chain_broken       a manifest does not name its predecessor's hash, positions skip, or the chain
                   head an earlier verify saw is gone (manifests removed or rewritten)
not_in_manifest    a recording and the manifest of its day disagree about belonging together
unsealed           an archived recording of a sealed day in no manifest
=================  ==============================================================================

Purged recordings are counted as purged, not missing: their manifest entries keep the hash.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cc_core.archive.config import ArchiveConfig, ArchiveError, one_line, require_folder
from cc_core.archive.durable import sha256_file
from cc_core.archive.layout import PARTIAL_SUFFIX, TOP_LEVEL_FILES, day_folder
from cc_core.archive.manifest import GENESIS, ManifestBody, manifest_sha256, parse_manifest
from cc_core.archive.progress import Progress
from cc_core.archive.runs import RunClock, archive_lock, last_verify, record_run
from cc_core.db.models import Recording, RecordingManifest

log = logging.getLogger(__name__)

FINDING_KINDS = (
    "missing",
    "altered",
    "unreadable",
    "orphan",
    "partial",
    "not_purged",
    "not_backed_up",
    "backup_unavailable",
    "manifest_missing",
    "manifest_altered",
    "chain_broken",
    "not_in_manifest",
    "unsealed",
)
_CHECKED_STATES = ("written", "verified", "archived")


@dataclass(frozen=True)
class Finding:
    """One thing wrong: what, where ("archive", "backup" or "database"), which file and recording."""

    kind: str
    where: str
    path: str | None = None
    recording_id: int | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "where": self.where,
            "path": self.path,
            "recording_id": self.recording_id,
            "detail": self.detail,
        }

    def line(self) -> str:
        """The finding as one line, e.g. ``altered (backup) 2026/05/01/1.2.opus, recording 7: …``."""
        text = f"{self.kind} ({self.where})"
        if self.path:
            text += f" {self.path}"
        if self.recording_id is not None:
            text += f", recording {self.recording_id}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class VerifyReport:
    """What a verify found. ``ok`` when nothing is wrong with what is archived."""

    started_at: datetime
    scope: str
    finished_at: datetime | None = None
    recordings: int = 0
    purged: int = 0
    files_checked: int = 0
    bytes_checked: int = 0
    manifests: int = 0
    chain_head: str | None = None
    backup_checked: bool = False
    # Recordings that could not be archived (archive_state "failed"): not an integrity problem
    # of the archive, but each is a conversation that is not archived yet.
    failed_recordings: int = 0
    findings: list[Finding] = field(default_factory=list)
    run_id: int | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    def by_kind(self) -> dict[str, int]:
        """How many findings of each kind (only kinds that occur)."""
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        return counts

    def counts(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "recordings": self.recordings,
            "purged": self.purged,
            "files_checked": self.files_checked,
            "bytes_checked": self.bytes_checked,
            "manifests": self.manifests,
            "backup_checked": self.backup_checked,
            "failed_recordings": self.failed_recordings,
            **self.by_kind(),
        }


@dataclass(frozen=True)
class _Row:
    id: int
    path: str
    sha256: str | None
    size: int | None
    state: str | None
    day: date | None
    manifest_id: int | None
    backed_up_at: datetime | None
    purged_at: datetime | None


class _Verifier:
    def __init__(self, config: ArchiveConfig, report: VerifyReport, days: tuple[date, date] | None) -> None:
        self.config = config
        self.report = report
        self.days = days
        self.roots: dict[str, Path] = {"archive": config.store}

    def add(
        self, kind: str, where: str, path: str | None = None, recording_id: int | None = None, detail: str = ""
    ) -> None:
        self.report.findings.append(Finding(kind, where, path, recording_id, detail))

    def in_scope(self, day: date | None) -> bool:
        return self.days is None or (day is not None and self.days[0] <= day <= self.days[1])

    # ---- files ------------------------------------------------------------------------------

    def check_file(self, where: str, row: _Row) -> None:
        try:
            sha, size = sha256_file(self.roots[where] / row.path, from_disk=True)
        except FileNotFoundError:
            self.add("missing", where, row.path, row.id, f"recorded as {row.state}")
            return
        except OSError as exc:
            self.add("unreadable", where, row.path, row.id, exc.strerror or one_line(exc))
            return
        self.report.files_checked += 1
        self.report.bytes_checked += size
        if sha != row.sha256:
            self.add("altered", where, row.path, row.id, f"SHA-256 {sha}, recorded {row.sha256}")

    def check_row(self, row: _Row, last_sealed: date | None) -> None:
        if row.purged_at is not None:
            self.report.purged += 1
            for where, root in self.roots.items():
                if (root / row.path).exists():
                    self.add("not_purged", where, row.path, row.id, f"purged {row.purged_at:%Y-%m-%d %H:%M} UTC")
            return
        self.report.recordings += 1
        self.check_file("archive", row)
        if "backup" in self.roots:
            if row.backed_up_at is not None:
                self.check_file("backup", row)
            elif row.state == "archived":
                self.add("not_backed_up", "backup", row.path, row.id, "archived without a backup copy")
        if (
            row.state == "archived"
            and row.manifest_id is None
            and last_sealed is not None
            and row.day is not None
            and row.day <= last_sealed
        ):
            self.add("unsealed", "database", row.path, row.id, f"its day {row.day} is sealed")

    def walk(self, where: str, known: set[str]) -> None:
        """Report files in ``where`` that nobody knows, and temporary files left behind."""
        root = self.roots[where]
        if self.days is None:
            folders = [root]
        else:
            count = (self.days[1] - self.days[0]).days + 1
            folders = [root / day_folder(self.days[0] + timedelta(days=n)) for n in range(count)]
        for folder in folders:
            for current, _dirs, files in os.walk(folder):
                for name in files:
                    relative = (Path(current) / name).relative_to(root).as_posix()
                    if relative in known or (current == str(root) and name in TOP_LEVEL_FILES):
                        continue
                    if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
                        self.add("partial", where, relative, None, "left by an interrupted write")
                    else:
                        self.add("orphan", where, relative, None, "not in the database")

    # ---- manifests --------------------------------------------------------------------------

    def check_manifests(self, manifests: list[RecordingManifest], rows: dict[int, _Row]) -> None:
        expected_position = 1
        previous = GENESIS
        for manifest in manifests:
            self.report.manifests += 1
            if manifest.position != expected_position:
                self.add(
                    "chain_broken",
                    "database",
                    manifest.path,
                    None,
                    f"position {manifest.position} follows position {expected_position - 1}",
                )
            if manifest.previous_sha256 != previous:
                self.add(
                    "chain_broken",
                    "database",
                    manifest.path,
                    None,
                    f"names previous {manifest.previous_sha256}, but the manifest before it is {previous}",
                )
            if manifest_sha256(manifest.body) != manifest.sha256:
                self.add("manifest_altered", "database", manifest.path, None, "its stored text does not match its hash")
            body = self.parse(manifest)
            for where, root in self.roots.items():
                try:
                    on_disk = (root / manifest.path).read_bytes()
                except FileNotFoundError:
                    self.add("manifest_missing", where, manifest.path, None, f"sealed {manifest.sealed_at:%Y-%m-%d}")
                    continue
                except OSError as exc:
                    self.add("unreadable", where, manifest.path, None, exc.strerror or one_line(exc))
                    continue
                if on_disk != manifest.body.encode("utf-8"):
                    self.add("manifest_altered", where, manifest.path, None, "the file differs from the sealed text")
            if body is not None and self.in_scope(manifest.day):
                self.check_entries(manifest, body, rows)
            previous = manifest.sha256
            expected_position = manifest.position + 1
        self.report.chain_head = previous if manifests else None

    def parse(self, manifest: RecordingManifest) -> ManifestBody | None:
        try:
            body = parse_manifest(manifest.body)
        except ValueError as exc:
            self.add("manifest_altered", "database", manifest.path, None, str(exc))
            return None
        said = (body.position, body.day, body.part, body.previous_sha256)
        if said != (manifest.position, manifest.day, manifest.part, manifest.previous_sha256):
            self.add("manifest_altered", "database", manifest.path, None, "its text and its columns disagree")
        return body

    def check_entries(self, manifest: RecordingManifest, body: ManifestBody, rows: dict[int, _Row]) -> None:
        listed: set[int] = set()
        for entry in body.entries:
            listed.add(entry.recording_id)
            row = rows.get(entry.recording_id)
            if row is None or row.day != manifest.day:
                self.add(
                    "not_in_manifest",
                    "database",
                    entry.file,
                    entry.recording_id,
                    f"{manifest.path} lists it, the database has no such archived recording of {manifest.day}",
                )
                continue
            if row.manifest_id != manifest.id:
                self.add("not_in_manifest", "database", row.path, row.id, f"{manifest.path} lists it, the row does not")
            if (row.path, row.sha256, row.size) != (entry.file, entry.sha256, entry.size_bytes):
                self.add(
                    "altered", "database", row.path, row.id, f"the recorded file or hash differs from {manifest.path}"
                )
        for row in rows.values():
            if row.manifest_id == manifest.id and row.id not in listed:
                self.add("not_in_manifest", "database", row.path, row.id, f"points at {manifest.path}, which omits it")


def _scope(days: tuple[date, date] | None) -> str:
    return "all" if days is None else f"{days[0]}..{days[1]}"


def verify_archive(
    sessions: sessionmaker[Session],
    config: ArchiveConfig,
    *,
    days: tuple[date, date] | None = None,
    now: datetime | None = None,
    wait: float = 600.0,
    progress: Progress | None = None,
) -> VerifyReport:
    """Check the archive (and the backup): every file's hash, orphans, the manifests' chain.

    ``days`` (first, last; Beijing days, inclusive): re-hash only the recordings of those days
    and look for orphans only in their folders; the chain of manifests is always checked whole.
    Waits up to ``wait`` seconds for a running archive job. Returns the report, also stored;
    raises ArchiveError (one line) only if the archive folder is missing or the wait runs out.
    """
    require_folder(config.store, "archive", "store_dir")
    if days is not None and days[0] > days[1]:
        raise ValueError(f"days: {days[0]} is after {days[1]}")
    with archive_lock(config.store, wait=wait):
        clock = RunClock(now)
        report = VerifyReport(started_at=clock.start, scope=_scope(days))
        verifier = _Verifier(config, report, days)
        if config.backup is not None:
            try:
                require_folder(config.backup, "backup", "backup_dir")
                verifier.roots["backup"] = config.backup
                report.backup_checked = True
            except ArchiveError as exc:
                verifier.add("backup_unavailable", "backup", None, None, str(exc))
        previous = last_verify(sessions)
        with sessions() as session:
            known = {
                str(path)
                for path in session.scalars(select(Recording.archive_path).where(Recording.archive_path.is_not(None)))
            }
            known |= set(session.scalars(select(RecordingManifest.path)))
            query = select(Recording).where(Recording.archive_state.in_(_CHECKED_STATES))
            if days is not None:
                query = query.where(Recording.archive_day >= days[0], Recording.archive_day <= days[1])
            rows = {
                row.id: _Row(
                    row.id,
                    str(row.archive_path),
                    row.archive_sha256,
                    row.archive_size_bytes,
                    row.archive_state,
                    row.archive_day,
                    row.manifest_id,
                    row.backed_up_at,
                    row.purged_at,
                )
                for row in session.scalars(query.order_by(Recording.archive_day, Recording.id))
            }
            manifests = list(session.scalars(select(RecordingManifest).order_by(RecordingManifest.position)))
            last_sealed = session.scalar(select(func.max(RecordingManifest.day)).where(RecordingManifest.part == 0))
            report.failed_recordings = (
                session.scalar(select(func.count()).select_from(Recording).where(Recording.archive_state == "failed"))
                or 0
            )
        if progress is not None:
            progress(0, len(rows), "")
        for number, row in enumerate(rows.values(), 1):
            verifier.check_row(row, last_sealed)
            if progress is not None:
                progress(number, len(rows), row.path)
        for where in verifier.roots:
            verifier.walk(where, known)
        verifier.check_manifests(manifests, rows)
        if previous is not None and previous.chain_head and previous.chain_head not in {m.sha256 for m in manifests}:
            verifier.add(
                "chain_broken",
                "database",
                None,
                None,
                f"the chain head {previous.chain_head} seen by the verify of {previous.started_at:%Y-%m-%d %H:%M} UTC "
                "is gone: manifests were removed or rewritten",
            )
        report.finished_at = clock.now()
        report.run_id = record_run(
            sessions,
            "verify",
            report.started_at,
            report.finished_at,
            ok=report.ok,
            counts=report.counts(),
            findings=[finding.as_dict() for finding in report.findings],
            chain_head=report.chain_head,
        )
        level = logging.INFO if report.ok else logging.ERROR
        log.log(
            level,
            "verify (%s): %d recordings, %d files, %d manifests, %d findings%s",
            report.scope,
            report.recordings,
            report.files_checked,
            report.manifests,
            len(report.findings),
            "".join(f"; {finding.line()}" for finding in report.findings[:5]),
        )
        return report
