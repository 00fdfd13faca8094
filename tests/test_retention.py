"""The retention purge: real SQLite (hotline.store.SCHEMA) and real files in a temp dir,
a real cti_bridge.AuditLog whose chain must verify afterwards, and the pure schedule."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cti_bridge import AuditLog, iso_utc, verify_audit
from hotline import retention as rt
from hotline.store import SCHEMA

NOW = 1_760_000_000.0  # epoch seconds: 2025-10-09T08:53:20Z
DAY = 86_400.0


class Calls:
    """A calls table with records at given ages, and their recording files."""

    def __init__(self, root: Path) -> None:
        self.db = root / "hotline.db"
        self.rec = root / "recordings"
        (self.rec / ".parts").mkdir(parents=True)
        conn = sqlite3.connect(self.db)
        conn.executescript(SCHEMA)
        conn.close()

    def call(
        self,
        call_id: str,
        *,
        ended_days_ago: float | None,
        started_days_ago: float | None = None,
        recording_path: str | None = None,
    ) -> None:
        started = started_days_ago if started_days_ago is not None else (ended_days_ago or 0.0)
        conn = sqlite3.connect(self.db)
        conn.execute(
            "INSERT INTO calls (call_id, started_at, ended_at, recording_path) VALUES (?, ?, ?, ?)",
            (
                call_id,
                iso_utc(NOW - started * DAY - 60),
                None if ended_days_ago is None else iso_utc(NOW - ended_days_ago * DAY),
                recording_path,
            ),
        )
        conn.commit()
        conn.close()

    def files(self, *names: str) -> list[Path]:
        paths = [self.rec / n for n in names]
        for p in paths:
            p.write_bytes(b"RIFF")
        return paths

    def ids(self) -> set[str]:
        conn = sqlite3.connect(self.db)
        try:
            return {r[0] for r in conn.execute("SELECT call_id FROM calls")}
        finally:
            conn.close()

    def left(self) -> set[str]:
        return {str(p.relative_to(self.rec)) for p in self.rec.rglob("*") if p.is_file()}


def audit_rows(db: Path) -> list[dict[str, Any]]:
    log = AuditLog(db)
    try:
        return log.rows()
    finally:
        log.close()


def run_purge(c: Calls, days: int = 30, **kw: Any) -> rt.PurgeReport:
    audit = AuditLog(c.db, wall_clock=lambda: NOW)
    try:
        return asyncio.run(rt.purge(c.db, c.rec, days, NOW, audit, **kw))
    finally:
        audit.close()


@pytest.fixture
def calls(tmp_path: Path) -> Calls:
    return Calls(tmp_path)


def test_purges_old_calls_and_every_file_of_theirs(calls: Calls) -> None:
    calls.call("a1b2c3d4e5f60001", ended_days_ago=31, recording_path=str(calls.rec / "a1b2c3d4e5f60001.wav"))
    calls.call("a1b2c3d4e5f60002", ended_days_ago=45)
    calls.call("a1b2c3d4e5f60003", ended_days_ago=29)  # young: kept
    calls.call("a1b2c3d4e5f60004", ended_days_ago=None, started_days_ago=0)  # in progress: kept
    calls.files(
        "a1b2c3d4e5f60001.wav",
        "a1b2c3d4e5f60001.json",
        "a1b2c3d4e5f60001-2.wav",
        "a1b2c3d4e5f60001-2.json",
        "a1b2c3d4e5f60001-2.json.partial",
        "a1b2c3d4e5f60001-voicemail.wav",
        ".parts/a1b2c3d4e5f60001-3-caller.wav",
        ".parts/a1b2c3d4e5f60001-3-agent.wav",
        "a1b2c3d4e5f60002-voicemail.wav",
        ".parts/a1b2c3d4e5f60002-caller.wav",
        "a1b2c3d4e5f60003.wav",
        "a1b2c3d4e5f60003.json",
        ".parts/a1b2c3d4e5f60004-caller.wav",
        "unrelated.wav",
        "a1b2c3d4e5f60001.wav.bak",
    )
    report = run_purge(calls)
    assert (report.calls, report.recordings, report.result) == (2, 10, "ok")
    assert report.failed == [] and report.skipped == [] and report.audit_error is None
    assert calls.ids() == {"a1b2c3d4e5f60003", "a1b2c3d4e5f60004"}
    assert calls.left() == {
        "a1b2c3d4e5f60003.wav",
        "a1b2c3d4e5f60003.json",
        ".parts/a1b2c3d4e5f60004-caller.wav",
        "unrelated.wav",
        "a1b2c3d4e5f60001.wav.bak",
    }
    (row,) = audit_rows(calls.db)
    assert (row["action"], row["who"], row["result"]) == ("retention.purge", "retention", "ok")
    fields = json.loads(row["fields"])
    assert (fields["calls"], fields["recordings"], fields["older_than_days"]) == (2, 10, 30)
    assert fields["cutoff"] == "2025-09-09T08:53:20Z"
    assert verify_audit(calls.db) == (True, None)


def test_transcripts_and_qa_go_with_their_calls(calls: Calls) -> None:
    from hotline.qa import open_db

    calls.call("a1b2c3d4e5f60001", ended_days_ago=31)
    calls.call("a1b2c3d4e5f60003", ended_days_ago=29)
    conn = open_db(calls.db)
    for cid in ("a1b2c3d4e5f60001", "a1b2c3d4e5f60003"):
        conn.execute(
            "INSERT INTO qa_calls (recording, call_id, language, recognizer, seconds, flags, sidecar, sha256,"
            " created_at) VALUES (?, ?, 'en', 'pocketsphinx', 1, '{}', '', '', '')",
            (f"{cid}.wav", cid),
        )
        conn.execute(
            "INSERT INTO qa_text (text, recording, call_id) VALUES ('a complaint', ?, ?)", (cid, cid)
        )
    conn.commit()
    conn.close()
    calls.files("a1b2c3d4e5f60001.qa.json", "a1b2c3d4e5f60001-2.qa.json", "a1b2c3d4e5f60003.qa.json")
    report = run_purge(calls)
    assert (report.calls, report.recordings) == (1, 2)
    assert calls.left() == {"a1b2c3d4e5f60003.qa.json"}
    conn = sqlite3.connect(calls.db)
    try:
        assert {r[0] for r in conn.execute("SELECT call_id FROM qa_calls")} == {"a1b2c3d4e5f60003"}
        found = conn.execute("SELECT call_id FROM qa_text WHERE qa_text MATCH 'complaint'").fetchall()
        assert [r[0] for r in found] == ["a1b2c3d4e5f60003"]
    finally:
        conn.close()


def test_the_cutoff_boundary(calls: Calls) -> None:
    calls.call("old", ended_days_ago=30 + 1 / DAY)  # one second past the cutoff
    calls.call("young", ended_days_ago=30 - 1 / DAY)
    assert run_purge(calls).calls == 1
    assert calls.ids() == {"young"}


def test_a_call_lost_in_a_crash_is_purged_a_day_after_the_cutoff(calls: Calls) -> None:
    calls.call("lostlong", ended_days_ago=None, started_days_ago=31.5)  # no ended_at, started long ago
    calls.call("lostrecent", ended_days_ago=None, started_days_ago=30.5)  # within the day of grace
    calls.files(".parts/lostlong-caller.wav")
    report = run_purge(calls)
    assert (report.calls, report.stale, report.recordings) == (1, 1, 1)
    assert calls.ids() == {"lostrecent"} and calls.left() == set()


def test_unlink_failure_is_reported_audited_partial_and_retried(
    calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls.call("stuck", ended_days_ago=40)
    calls.call("gone", ended_days_ago=40)
    calls.files("stuck.wav", "stuck.json", "gone.wav")
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.name == "stuck.wav":
            raise PermissionError(13, "Permission denied")
        real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    report = run_purge(calls)
    assert (report.calls, report.recordings, report.kept, report.result) == (1, 2, 1, "partial")
    assert report.failed == [f"{calls.rec / 'stuck.wav'}: Permission denied"]
    assert calls.ids() == {"stuck"} and calls.left() == {"stuck.wav"}
    assert audit_rows(calls.db)[-1]["result"] == "partial"
    monkeypatch.setattr(Path, "unlink", real_unlink)
    again = run_purge(calls)  # the next run finishes the job
    assert (again.calls, again.recordings, again.result) == (1, 1, "ok")
    assert calls.ids() == set() and calls.left() == set()
    assert verify_audit(calls.db) == (True, None)


def test_nothing_outside_the_recordings_directory_is_touched(calls: Calls, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.wav"
    outside.write_bytes(b"RIFF")
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF")
    calls.call("../secret", ended_days_ago=40)  # a hostile id: the row goes, no file is derived from it
    calls.call("abc", ended_days_ago=40, recording_path=str(outside))
    calls.call("abc-2", ended_days_ago=1)  # "abc-2.wav" is this young call's file, not a segment of abc
    calls.files("abc.wav", "abc-2.wav")
    report = run_purge(calls)
    assert report.calls == 2 and report.recordings == 1
    assert outside.exists() and secret.exists()
    assert calls.left() == {"abc-2.wav"} and calls.ids() == {"abc-2"}
    assert any("not a safe file name" in s for s in report.skipped)
    assert any("elsewhere.wav: outside" in s for s in report.skipped)


def test_dry_run_deletes_and_audits_nothing(calls: Calls) -> None:
    calls.call("old", ended_days_ago=40)
    calls.files("old.wav", "old.json")
    report = run_purge(calls, dry_run=True)
    assert (report.calls, report.recordings, report.dry_run) == (1, 2, True)
    assert "would purge 1 calls and 2 files" in report.summary()
    assert calls.ids() == {"old"} and calls.left() == {"old.wav", "old.json"}
    assert audit_rows(calls.db) == []


def test_an_audit_failure_is_reported_not_raised(calls: Calls) -> None:
    class Broken:
        def audit(self, action: str, **fields: Any) -> int:
            raise OSError("disk full")

    calls.call("old", ended_days_ago=40)
    report = asyncio.run(rt.purge(calls.db, calls.rec, 30, NOW, Broken()))
    assert report.calls == 1 and report.audit_error == "OSError: disk full"


def test_missing_recordings_directory_and_bad_days(tmp_path: Path) -> None:
    calls = Calls(tmp_path)
    calls.call("old", ended_days_ago=40)
    report = asyncio.run(rt.purge(calls.db, tmp_path / "none", 30, NOW, AuditLog(calls.db)))
    assert (report.calls, report.recordings) == (1, 0)
    with pytest.raises(rt.RetentionConfigError, match="at least 1"):
        asyncio.run(rt.purge(calls.db, calls.rec, 0, NOW, AuditLog(calls.db)))


def test_cli_purge(calls: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[storage]\ndatabase = "hotline.db"\n[recordings]\ndirectory = "recordings"\n'
        '[[cti.tokens]]\nname = "t"\nsecret = "s"\n'
    )
    calls.call("old", ended_days_ago=10_000)  # the CLI uses the real clock
    calls.files("old.wav")
    assert rt.cli_main(["purge", "--config", str(config)]) == 2  # no [retention] days yet
    assert "--days" in capsys.readouterr().err
    assert rt.cli_main(["purge", "--config", str(config), "--days", "30", "--dry-run"]) == 0
    assert "would purge 1 calls and 1 files" in capsys.readouterr().out
    assert rt.cli_main(["purge", "--config", str(config), "--days", "30"]) == 0
    assert calls.ids() == set() and calls.left() == set()
    assert verify_audit(calls.db) == (True, None)


# ------------------------------------------------------------------ schedule
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def wall(text: str, tz: dt.tzinfo) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


@pytest.mark.parametrize(
    ("now", "expected", "tz"),
    [
        ("2025-10-09T02:00:00", "2025-10-09T03:30:00", BERLIN),  # later today
        ("2025-10-09T03:30:00", "2025-10-10T03:30:00", BERLIN),  # exactly now: tomorrow
        ("2025-10-09T23:59:00", "2025-10-10T03:30:00", BERLIN),
        ("2025-10-25T12:00:00", "2025-10-26T03:30:00", BERLIN),  # over the autumn change: 25 h later wall
    ],
)
def test_next_run(now: str, expected: str, tz: dt.tzinfo) -> None:
    assert rt.next_run(wall(now, tz), dt.time(3, 30), tz) == wall(expected, tz)


def test_next_run_in_a_dst_gap_runs_after_the_jump() -> None:
    # 2025-03-09 02:30 does not exist in New York (02:00 -> 03:00)
    run = rt.next_run(wall("2025-03-08T12:00:00", NEW_YORK), dt.time(2, 30), NEW_YORK)
    assert dt.datetime.fromtimestamp(run, NEW_YORK).isoformat() == "2025-03-09T03:30:00-04:00"


def test_next_run_in_the_server_zone() -> None:
    run = rt.next_run(NOW, dt.time(3, 30))
    local = dt.datetime.fromtimestamp(run)
    assert (local.hour, local.minute) == (3, 30) and 0 < run - NOW <= DAY + 3600


def test_parse_at() -> None:
    assert rt.parse_at("03:30") == dt.time(3, 30)
    with pytest.raises(rt.RetentionConfigError, match="like 03:30"):
        rt.parse_at("25:00")


def test_retention_loop_sleeps_until_the_next_run_then_purges(calls: Calls) -> None:
    calls.call("old", ended_days_ago=40)
    clock = [NOW]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds
        if len(slept) == 2:
            raise asyncio.CancelledError

    async def scenario() -> None:
        audit = AuditLog(calls.db, wall_clock=lambda: clock[0])
        with pytest.raises(asyncio.CancelledError):
            await rt.retention_loop(
                calls.db,
                calls.rec,
                30,
                audit,
                at=dt.time(3, 30),
                tz=BERLIN,
                wall_clock=lambda: clock[0],
                sleep=sleep,
            )
        audit.close()

    asyncio.run(scenario())
    assert slept[0] == wall("2025-10-10T03:30:00", BERLIN) - NOW and slept[1] == DAY
    assert calls.ids() == set() and len(audit_rows(calls.db)) == 1
