"""examples/cti_consumer.py against a real CtiServer and HTTP port, fed synthetic events
(no SIP): tickets and QA recordings, exactly once, across a server restart."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cti_bridge

from .helpers import ROOT

spec = importlib.util.spec_from_file_location("cti_consumer", ROOT / "examples" / "cti_consumer.py")
assert spec is not None and spec.loader is not None
cti_consumer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cti_consumer)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded:  # the fields the consumer reads, as documented for call.ended
    wire: ClassVar[str] = "call.ended"
    call_id: str
    cause: str
    queue: str | None
    agent_id: str | None
    talk_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingReady:
    wire: ClassVar[str] = "recording.ready"
    call_id: str
    kind: str
    path: str
    seconds: float
    channels: int
    sha256: str


async def no_control(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    raise cti_bridge.CtiError("cti.unknown_command", cmd)


class Hotline:
    """Just the CTI side of hotline: outbox, bus, TCP and HTTP on fixed ports across restarts."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.recordings = tmp, tmp / "recordings"
        self.recordings.mkdir()
        self.port = self.http_port = 0

    async def start(self) -> None:
        self.outbox = cti_bridge.Outbox(self.tmp / "hotline.db", retain_seconds=3600, retain_events=10**6)
        self.bus = cti_bridge.EventBus(outbox=self.outbox)
        self.audit = cti_bridge.AuditLog(self.tmp / "hotline.db")
        self.server = cti_bridge.build_cti(
            self.bus, [cti_bridge.Token("qa", "qa-token")], no_control, host="127.0.0.1",
            port=self.port, http_port=self.http_port, audit=self.audit,
            recordings=lambda call_id: self.recordings / f"{call_id}.wav",
        )  # fmt: skip
        await self.server.start()
        self.port, self.http_port = self.server.port or 0, self.server.http_port or 0

    async def stop(self) -> None:
        await self.server.stop()
        self.outbox.close()
        self.audit.close()

    def call(self, call_id: str) -> None:
        wav = self.recordings / f"{call_id}.wav"
        wav.write_bytes(b"RIFF" + call_id.encode() * 1000)
        self.bus.publish(CallEnded(call_id=call_id, cause="agent_hangup", queue="sales", agent_id="1001",
                                   talk_seconds=42.5))  # fmt: skip
        digest = hashlib.sha256(wav.read_bytes()).hexdigest()
        self.bus.publish(RecordingReady(call_id=call_id, kind="call", path=str(wav), seconds=1.0,
                                        channels=2, sha256=digest))  # fmt: skip
        self.bus.flush()


async def until(predicate: Any, timeout: float = 10.0) -> Any:
    for _ in range(int(timeout / 0.02)):
        if value := predicate():
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {predicate}")


async def test_the_example_consumer_files_tickets_and_fetches_recordings_across_a_restart(
    tmp_path: Path,
) -> None:
    hotline = Hotline(tmp_path)
    await hotline.start()
    hotline.call("before-start")  # already happened when the consumer first connects: not its business
    db = tmp_path / "consumer.db"
    consumer = cti_consumer.Consumer(
        host="127.0.0.1", port=hotline.port, http=f"http://127.0.0.1:{hotline.http_port}",
        token="qa-token", db=db, qa_dir=tmp_path / "qa", retry=0.1,
    )  # fmt: skip
    task = asyncio.create_task(consumer.run())
    await until(lambda: consumer.last_seq == 2)
    hotline.call("c1")
    await until(lambda: consumer.last_seq == 4)

    await hotline.stop()  # the consumer is cut off ...
    await hotline.start()  # ... events happen before it reconnects ...
    hotline.call("c2")
    hotline.call("c3")
    await until(lambda: consumer.last_seq == 8)  # ... and it resumes from its saved seq
    task.cancel()

    with sqlite3.connect(db) as conn:
        tickets = conn.execute("SELECT call_id, seq, cause, queue, talk_seconds FROM tickets ORDER BY seq")
        assert tickets.fetchall() == [
            ("c1", 3, "agent_hangup", "sales", 42.5),
            ("c2", 5, "agent_hangup", "sales", 42.5),
            ("c3", 7, "agent_hangup", "sales", 42.5),
        ]
        qa = conn.execute("SELECT call_id, path, sha256 FROM qa_recordings ORDER BY seq").fetchall()
    assert [row[0] for row in qa] == ["c1", "c2", "c3"]
    for call_id, path, sha256 in qa:
        assert Path(path).read_bytes() == (hotline.recordings / f"{call_id}.wav").read_bytes()
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha256
    assert not list((tmp_path / "qa").glob("*.part"))
    # each download is in the audit log, under the token's name, and the chain holds
    with sqlite3.connect(tmp_path / "hotline.db") as conn:
        rows = conn.execute("SELECT who, what, result FROM audit_log ORDER BY id").fetchall()
    assert rows == [("qa", c, "ok") for c in ("c1", "c2", "c3")]
    assert cti_bridge.verify_audit(tmp_path / "hotline.db") == (True, None)
    await hotline.stop()
