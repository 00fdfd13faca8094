"""A hash-chained, append-only audit log in SQLite.

Each row stores ``hash = sha256(prev_hash + canonical JSON of the row)``, where
the row is every column but ``hash`` and ``prev_hash`` is the previous row's
hash (64 zeros for the first). Changing, inserting or deleting a row breaks
the chain at that row, and :func:`verify_audit` names it. (Cutting rows off the
end leaves a shorter valid chain; anchor the newest hash elsewhere to catch that.)
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .events import iso_utc

GENESIS = "0" * 64  # prev_hash of the first row

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id        INTEGER PRIMARY KEY,  -- 1, 2, 3 ... without gaps
    at        TEXT NOT NULL,        -- ISO 8601 UTC with milliseconds
    action    TEXT NOT NULL,        -- e.g. recording.read, retention.purge
    who       TEXT,                 -- the token's name (never its secret), or the job
    what      TEXT,                 -- the subject, e.g. a call_id
    result    TEXT,                 -- ok, unauthorized, forbidden, not_found, aborted ...
    fields    TEXT NOT NULL,        -- canonical JSON of every field given to audit()
    prev_hash TEXT NOT NULL,        -- hash of the row before
    hash      TEXT NOT NULL         -- sha256(prev_hash + canonical JSON of this row)
);
"""

COLUMNS = ("id", "at", "action", "who", "what", "result", "fields")


class AuditError(Exception):
    """The audit log could not be written or read (disk full, locked, not a database)."""

    code = "audit.failed"


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(row)).encode()).hexdigest()


class AuditLog:
    def __init__(self, path: Path, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._wall = wall_clock
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def audit(self, action: str, **fields: Any) -> int:
        """Append one row; returns its id. ``who``, ``what`` and ``result`` also get their own
        columns for querying; every field must be JSON (str, number, bool, None, list, dict)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")  # another process (a CLI purge) may append too
            last = self._db.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
            prev_id, prev_hash = (int(last[0]), str(last[1])) if last else (0, GENESIS)
            new_id = prev_id + 1
            row: dict[str, Any] = {
                "id": new_id,
                "at": iso_utc(self._wall()),
                "action": action,
                "who": _text(fields.get("who")),
                "what": _text(fields.get("what")),
                "result": _text(fields.get("result")),
                "fields": canonical(fields),
            }
            digest = row_hash(prev_hash, row)
            self._db.execute(
                "INSERT INTO audit_log (id, at, action, who, what, result, fields, prev_hash, hash) "
                "VALUES (:id, :at, :action, :who, :what, :result, :fields, :prev_hash, :hash)",
                {**row, "prev_hash": prev_hash, "hash": digest},
            )
            self._db.execute("COMMIT")
            return new_id
        except (sqlite3.Error, TypeError, ValueError) as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise AuditError(f"cannot append to the audit log {self.path}: {exc}") from exc

    def rows(self) -> list[dict[str, Any]]:
        cur = self._db.execute(f"SELECT {', '.join(COLUMNS)}, prev_hash, hash FROM audit_log ORDER BY id")
        names = [*COLUMNS, "prev_hash", "hash"]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def close(self) -> None:
        self._db.close()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def verify_audit(db_path: Path | str) -> tuple[bool, int | None]:
    """Walk the chain: (True, None) when intact, else (False, id of the first bad row).

    A row is bad when its hash does not match its content, its prev_hash does not
    match the row before, or its id is not the one after the row before (a deletion).
    """
    try:
        db = sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise AuditError(f"cannot open the audit log {db_path}: {exc}") from exc
    try:
        cur = db.execute(f"SELECT {', '.join(COLUMNS)}, prev_hash, hash FROM audit_log ORDER BY id")
        prev_id, prev_hash = 0, GENESIS
        for values in cur:
            row = dict(zip(COLUMNS, values[: len(COLUMNS)], strict=True))
            stored_prev, stored_hash = values[len(COLUMNS)], values[len(COLUMNS) + 1]
            if (
                row["id"] != prev_id + 1
                or stored_prev != prev_hash
                or row_hash(prev_hash, row) != stored_hash
            ):
                return False, int(row["id"])
            prev_id, prev_hash = int(row["id"]), str(stored_hash)
        return True, None
    except sqlite3.Error as exc:
        raise AuditError(f"cannot read the audit log {db_path}: {exc}") from exc
    finally:
        db.close()
