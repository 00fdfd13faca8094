"""The durable outbox: every event is in SQLite before any client sees it.

Writes run on the loop thread, batched per loop iteration: ``append`` queues an
envelope, and one ``executemany`` + commit per iteration makes the batch
durable (WAL, synchronous=NORMAL: it survives a killed process). Only then are
the batch's events fanned out. Reads for ``since`` replay are chunked.
"""

from __future__ import annotations

import contextlib
import json
import json.encoder as json_encoder
import math
import sqlite3
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS cti_outbox (
    seq     INTEGER PRIMARY KEY,   -- server-wide, strictly increasing
    event   TEXT NOT NULL,         -- wire name, e.g. call.ended
    wall    REAL NOT NULL,         -- epoch seconds, for time-based retention
    line    TEXT NOT NULL          -- the exact JSON line sent to clients
);
CREATE TABLE IF NOT EXISTS cti_cursor (
    name    TEXT PRIMARY KEY,      -- a consumer inside the server, e.g. mqtt
    seq     INTEGER NOT NULL       -- the last seq it delivered
);
"""


LOCK_WAIT = 0.2  # seconds a write may wait for the database lock


class OutboxError(Exception):
    """The outbox could not be written (disk full, database locked …)."""

    code = "cti.outbox_failed"


class Outbox:
    def __init__(
        self,
        path: Path,
        *,
        retain_seconds: float,
        retain_events: int,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.retain_seconds = retain_seconds  # events older than this may be purged
        self.retain_events = retain_events  # at most this many are kept
        self._wall = wall_clock
        path.parent.mkdir(parents=True, exist_ok=True)
        # writes run on the event loop: never wait long for a lock another process holds
        # (a failed write keeps its rows in memory and they are written at the next flush)
        self._db = sqlite3.connect(path, timeout=LOCK_WAIT, isolation_level=None, check_same_thread=True)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def last_seq(self) -> int:
        row = self._db.execute("SELECT MAX(seq) FROM cti_outbox").fetchone()
        return int(row[0] or 0)

    def oldest_seq(self) -> int | None:
        row = self._db.execute("SELECT MIN(seq) FROM cti_outbox").fetchone()
        return None if row[0] is None else int(row[0])

    def write(self, rows: list[tuple[int, str, float, str]]) -> None:
        """Make a batch durable: (seq, event, wall, line) rows, in one transaction. Whatever
        fails (the disk, the lock, a value SQLite cannot bind), the transaction is rolled
        back before OutboxError is raised: it is never left open for the next write."""
        try:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO cti_outbox (seq, event, wall, line) VALUES (?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except Exception as exc:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # a failed rollback ends the transaction too
                    self._db.execute("ROLLBACK")
            raise OutboxError(f"cannot write the event outbox {self.path}: {exc}") from exc

    def read_after(self, seq: int, limit: int) -> list[tuple[int, str, str]]:
        """Up to ``limit`` (seq, event, line) rows with seq > ``seq``, in order."""
        cur = self._db.execute(
            "SELECT seq, event, line FROM cti_outbox WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [(int(s), str(e), str(line)) for s, e, line in cur.fetchall()]

    def recent(self, since_wall: float, events: Collection[str]) -> list[tuple[int, str, float, str]]:
        """(seq, event, wall, line) rows named in ``events`` and written at or after
        ``since_wall`` (epoch seconds), oldest first. Walks back from the newest row by seq
        and stops at the first older one, so it reads only the recent tail (start-up
        recovery asks about the calls a killed run left open)."""
        rows: list[tuple[int, str, float, str]] = []
        cur = self._db.execute("SELECT seq, event, wall, line FROM cti_outbox ORDER BY seq DESC")
        for seq, event, wall, line in cur:
            if wall < since_wall:
                break
            if event in events:
                rows.append((int(seq), str(event), float(wall), str(line)))
        cur.close()
        rows.reverse()
        return rows

    def last_wall(self) -> float | None:
        """When the newest event was written (epoch seconds), or None when there is none."""
        row = self._db.execute("SELECT wall FROM cti_outbox ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def cursor(self, name: str) -> int:
        """Where an internal consumer left off; a new one starts at the newest event."""
        row = self._db.execute("SELECT seq FROM cti_cursor WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row is not None else self.last_seq()

    def save_cursor(self, name: str, seq: int) -> None:
        try:
            self._db.execute(
                "INSERT INTO cti_cursor (name, seq) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
                (name, seq),
            )
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot save the {name} cursor in {self.path}: {exc}") from exc

    def purge(self) -> int:
        """Apply retention; returns how many events were dropped. The newest event is always kept,
        so the seq counter survives a restart."""
        cutoff = self._wall() - self.retain_seconds
        last = self.last_seq()
        cur = self._db.execute(
            "DELETE FROM cti_outbox WHERE seq < ? AND (wall < ? OR seq <= ?)",
            (last, cutoff, last - self.retain_events),
        )
        return cur.rowcount

    def close(self) -> None:
        self._db.close()


def _not_serializable(obj: object) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# json.dumps(envelope, separators=(",", ":"), ensure_ascii=False), without building an encoder
# for every event (json.dumps does, given options): this runs once per event, at 50,000 a second.
# No circular-reference check: an envelope holds fresh dicts and lists made by events.envelope.
# (The C encoder is private to the json module, and absent from typeshed: found with getattr.)
_make_c_encoder = getattr(json_encoder, "c_make_encoder", None)
_c_escape = getattr(json_encoder, "c_encode_basestring", None)
# allow_nan=False: NaN and Infinity are not JSON; an event holding one is repaired (see below)
_c_encoder: Any = (
    None
    if _make_c_encoder is None or _c_escape is None
    else _make_c_encoder(None, _not_serializable, _c_escape, None, ":", ",", False, False, False)
)
_py_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def encode_line(envelope: dict[str, Any]) -> str:
    """The envelope as one JSON line (no newline): compact, UTF-8 kept as is. Raises
    TypeError or ValueError for what JSON cannot hold (an object, NaN); the line may still
    hold a lone surrogate, which :func:`safe_line` catches."""
    if _c_encoder is None:
        return _py_encode(envelope)
    return "".join(_c_encoder(envelope, 0))


def safe_line(envelope: dict[str, Any]) -> tuple[str, dict[str, Any], str | None]:
    """(line, envelope, problem): the JSON line of ``envelope``, which always encodes to
    UTF-8 and always parses. An envelope that cannot be written as it is (a lone surrogate
    from undecodable bytes, NaN, an object JSON does not know) is repaired with
    :func:`json_safe`; the repaired envelope and what was wrong come back with it.
    Costs one ``isascii`` scan for the usual all-ASCII line."""
    try:
        line = encode_line(envelope)
        if not line.isascii():
            line.encode("utf-8")  # a lone surrogate raises here, not in SQLite or a socket
        return line, envelope, None
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        repaired = json_safe(envelope)
        return encode_line(repaired), repaired, f"{type(exc).__name__}: {exc}"


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that JSON and UTF-8 take: lone surrogates become ``\\udcf9``
    escapes in the text, NaN and infinities become null, unknown objects their ``str``."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return json_safe(str(value))
