"""Sealing days (tamper evidence): when a day is sealed, the chain, addenda for late recordings,
and the manifest file itself (pure render/parse tests need no database)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from cc_core.archive.archiver import archive_recordings
from cc_core.archive.manifest import (
    GENESIS,
    ManifestBody,
    ManifestEntry,
    manifest_sha256,
    manifests,
    parse_manifest,
    render_manifest,
    seal_days,
)
from cc_core.archive.verify import verify_archive
from cc_core.archive.views import archived_recording
from cc_core.calls.recordings import RecordingStore
from tests.archive.conftest import T0, Site, write_wav

MAY1 = date(2026, 5, 1)
# Midnight at the end of 1 May in Beijing.
END_MAY1 = datetime(2026, 5, 1, 16, 0, tzinfo=UTC)


def _body(entries: tuple[ManifestEntry, ...] = ()) -> ManifestBody:
    return ManifestBody(MAY1, 0, 1, GENESIS, datetime(2026, 5, 2, 1, 0, tzinfo=UTC), entries)


def test_render_is_sorted_deterministic_and_parses_back() -> None:
    b = ManifestEntry(7, "2026/05/01/b.opus", "b" * 64, 200, 3.5)
    a = ManifestEntry(9, "2026/05/01/a.opus", "a" * 64, 100, None)
    text = render_manifest(_body((b, a)))
    assert text == render_manifest(_body((a, b))) and text.endswith("}\n")
    document = json.loads(text)
    assert [item["file"] for item in document["recordings"]] == ["2026/05/01/a.opus", "2026/05/01/b.opus"]
    assert document["format"] == "hotline-recordings-manifest/1" and document["sealed_at"] == "2026-05-02T01:00:00Z"
    assert parse_manifest(text) == _body((a, b))
    assert manifest_sha256(text) == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("text", ["[]", "{}", '{"format": "other"}', "not json"])
def test_parse_refuses_what_is_not_a_manifest(text: str) -> None:
    with pytest.raises(ValueError):
        parse_manifest(text)


def test_a_day_is_sealed_the_day_after_once_all_is_archived(site: Site) -> None:
    first = site.record("1.1", T0, 1.0)
    # Still 1 May in Beijing: archived, not sealed.
    assert archive_recordings(site.sessions, site.config(), now=END_MAY1 - timedelta(minutes=1)).sealed == []
    # A call still being recorded at midnight holds the day open...
    RecordingStore(site.sessions).started("1.2", "1002", "agent", site.inside("1.2", T0), T0 + timedelta(hours=5))
    assert archive_recordings(site.sessions, site.config(), now=END_MAY1 + timedelta(hours=1)).sealed == []
    # ...and once it is finished and archived the day is sealed with both.
    second = site.record("1.3", T0 + timedelta(hours=6), 1.0)
    store = RecordingStore(site.sessions)
    inside = site.inside("1.2", T0)
    write_wav(site.instance.host_path(inside), 1.0)
    store.finished(inside, T0 + timedelta(hours=6), site.instance.host_path(inside))
    result = archive_recordings(site.sessions, site.config(), now=END_MAY1 + timedelta(hours=2))
    assert result.sealed == ["2026/05/01/MANIFEST.json"]
    [sealed] = manifests(site.sessions)
    assert (sealed.day, sealed.part, sealed.position, sealed.entry_count) == (MAY1, 0, 1, 3)
    assert sealed.previous_sha256 == GENESIS
    body = (site.store / sealed.path).read_text()
    assert manifest_sha256(body) == sealed.sha256 and (site.backup / sealed.path).read_text() == body
    ids = sorted(e.recording_id for e in parse_manifest(body).entries)
    assert first in ids and second in ids
    assert all(archived_recording(site.sessions, i).manifest_id == sealed.id for i in ids)  # type: ignore[union-attr]


def test_an_unsettled_day_is_sealed_after_the_grace_and_the_straggler_gets_an_addendum(site: Site) -> None:
    site.record("2.1", T0, 1.0)
    stuck = RecordingStore(site.sessions).started("2.2", "1002", "agent", site.inside("2.2", T0), T0)
    config = site.config(seal_grace=timedelta(hours=48))
    assert archive_recordings(site.sessions, config, now=END_MAY1 + timedelta(hours=47)).sealed == []
    # 48 h after 1 May ended it is 4 May in Beijing: 1, 2 (empty) and 3 May (empty) are sealed.
    assert archive_recordings(site.sessions, config, now=END_MAY1 + timedelta(hours=48)).sealed == [
        "2026/05/01/MANIFEST.json",
        "2026/05/02/MANIFEST.json",
        "2026/05/03/MANIFEST.json",
    ]
    # The straggler is finished and archived later: an addendum, chained at the head.
    inside = site.inside("2.2", T0)
    write_wav(site.instance.host_path(inside), 1.2)
    RecordingStore(site.sessions).finished(inside, T0 + timedelta(days=3), site.instance.host_path(inside))
    later = archive_recordings(site.sessions, config, now=END_MAY1 + timedelta(hours=50))
    assert later.archived == [stuck]
    assert later.sealed == ["2026/05/01/MANIFEST-1.json"]
    chain = manifests(site.sessions)
    assert [(m.day.isoformat(), m.part, m.entry_count) for m in chain] == [
        ("2026-05-01", 0, 1),
        ("2026-05-02", 0, 0),
        ("2026-05-03", 0, 0),
        ("2026-05-01", 1, 1),
    ]
    assert [m.previous_sha256 for m in chain] == [GENESIS, *(m.sha256 for m in chain[:-1])]
    addendum = parse_manifest((site.store / "2026/05/01/MANIFEST-1.json").read_text())
    assert [e.recording_id for e in addendum.entries] == [stuck]
    assert verify_archive(site.sessions, config).ok


def test_seal_days_on_its_own(site: Site) -> None:
    site.record("3.1", T0, 1.0)
    archive_recordings(site.sessions, site.config(), now=T0, seal=False)
    assert seal_days(site.sessions, site.config(), now=T0) == []
    [sealed] = seal_days(site.sessions, site.config(), now=END_MAY1)
    assert sealed.path == "2026/05/01/MANIFEST.json"
    assert seal_days(site.sessions, site.config(), now=END_MAY1 + timedelta(days=1))[0].day == date(2026, 5, 2)
