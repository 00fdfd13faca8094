"""An example hotline CTI consumer: tickets from call.ended, recordings for QA.

It uses hotline's asyncio CTI client (``hotline.client``, docs/cti.md) and the standard library:

- the event stream over TCP: the client authenticates and subscribes with ``since`` = the
  last seq this consumer committed, and after a drop (or a hotline restart) reconnects and
  resumes from there, so nothing is lost;
- ``call.ended`` files a ticket row in its own SQLite table;
- ``recording.ready`` downloads ``GET /recordings/<call_id>`` into a QA folder and
  checks the sha256 the event carries.

Each event's work and its seq are committed in one transaction, so a crash
repeats at most the event in hand, and the handlers are idempotent (delivery is
at least once). Run it:

    CTI_TOKEN=... python examples/cti_consumer.py --port 7011 \\
        --http http://127.0.0.1:7080 --db tickets.db --qa-dir qa/
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

from hotline.client import CtiClient, CtiClientError, Event, Gap

log = logging.getLogger("cti_consumer")

SCHEMA = """
CREATE TABLE IF NOT EXISTS consumer_state (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL            -- last_seq: the seq of the last event fully processed
);
CREATE TABLE IF NOT EXISTS tickets (
    call_id       TEXT PRIMARY KEY,   -- one ticket per call, whatever is redelivered
    seq           INTEGER NOT NULL,   -- the call.ended event's seq
    ended_at      TEXT NOT NULL,      -- the event's time, ISO 8601 UTC
    cause         TEXT,
    queue         TEXT,
    agent_id      TEXT,
    talk_seconds  REAL,
    summary       TEXT NOT NULL       -- the event's whole data, as JSON
);
CREATE TABLE IF NOT EXISTS qa_recordings (
    call_id TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL,
    path    TEXT NOT NULL,            -- the file in the QA folder
    sha256  TEXT NOT NULL,
    bytes   INTEGER NOT NULL
);
"""


class ConsumerError(Exception):
    pass


class Consumer:
    def __init__(
        self, *, host: str, port: int, http: str, token: str, db: Path, qa_dir: Path, retry: float = 1.0
    ) -> None:
        self.host, self.port, self.http, self.token = host, port, http.rstrip("/"), token
        self.qa_dir = qa_dir
        self.retry = retry  # seconds between reconnects
        qa_dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(db, isolation_level=None)
        self.db.executescript(SCHEMA)

    @property
    def last_seq(self) -> int | None:
        row = self.db.execute("SELECT value FROM consumer_state WHERE key = 'last_seq'").fetchone()
        return None if row is None else int(row[0])

    async def run(self) -> None:
        """Connect, process, and reconnect forever (cancel to stop)."""
        while True:
            client = CtiClient(
                self.host,
                self.port,
                self.token,
                events=["call.ended", "recording.ready"],
                since=lambda: self.last_seq,  # asked at every (re)connect
                retry_first=self.retry,
                retry_max=max(self.retry, 5.0),
            )
            try:
                await client.connect()
                if self.last_seq is None:  # first run: start from now
                    self.save_seq(client.subscribed_seq or 0)
                async for item in client:
                    if isinstance(item, Gap):
                        log.error("events were lost to retention: %s", item.message)
                        continue
                    await self.handle(item)
                raise ConsumerError(f"the stream ended ({client.closed_reason or 'connection lost'})")
            except (OSError, CtiClientError, ConsumerError) as exc:
                log.warning("disconnected: %s; reconnecting in %.1f s", exc, self.retry)
            finally:
                await client.close()
            await asyncio.sleep(self.retry)

    async def handle(self, event: Event) -> None:
        seq = event.seq
        if self.last_seq is not None and seq <= self.last_seq:
            return  # a redelivery
        is_call_recording = event.name == "recording.ready" and event.data.get("kind") == "call"
        if is_call_recording:
            assert event.call_id is not None
            path, size = await asyncio.to_thread(self.download, event.call_id, event.data["sha256"])
        self.db.execute("BEGIN")
        if event.name == "call.ended":
            data = event.data
            self.db.execute(
                "INSERT OR IGNORE INTO tickets VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.call_id, seq, event.time, data.get("cause"), data.get("queue"),
                    data.get("agent_id"), data.get("talk_seconds"), json.dumps(data, sort_keys=True),
                ),
            )  # fmt: skip
        elif is_call_recording:
            self.db.execute(
                "INSERT OR REPLACE INTO qa_recordings VALUES (?, ?, ?, ?, ?)",
                (event.call_id, seq, str(path), event.data["sha256"], size),
            )
        self.save_seq(seq)
        self.db.execute("COMMIT")

    def save_seq(self, seq: int) -> None:
        self.db.execute(
            "INSERT INTO consumer_state VALUES ('last_seq', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (seq,),
        )

    def download(self, call_id: str, sha256: str) -> tuple[Path, int]:
        """GET /recordings/<call_id> into the QA folder; the file only appears once verified."""
        target = self.qa_dir / f"{call_id}.wav"
        part = target.with_suffix(".part")
        req = urllib.request.Request(
            f"{self.http}/recordings/{call_id}", headers={"Authorization": f"Bearer {self.token}"}
        )
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(req, timeout=30) as resp, part.open("wb") as out:
                while block := resp.read(1 << 16):
                    digest.update(block)
                    out.write(block)
        except urllib.error.HTTPError as exc:
            error = json.loads(exc.read() or b"{}").get("error", {})
            raise ConsumerError(f"recording {call_id}: HTTP {exc.code} {error.get('code')}") from None
        if digest.hexdigest() != sha256:
            part.unlink()
            raise ConsumerError(f"recording {call_id}: sha256 mismatch")
        part.replace(target)
        return target, target.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description="tickets from call.ended, recordings for QA")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7011, help="the CTI TCP port")
    parser.add_argument("--http", default="http://127.0.0.1:7080", help="hotline's HTTP port")
    parser.add_argument("--db", type=Path, default=Path("tickets.db"))
    parser.add_argument("--qa-dir", type=Path, default=Path("qa"))
    args = parser.parse_args()
    token = os.environ.get("CTI_TOKEN")  # not an argument: command lines are visible to every user
    if not token:
        parser.error("set CTI_TOKEN to a token with scope read")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    consumer = Consumer(
        host=args.host, port=args.port, http=args.http, token=token, db=args.db, qa_dir=args.qa_dir
    )
    asyncio.run(consumer.run())


if __name__ == "__main__":
    main()
