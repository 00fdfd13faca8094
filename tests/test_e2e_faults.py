"""Faults and bad input against the real server (issue 11): bytes that are not UTF-8 in SIP
headers, kill -9 under SIPp load with a restart, and an INVITE flood."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .helpers import CtiClient, HotlineProcess, free_port
from .peers import SIP_DIR, Sipp, dial, dtmf_keys
from .rawsip import RawSip
from .test_cti_schema import validate_events

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


async def test_kill_9_under_load_then_restart_leaves_no_open_call_and_no_broken_recording(
    tmp_path: Path,
) -> None:
    """Defect 2: after kill -9 every call in progress kept ended_at and cause NULL forever, no
    call.ended was sent, and recordings/.parts/* kept RIFF and data sizes of 0. Five SIPp
    callers press 1 for sales; three agents (one SIPp answering for all) take three of them,
    recorded; two wait in line. kill -9, restart on the same database and ports."""
    agent_port = free_port()
    agents = [
        {"id": aid, "skills": ["sales"], "contact": f"sip:{aid}@127.0.0.1:{agent_port}"}
        for aid in ("1001", "1002", "1003")
    ]
    phones = Sipp("agent_uas", tmp_path, local_port=agent_port, rtp_echo=True, calls=3, timeout=120).start()
    server = HotlineProcess(workdir=tmp_path / "hotline", agents=agents).start()
    callers: Sipp | None = None
    try:
        cti = await CtiClient.session(server)
        for a in agents:
            assert (await cti.request("agent.login", agent=a["id"]))["ok"]
            assert (await cti.request("agent.ready", agent=a["id"]))["ok"]
        callers = dial(
            server,
            "caller_dtmf",
            tmp_path,
            calls=5,
            rate=5,
            timeout=120,
            keys={"dtmf_delay": 2500, "talk_ms": 60000, **dtmf_keys("1", tmp_path)},
        ).start()
        connected = await cti.wait_for(
            lambda: (c := [e for e in cti.events if e["event"] == "call.connected"]) and len(c) == 3 and c,
            40,
            "three calls connected",
        )
        await cti.wait_for(
            lambda: len([e for e in cti.events if e["event"] == "call.queued"]) == 5, 20, "five calls queued"
        )
        await asyncio.sleep(2.5)  # the recorders write audio
        parts = sorted((server.recordings / ".parts").glob("*.wav"))
        assert len(parts) == 6, parts
        server.kill()
        before = max(e["seq"] for e in cti.events)
        await cti.close()
    finally:
        if callers is not None:
            callers.stop()
        phones.stop()
    with sqlite3.connect(server.db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM calls WHERE ended_at IS NULL").fetchone()[0] == 5

    server.start()  # the same database, recordings and ports
    try:
        replay = await CtiClient.connect(server.cti_port)
        assert (await replay.request("auth", token=server.token))["ok"]
        reply = await replay.request("subscribe", events=["*"], since=0)
        assert reply["ok"], reply
        await replay.wait_for(
            lambda: len([e for e in replay.events if e["event"] == "recording.ready"]) == 3,
            20,
            "three repaired recordings",
        )
        seqs = [e["seq"] for e in replay.events]
        assert seqs == list(range(1, seqs[-1] + 1)) and seqs[-1] > before  # a replay with no gap
        validate_events(replay.events)
        offered = {e["call_id"] for e in replay.events if e["event"] == "call.offered"}
        ended = {e["call_id"]: e["data"] for e in replay.events if e["event"] == "call.ended"}
        assert len(offered) == 5 and set(ended) == offered
        assert {d["cause"] for d in ended.values()} == {"server_lost"}
        talking = {e["data"]["agent_id"]: e["call_id"] for e in connected}
        for call_id in talking.values():
            assert ended[call_id]["talk_seconds"] >= 2 and ended[call_id]["agent_id"] in talking
        ready = [e for e in replay.events if e["event"] == "recording.ready"]
        assert {e["call_id"] for e in ready} == set(talking.values())
        for e in ready:
            data = e["data"]
            assert data["repaired"] is True and data["channels"] == 2 and data["seconds"] >= 2
            with wave.open(data["path"]) as w:
                assert w.getnchannels() == 2 and w.getnframes() == round(data["seconds"] * w.getframerate())
                audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
            assert np.abs(audio[:, 0]).max() > 100, "the caller's channel lost its audio"
            sidecar = json.loads(Path(data["sidecar"]).read_text())
            assert sidecar["repaired"] is True and sidecar["sha256"] == data["sha256"]
        assert not list((server.recordings / ".parts").glob("*.wav"))
        with sqlite3.connect(server.db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM calls WHERE ended_at IS NULL").fetchone()[0] == 0
            recorded = conn.execute(
                "SELECT COUNT(*) FROM calls WHERE recording_sha256 IS NOT NULL"
            ).fetchone()[0]
        assert recorded == 3
        await replay.close()
    finally:
        assert server.stop() == 0
    recovered = [e for e in server.log_events() if e["event"] == "recovered_previous_run"]
    assert len(recovered) == 1 and recovered[0]["calls_closed"] == 5


def legit_calls(port: int, stop: threading.Event, every: float) -> list[tuple[int | None, float]]:
    """Calls from 127.0.0.2 until ``stop``: (final code, INVITE-to-final seconds) each."""
    out: list[tuple[int | None, float]] = []
    sip = RawSip(("127.0.0.1", port), host="127.0.0.2")
    try:
        while not stop.is_set():
            t0 = time.monotonic()
            d = sip.invite(user=b"5550123")
            r = sip.wait(d, range(200, 700), 5.0)
            out.append((r.code if r else None, time.monotonic() - t0))
            if r is not None and r.code == 200:
                sip.ack(d)
                sip.hang_up(d)
            stop.wait(every)
    finally:
        sip.close()
    return out


async def test_a_legitimate_caller_gets_through_during_an_invite_flood(tmp_path: Path) -> None:
    """Defect 3: INVITEs never ACKed from one address filled max_calls; real callers got 486
    for 45-55 s after the flood. Here 600 INVITEs at 150/s from 127.0.0.3 against
    max_calls = 200, while another address places calls (raw SIP, and a SIPp caller with
    media): every one is answered at once, during the flood."""
    server = HotlineProcess(workdir=tmp_path / "hotline", agents=AGENTS, sip_options={"max_calls": 200})
    server.start()
    try:
        cti = await CtiClient.session(server)
        stop = threading.Event()
        legit = asyncio.create_task(asyncio.to_thread(legit_calls, server.sip_port, stop, 0.25))
        flood = Sipp(
            SIP_DIR / "flood_invite.xml",
            tmp_path,
            remote=f"127.0.0.1:{server.sip_port}",
            service="hotline",
            calls=600,
            rate=150,
            local_host="127.0.0.3",
        ).start()
        await asyncio.sleep(1.5)  # well into the flood
        sipp_caller = dial(
            server,
            "caller_hangup_early",
            tmp_path,
            local_host="127.0.0.2",
            keys={"dtmf_delay": 500, "hangup_ms": 500, **dtmf_keys("1", tmp_path)},
        ).start()
        assert await asyncio.to_thread(flood.wait, 30) == 0, flood.summary()
        stop.set()
        results = await legit
        assert await asyncio.to_thread(sipp_caller.wait, 30) == 0, sipp_caller.summary()
        assert len(results) >= 10, results
        refused = [r for r in results if r[0] != 200]
        assert not refused, f"legitimate calls refused during the flood: {refused}"
        assert max(seconds for _, seconds in results) < 1.0, results
        # the flood's admitted calls are given up when their ACK does not come
        no_ack = await cti.wait_for(
            lambda: [e for e in cti.events if e["event"] == "call.ended" and e["data"]["cause"] == "no_ack"],
            15,
            "flood calls ended for want of an ACK",
        )
        assert all(e["data"]["sip_code"] == 408 for e in no_ack)
        flood_calls = {
            e["call_id"]
            for e in cti.events
            if e["event"] == "call.offered" and e["data"]["caller"] == "flood"
        }
        assert 0 < len(flood_calls) <= 60, "admission let through more than 20 unconfirmed at a time"
        assert (await cti.request("ping"))["ok"]
        await cti.close()
    finally:
        assert server.stop() == 0
    logs = server.log_events()
    limited = [e for e in logs if e["event"] == "sip_source_limited"]
    assert [(e["source"], e["limit"]) for e in limited] == [("127.0.0.3", "unconfirmed")]  # said at once
    refused = [e for e in logs if e["event"] == "sip_source_refused"]  # then counted, once per period
    assert {e["source"] for e in refused} == {"127.0.0.3"} and sum(e["refused"] for e in refused) >= 500
