"""Call records in SQLite (aiosqlite). Writes go through one queue, in order."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

log = structlog.get_logger("store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id          TEXT PRIMARY KEY,
    sip_call_id      TEXT,
    caller           TEXT,               -- caller's number (user part of From)
    from_uri         TEXT,
    to_uri           TEXT,
    flow             TEXT,
    flow_version     TEXT,               -- sha256 prefix of the flow file
    started_at       TEXT NOT NULL,      -- ISO 8601 UTC
    ended_at         TEXT,
    cause            TEXT,               -- see docs/cti.md, call.ended
    queue            TEXT,
    agent_id         TEXT,
    ivr_seconds      REAL,
    wait_seconds     REAL,
    talk_seconds     REAL,
    total_seconds    REAL,
    ivr_path         TEXT,               -- JSON list of node names
    inputs           TEXT,               -- JSON list of IVR inputs
    recording_path   TEXT,
    recording_sha256 TEXT,
    survey           TEXT,               -- JSON: question -> score 1-5
    service_code     TEXT,               -- the speakable code callers and agents quote
    disposition      TEXT,               -- the agent's wrap-up code (agent.disposition)
    disposition_note TEXT                -- the agent's note with it
);
"""

INTERVALS = """
CREATE TABLE IF NOT EXISTS queue_intervals (
    queue   TEXT NOT NULL,
    start   REAL NOT NULL,   -- epoch seconds, on an interval boundary
    "end"   REAL NOT NULL,   -- epoch seconds
    data    TEXT NOT NULL,   -- JSON: every figure of acd.IntervalRow
    PRIMARY KEY (queue, start)
);
CREATE TABLE IF NOT EXISTS agent_intervals (
    agent_id TEXT NOT NULL,
    start    REAL NOT NULL,
    "end"    REAL NOT NULL,
    data     TEXT NOT NULL,  -- JSON: every figure of acd.AgentIntervalRow
    PRIMARY KEY (agent_id, start)
);
"""

CALLBACKS = """
CREATE TABLE IF NOT EXISTS pending_callbacks (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    records TEXT NOT NULL          -- JSON list of acd.CallbackRecord, in line order
);
"""

# columns added after a database was first created: (name, SQL type)
MIGRATIONS = [
    ("survey", "TEXT"),
    ("service_code", "TEXT"),
    ("disposition", "TEXT"),
    ("disposition_note", "TEXT"),
]

COLUMNS = {
    "sip_call_id",
    "caller",
    "from_uri",
    "to_uri",
    "flow",
    "flow_version",
    "started_at",
    "ended_at",
    "cause",
    "queue",
    "agent_id",
    "ivr_seconds",
    "wait_seconds",
    "talk_seconds",
    "total_seconds",
    "ivr_path",
    "inputs",
    "recording_path",
    "recording_sha256",
    "survey",
    "service_code",
    "disposition",
    "disposition_note",
}


# Every aiosqlite connection here runs in autocommit (isolation_level=None): a write
# transaction must never stay open across an await, or a synchronous writer on the
# loop thread (the event outbox, the audit log) would wait on a lock that only the
# blocked loop could release.


class CallStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # a write, a future to resolve once every earlier write is applied, or None to stop
        self._writes: asyncio.Queue[tuple[str, tuple[Any, ...]] | asyncio.Future[None] | None] = (
            asyncio.Queue()
        )
        self._writer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.executescript(SCHEMA + INTERVALS + CALLBACKS)
        async with self._db.execute("PRAGMA table_info(calls)") as cur:
            have = {row[1] for row in await cur.fetchall()}
        for name, sqltype in MIGRATIONS:
            if name not in have:
                await self._db.execute(f"ALTER TABLE calls ADD COLUMN {name} {sqltype}")
        await self._db.commit()
        self._writer = asyncio.create_task(self._write_loop())

    async def close(self) -> None:
        if self._writer is not None:
            await self._writes.put(None)
            await self._writer
            self._writer = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _write_loop(self) -> None:
        assert self._db is not None
        while (item := await self._writes.get()) is not None:
            if isinstance(item, asyncio.Future):
                item.set_result(None)
                continue
            sql, args = item
            try:
                await self._db.execute(sql, args)
                await self._db.commit()
            except Exception as exc:  # a full disk must not stop the calls
                log.error("call_record_write_failed", error=str(exc), sql=sql.split("(")[0])

    def insert(self, call_id: str, **fields: Any) -> None:
        """Queue the insert of a new call's record."""
        cols = ["call_id", *self._check(fields)]
        sql = f"INSERT INTO calls ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        self._writes.put_nowait((sql, (call_id, *self._values(fields))))

    def update(self, call_id: str, **fields: Any) -> None:
        """Queue an update of fields of an existing record."""
        sets = ", ".join(f"{c} = ?" for c in self._check(fields))
        self._writes.put_nowait(
            (f"UPDATE calls SET {sets} WHERE call_id = ?", (*self._values(fields), call_id))
        )

    @staticmethod
    def _check(fields: dict[str, Any]) -> list[str]:
        unknown = set(fields) - COLUMNS
        if unknown or not fields:
            raise ValueError(f"bad call record fields: {sorted(unknown) or 'none given'}")
        return list(fields)

    @staticmethod
    def _values(fields: dict[str, Any]) -> list[Any]:
        return [json.dumps(v) if isinstance(v, list | dict) else v for v in fields.values()]

    def save_intervals(self, table: str, key: str, rows: list[dict[str, Any]]) -> None:
        """Queue roll-up rows (queue_intervals by queue, agent_intervals by agent_id)."""
        assert table in ("queue_intervals", "agent_intervals") and key in ("queue", "agent_id")
        for row in rows:
            sql = f'INSERT OR REPLACE INTO {table} ({key}, start, "end", data) VALUES (?, ?, ?, ?)'
            self._writes.put_nowait((sql, (row[key], row["start"], row["end"], json.dumps(row))))

    def save_callbacks(self, records: list[dict[str, Any]]) -> None:
        """Replace the saved pending callbacks (written in order with the other writes)."""
        sql = "INSERT OR REPLACE INTO pending_callbacks (id, records) VALUES (1, ?)"
        self._writes.put_nowait((sql, (json.dumps(records),)))

    async def load_callbacks(self) -> list[dict[str, Any]]:
        assert self._db is not None
        async with self._db.execute("SELECT records FROM pending_callbacks WHERE id = 1") as cur:
            row = await cur.fetchone()
        return list(json.loads(row[0])) if row is not None else []

    async def flush(self) -> None:
        """Wait until every queued write is applied (tests, shutdown)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writes.put_nowait(done)
        await done

    async def open_calls(self) -> list[dict[str, Any]]:
        """Every call whose record has no end: at start-up, the calls a killed run left open."""
        assert self._db is not None
        self._db.row_factory = aiosqlite.Row
        async with self._db.execute("SELECT * FROM calls WHERE ended_at IS NULL ORDER BY started_at") as cur:
            return [dict(row) for row in await cur.fetchall()]

    async def get(self, call_id: str) -> dict[str, Any] | None:
        assert self._db is not None
        self._db.row_factory = aiosqlite.Row
        async with self._db.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)) as cur:
            row = await cur.fetchone()
        return dict(row) if row is not None else None
