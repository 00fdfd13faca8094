"""Retention: purge call records and their recordings after N days, and audit it.

- **Pure core**: :func:`recording_names` (which files belong to a call), :func:`next_run`
  (when the daily purge runs next), :func:`parse_at`.
- **Adapters**: :func:`purge` (``aiosqlite`` and the file system, one audit row per
  run), :func:`retention_loop` (the server's daily task) and :func:`cli_main`
  (``hotline retention purge``).

What a purge removes, for every ``calls`` row that ended more than ``older_than_days``
ago (a row without ``ended_at`` is a call in progress and is left alone, unless it
started more than a day before the cutoff: a call the server lost in a crash):

- in ``recordings_dir``: ``<id>.wav``, ``<id>-<N>.wav``, ``<id>-voicemail.wav``, their
  ``.json`` sidecars and ``.json.partial`` leftovers;
- in ``recordings_dir/.parts``: ``<id>[-<N>]-caller.wav`` and ``-agent.wav``;
- the row's ``recording_path`` if it lies inside ``recordings_dir``.

Names are built from the call id (only ids of letters, digits, ``_`` and ``-`` are
used) and looked up in ``recordings_dir`` listings, so nothing outside it is touched.
A file that cannot be deleted keeps its call's row, so the next run retries it; the
run is audited with result ``partial`` and the failures are in the report.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import structlog

log = structlog.get_logger("hotline.retention")

DAY = 86_400.0  # seconds
STALE_GRACE = DAY  # seconds before the cutoff that a call without ended_at counts as lost
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_SEGMENT = re.compile(r"(?P<id>.+)-(?P<n>\d+)(?P<ext>\.wav|\.qa\.json|\.json|\.json\.partial)")
_PART_SEGMENT = re.compile(r"(?P<id>.+)-(?P<n>\d+)-(?:caller|agent)\.wav")
_AT = re.compile(r"(\d{1,2}):(\d{2})")


class RetentionError(Exception):
    """Base of the errors of the retention purge."""

    code = "retention.error"


class RetentionConfigError(RetentionError):
    """You misused us: a bad schedule or number of days."""

    code = "retention.bad_config"


class Auditor(Protocol):
    """What :func:`purge` needs of ``cti_bridge.AuditLog``."""

    def audit(self, action: str, **fields: Any) -> int: ...


# ------------------------------------------------------------------ pure core
def recording_names(call_id: str) -> tuple[list[str], list[str]]:
    """The fixed file names of a call: (in recordings_dir, in recordings_dir/.parts).
    Segments ``-<N>`` are matched against directory listings by :func:`purge`."""
    top = [
        f"{call_id}{stem}{ext}" for stem in ("", "-voicemail") for ext in (".wav", ".json", ".json.partial")
    ] + [f"{call_id}.qa.json"]  # the transcript and QA flags (docs/analytics.md)
    return top, [f"{call_id}-caller.wav", f"{call_id}-agent.wav"]


def parse_at(text: str) -> dt.time:
    """``"03:30"`` -> ``time(3, 30)``; raises :class:`RetentionConfigError`."""
    m = _AT.fullmatch(text.strip())
    if m is None or int(m[1]) > 23 or int(m[2]) > 59:
        raise RetentionConfigError(f"retention time '{text}' is not a time of day like 03:30")
    return dt.time(int(m[1]), int(m[2]))


def next_run(now_wall: float, at: dt.time, tz: dt.tzinfo | None = None) -> float:
    """Epoch seconds of the next daily run at ``at`` local time (``tz``; None = the
    server's zone), strictly after ``now_wall``. On a day where ``at`` does not exist
    (a DST gap), it runs when the clock has jumped past it; where it exists twice, the first."""
    now = dt.datetime.fromtimestamp(now_wall, tz) if tz is not None else dt.datetime.fromtimestamp(now_wall)
    for ahead in range(3):
        day = now.date() + dt.timedelta(days=ahead)
        local = dt.datetime.combine(day, at.replace(fold=0), tzinfo=tz)
        # naive (server zone) and aware datetimes both map to epoch seconds via timestamp()
        wall = local.timestamp()
        if wall > now_wall:
            return wall
    raise AssertionError("unreachable: a daily time recurs within 3 days")


def _ended(text: str | None) -> float | None:
    """An ISO 8601 time from the calls table -> epoch seconds (naive = UTC); None if unparseable."""
    if not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


@dataclass(slots=True)
class PurgeReport:
    older_than_days: int
    cutoff: str  # ISO 8601 UTC: calls that ended before this were purged
    calls: int = 0  # call rows deleted
    recordings: int = 0  # files deleted (WAV, sidecars, partial files)
    stale: int = 0  # of those calls: rows without ended_at that started long before the cutoff
    kept: int = 0  # calls kept because one of their files could not be deleted (retried next run)
    failed: list[str] = field(default_factory=list)  # "file: reason" for every file not deleted
    skipped: list[str] = field(default_factory=list)  # files left alone: unsafe id, outside the directory
    dry_run: bool = False  # nothing was deleted or audited
    audit_error: str | None = None  # the purge ran but its audit row could not be written

    @property
    def result(self) -> str:
        return "partial" if self.failed else "ok"

    def summary(self) -> str:
        verb = "would purge" if self.dry_run else "purged"
        text = (
            f"{verb} {self.calls} calls and {self.recordings} files that ended before {self.cutoff} "
            f"({self.older_than_days} days)"
        )
        if self.failed:
            text += (
                f"; {len(self.failed)} files could not be deleted, {self.kept} calls kept for the next run"
            )
        return text


# ------------------------------------------------------------------ adapters
def _listing(directory: Path) -> set[str]:
    try:
        return {e.name for e in os.scandir(directory) if e.is_file(follow_symlinks=False)}
    except FileNotFoundError:
        return set()


def _files_of(
    call_id: str,
    recording_path: str | None,
    root: Path,
    top: set[str],
    parts: set[str],
    segments: dict[str, list[str]],
    part_segments: dict[str, list[str]],
) -> list[Path]:
    fixed_top, fixed_parts = recording_names(call_id)
    files = [root / n for n in fixed_top if n in top]
    files += [root / n for n in segments.get(call_id, [])]
    files += [root / ".parts" / n for n in fixed_parts if n in parts]
    files += [root / ".parts" / n for n in part_segments.get(call_id, [])]
    if recording_path:
        p = Path(recording_path)
        if p.parent.resolve() == root.resolve() and p.name in top and root / p.name not in files:
            files.append(root / p.name)
    return files


def _index(names: Iterable[str], pattern: re.Pattern[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in names:
        if m := pattern.fullmatch(name):
            out.setdefault(m["id"], []).append(name)
    return out


def _owner(name: str) -> str:
    """The call id a file name would belong to without a segment: "a-2.json" -> "a-2"."""
    for suffix in (".json.partial", ".qa.json", ".json", ".wav", "-caller", "-agent"):
        name = name.removesuffix(suffix)
    return name


def _delete(files: dict[str, list[Path]]) -> tuple[set[str], int, list[str]]:
    """Unlink every call's files (in a worker thread): (calls with all files gone, files
    deleted, failures)."""
    done: set[str] = set()
    deleted = 0
    failed: list[str] = []
    for call_id, paths in files.items():
        ok = True
        for path in paths:
            try:
                path.unlink()
                deleted += 1
            except FileNotFoundError:
                pass  # gone meanwhile: the goal is reached
            except OSError as exc:
                ok = False
                failed.append(f"{path}: {exc.strerror or exc}")
        if ok:
            done.add(call_id)
    return done, deleted, failed


async def purge(
    db_path: Path,
    recordings_dir: Path,
    older_than_days: int,
    now_wall: float,
    audit: Auditor,
    *,
    dry_run: bool = False,
) -> PurgeReport:
    """Delete calls that ended more than ``older_than_days`` before ``now_wall`` and their
    files; write one ``retention.purge`` audit row (not on a dry run). Never raises for a
    file; raises :class:`RetentionConfigError` for ``older_than_days`` < 1 and
    ``sqlite3.Error`` when the database cannot be read."""
    if older_than_days < 1:
        raise RetentionConfigError(f"older_than_days must be at least 1, not {older_than_days}")
    cutoff = now_wall - older_than_days * DAY
    cutoff_iso = (
        dt.datetime.fromtimestamp(cutoff, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )
    report = PurgeReport(older_than_days, cutoff_iso, dry_run=dry_run)
    # ISO dates sort as text: a cheap pre-filter, then exact times in Python
    day_after = dt.datetime.fromtimestamp(cutoff + DAY, dt.UTC).strftime("%Y-%m-%d")
    async with aiosqlite.connect(db_path, timeout=10.0, isolation_level=None) as db:
        async with db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'calls'") as cur:
            has_calls = await cur.fetchone() is not None
        rows: Iterable[Any] = []
        if has_calls:  # no table yet: the server never recorded a call, so nothing is old
            async with db.execute(
                "SELECT call_id, ended_at, started_at, recording_path FROM calls "
                "WHERE substr(coalesce(ended_at, started_at), 1, 10) <= ?",
                (day_after,),
            ) as cur:
                rows = await cur.fetchall()
        victims: dict[str, str | None] = {}  # call_id -> recording_path
        for call_id, ended_at, started_at, recording_path in rows:
            if ended_at:
                when = _ended(ended_at)
                if when is None or when >= cutoff:
                    continue
            else:
                started = _ended(started_at)
                if started is None or started >= cutoff - STALE_GRACE:
                    continue  # a call in progress
                report.stale += 1
            victims[str(call_id)] = recording_path
        root = recordings_dir
        top, parts = _listing(root), _listing(root / ".parts")
        segments, part_segments = _index(top, _SEGMENT), _index(parts, _PART_SEGMENT)
        # "<a>-2.wav" is a segment of call <a>, unless "<a>-2" is itself a call id
        stems = {n: _owner(n) for v in [*segments.values(), *part_segments.values()] for n in v}
        real_ids: set[str] = set()
        for chunk in _chunks(sorted(set(stems.values())), 500) if has_calls else ():
            marks = ",".join("?" * len(chunk))
            async with db.execute(f"SELECT call_id FROM calls WHERE call_id IN ({marks})", chunk) as cur:
                real_ids |= {str(r[0]) for r in await cur.fetchall()}
        segments = {k: [n for n in v if stems[n] not in real_ids] for k, v in segments.items()}
        part_segments = {k: [n for n in v if stems[n] not in real_ids] for k, v in part_segments.items()}
        files: dict[str, list[Path]] = {}
        for call_id, recording_path in victims.items():
            if not _SAFE_ID.fullmatch(call_id):
                report.skipped.append(f"call {call_id!r}: not a safe file name; its files were left alone")
                files[call_id] = []
                continue
            files[call_id] = _files_of(call_id, recording_path, root, top, parts, segments, part_segments)
            if recording_path and Path(recording_path).parent.resolve() != root.resolve():
                report.skipped.append(f"{recording_path}: outside {root}; left alone")
        if dry_run:
            report.calls = len(files)
            report.recordings = sum(len(v) for v in files.values())
            return report
        done, report.recordings, report.failed = await asyncio.to_thread(_delete, files)
        report.kept = len(files) - len(done)
        async with db.execute("SELECT name FROM sqlite_master WHERE name IN ('qa_calls', 'qa_text')") as cur:
            qa_tables = [str(r[0]) for r in await cur.fetchall()]  # transcripts go with their calls
        for chunk in _chunks(sorted(done), 500):
            await db.execute(f"DELETE FROM calls WHERE call_id IN ({','.join('?' * len(chunk))})", chunk)
            marks = ",".join("?" * len(chunk))
            for table in qa_tables:
                await db.execute(f"DELETE FROM {table} WHERE call_id IN ({marks})", chunk)
        await db.commit()
        report.calls = len(done)
    try:
        audit.audit(
            "retention.purge",
            who="retention",
            result=report.result,
            calls=report.calls,
            recordings=report.recordings,
            older_than_days=older_than_days,
            cutoff=cutoff_iso,
            failed=len(report.failed),
        )
    except Exception as exc:  # the files are gone either way; report it, the loop goes on
        report.audit_error = f"{type(exc).__name__}: {exc}"
        log.error("retention_audit_failed", error=report.audit_error)
    return report


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def retention_loop(
    db_path: Path,
    recordings_dir: Path,
    older_than_days: int,
    audit: Auditor,
    *,
    at: dt.time = dt.time(3, 30),
    tz: dt.tzinfo | None = None,
    wall_clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> None:
    """The server's task: purge daily at ``at`` (``tz``; None = server zone), forever.
    A failed run is logged and retried the next day; cancel the task to stop."""
    while True:
        now = wall_clock()
        await sleep(max(0.0, next_run(now, at, tz) - now))
        try:
            report = await purge(db_path, recordings_dir, older_than_days, wall_clock(), audit)
        except (sqlite3.Error, OSError) as exc:
            log.error("retention_purge_failed", error=f"{type(exc).__name__}: {exc}")
            continue
        level = log.warning if report.failed or report.audit_error else log.info
        level(
            "retention_purged",
            calls=report.calls,
            recordings=report.recordings,
            stale=report.stale,
            failed=len(report.failed),
            older_than_days=older_than_days,
        )


def cli_main(argv: Sequence[str]) -> int:
    """``hotline retention purge [--days N] [--dry-run]``: run a purge now.

    Exit status: 0 done, 1 some files could not be deleted (listed on stderr), 2 bad
    usage, config or database.
    """
    parser = argparse.ArgumentParser(prog="hotline retention", description="the retention purge")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("purge", help="purge calls and recordings older than N days now")
    run.add_argument("--config", default="config.toml", help="config file (default: ./config.toml)")
    run.add_argument("--days", type=int, default=None, help="override [retention] days")
    run.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    args = parser.parse_args(list(argv))
    from .config import load_config_or_report

    config = load_config_or_report(args.config)
    if config is None:
        return 2
    days = args.days if args.days is not None else getattr(getattr(config, "retention", None), "days", 0)
    if days < 1:
        print("hotline: no retention period: set [retention] days or pass --days N", file=sys.stderr)
        return 2
    import cti_bridge

    db_path = config.path(config.storage.database)
    if not db_path.exists():
        print(f"hotline: no database at {db_path} yet: nothing to purge")
        return 0
    audit = cti_bridge.AuditLog(db_path)
    try:
        report = asyncio.run(
            purge(
                db_path,
                config.path(config.recordings.directory),
                days,
                time.time(),
                audit,
                dry_run=args.dry_run,
            )
        )
    except sqlite3.Error as exc:
        print(f"hotline: cannot purge {db_path}: {exc}", file=sys.stderr)
        return 2
    finally:
        audit.close()
    print(report.summary())
    for line in [*report.failed, *report.skipped]:
        print(f"  {line}", file=sys.stderr)
    if report.audit_error:
        print(f"hotline: the purge was not audited: {report.audit_error}", file=sys.stderr)
    return 1 if report.failed or report.audit_error else 0
