"""Faults and bad input against the real server (issue 11): bytes that are not UTF-8 in SIP
headers, kill -9 under SIPp load with a restart, and an INVITE flood."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from .helpers import CtiClient, HotlineProcess
from .rawsip import RawSip

pytestmark = pytest.mark.sip

AGENTS = [{"id": "1001", "contact": "sip:1001@127.0.0.1:9", "skills": ["sales", "support"]}]


def contiguous(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def call_rows(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM calls ORDER BY started_at")]


async def test_bytes_that_are_not_utf8_in_sip_headers_lose_no_event_and_no_call_record(
    tmp_path: Path,
) -> None:
    """Defect 1: `Call-ID: fz69\\xf9a7@fuzz` made EventBus.flush raise UnicodeEncodeError; the
    outbox transaction stayed open, the event was missing from the outbox and the live
    stream (seq jumped), the call had no `calls` row, and a later `since=0` replayed nothing."""
    server = HotlineProcess(workdir=tmp_path, agents=AGENTS).start()
    try:
        cti = await CtiClient.session(server)
        sip = RawSip(("127.0.0.1", server.sip_port))
        calls = [
            {"call_id": b"fz69\xf9a7@fuzz"},  # the reproduction
            {"display": b"Bj\xf6rn \xff\x00", "call_id": b"ctl\x01\x7f-" + b"\xc3" + b"@fuzz"},
            {},  # a plain call after the bad ones
        ]
        for invite in calls:
            d = await asyncio.to_thread(sip.call, **invite)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(sip.hang_up, d)
        await cti.wait_for(
            lambda: len([e for e in cti.events if e["event"] == "call.ended"]) == 3, 10, "3 call.ended"
        )
        live = [e["seq"] for e in cti.events]
        assert contiguous(live), live
        offered = [e["data"] for e in cti.events if e["event"] == "call.offered"]
        assert [o["sip_call_id"] for o in offered[:2]] == ["fz69\\xf9a7@fuzz", "ctl\\x01\\x7f-\\xc3@fuzz"]
        assert offered[1]["from_uri"].startswith('"Bj\\xf6rn \\xff\\x00" <sip:5550100@')

        replay = await CtiClient.connect(server.cti_port)
        assert (await replay.request("auth", token=server.token))["ok"]
        reply = await replay.request("subscribe", events=["*"], since=0)
        assert reply["ok"], reply
        await replay.wait_for(lambda: len(replay.events) == reply["seq"], 10, "the whole replay")
        everything = [e["seq"] for e in replay.events]
        assert everything == list(range(1, reply["seq"] + 1))
        assert {e["seq"]: e for e in replay.events if e["seq"] in live} == {e["seq"]: e for e in cti.events}
        await cti.close()
        await replay.close()
    finally:
        assert server.stop() == 0
    rows = call_rows(server.db)
    assert [r["sip_call_id"] for r in rows[:2]] == ["fz69\\xf9a7@fuzz", "ctl\\x01\\x7f-\\xc3@fuzz"]
    assert len(rows) == 3 and all(r["ended_at"] and r["cause"] == "caller_hangup" for r in rows)
    problems = [e for e in server.log_events() if e.get("level") == "error"]
    assert not problems, problems
    assert "Traceback" not in server.log()
