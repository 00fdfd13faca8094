"""End to end over real SIP on 127.0.0.1: SIPp callers, SIPp or baresip agents,
the real server process, a real CTI client, the recording and the call record."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .helpers import CtiClient, HotlineProcess, free_port
from .peers import Baresip, Sipp, dial, dtmf_keys
from .test_cti_schema import validate_events

pytestmark = pytest.mark.sip

CAUSAL = [
    "call.offered",
    "call.answered",
    "ivr.input",
    "call.queued",
    "agent.offered",
    "call.connected",
    "call.ended",
]


@pytest.fixture
async def cti(tmp_path: Path) -> AsyncIterator[Any]:
    """Yields a factory: start(agents) -> (server, logged-in CTI client subscribed to everything)."""
    started: list[tuple[HotlineProcess, CtiClient]] = []

    async def start(agents: list[dict[str, Any]]) -> tuple[HotlineProcess, CtiClient]:
        server = HotlineProcess(workdir=tmp_path / "hotline", agents=agents).start()
        client = await CtiClient.session(server)
        for agent in agents:
            assert (await client.request("agent.login", agent=agent["id"]))["ok"]
            assert (await client.request("agent.ready", agent=agent["id"]))["state"] == "available"
        started.append((server, client))
        return server, client

    yield start
    for server, client in started:
        await client.close()
        assert server.stop() == 0, f"unclean shutdown:\n{server.log()}"
        validate_events(client.events)  # every emitted event matches its published schema
        verify = subprocess.run(
            [
                sys.executable,
                "-m",
                "hotline",
                "audit",
                "verify",
                "--config",
                str(server.workdir / "config.toml"),
            ],
            capture_output=True,
            text=True,
        )
        assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr


def agent(agent_id: str, port: int, skills: tuple[str, ...] = ("sales", "support")) -> dict[str, Any]:
    return {"id": agent_id, "skills": list(skills), "contact": f"sip:{agent_id}@127.0.0.1:{port}"}


def events_of(client: CtiClient, call_id: str) -> list[str]:
    return [e["event"] for e in client.events if e["call_id"] == call_id]


def assert_causal(names: list[str], expected: list[str]) -> None:
    positions = [names.index(n) for n in expected]
    assert positions == sorted(positions), f"out of order: {names}"


def channel_rms(path: Path) -> tuple[int, list[float]]:
    with wave.open(str(path), "rb") as w:
        channels = w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels)
    return channels, [float(np.sqrt(np.mean(data[:, c].astype(np.float64) ** 2))) for c in range(channels)]


async def test_call_reaches_agent_with_events_recording_and_record(cti: Any, tmp_path: Path) -> None:
    agent_port = free_port()
    agent_sipp = Sipp("agent_uas", tmp_path, local_port=agent_port, rtp_echo=True).start()
    server, client = await cti([agent("1001", agent_port)])
    caller = dial(
        server,
        "caller_dtmf",
        tmp_path,
        keys={"caller": "5551234", "dtmf_delay": 3500, "talk_ms": 6000, **dtmf_keys("1", tmp_path)},
    ).start()
    assert caller.wait(60) == 0, caller.summary()
    ready = await client.wait_event("recording.ready", timeout=20)
    call_id = ready["call_id"]
    names = events_of(client, call_id)
    assert_causal(names, [*CAUSAL, "recording.ready"])
    # seq has no gaps across the whole stream (we subscribed to everything)
    seqs = [e["seq"] for e in client.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    by_name = {e["event"]: e for e in client.events if e["call_id"] == call_id}
    ivr_input = by_name["ivr.input"]["data"]
    assert (ivr_input["node"], ivr_input["mode"], ivr_input["input"], ivr_input["result"]) == (
        "main_menu",
        "dtmf",
        "1",
        "match",
    )
    assert by_name["call.queued"]["data"]["queue"] == "sales"
    offered = by_name["agent.offered"]["data"]
    assert offered["agent_id"] == "1001"
    assert offered["data"]["ivr_path"] == ["who", "greeting", "main_menu", "sales"]
    ended = by_name["call.ended"]["data"]
    assert ended["cause"] == "caller_hangup" and ended["agent_id"] == "1001"
    assert ended["talk_seconds"] > 3
    states = [
        (e["data"]["from"], e["data"]["to"]) for e in client.events if e["event"] == "agent.state_changed"
    ]
    assert ("available", "reserved") in states and ("reserved", "on_call") in states
    assert ("on_call", "wrap_up") in states
    # the recording: stereo, caller left and agent right, both carrying audio
    path = Path(ready["data"]["path"])
    channels, rms = channel_rms(path)
    assert channels == 2 and ready["data"]["channels"] == 2
    assert min(rms) > 100, f"a silent channel: {rms}"
    assert ready["data"]["seconds"] > 3
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() == ready["data"]["sha256"]
    sidecar = json.loads(Path(ready["data"]["sidecar"]).read_text())
    assert sidecar["call_id"] == call_id and sidecar["sha256"] == ready["data"]["sha256"]
    assert sidecar["channels"] == {"left": "caller", "right": "agent"}
    assert (
        sidecar["agent_id"] == "1001"
        and sidecar["flow_version"] == by_name["call.offered"]["data"]["flow_version"]
    )
    assert [i["input"] for i in sidecar["ivr_inputs"]] == ["1"]
    summary = ended["summary"]  # what a ticketing system pre-fills a ticket from
    assert summary["caller"] == "5551234" and summary["disposition"] == "caller_hangup"
    assert summary["ivr_path"] == ["who", "greeting", "main_menu", "sales"] and summary["agent_id"] == "1001"
    assert summary["talk_seconds"] > 3 and summary["queue"] == "sales"
    # the recording over HTTP, whole and by range, for a read-scope token; every access audited
    import aiohttp

    url = f"http://127.0.0.1:{server.http_port}/recordings/{call_id}"
    auth = {"Authorization": f"Bearer {server.token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=auth) as resp:
            assert resp.status == 200 and await resp.read() == path.read_bytes()
        async with http.get(url, headers={**auth, "Range": "bytes=0-43"}) as resp:
            assert resp.status == 206 and len(await resp.read()) == 44  # the WAV header
        async with http.get(url, headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
    # the call record
    agent_sipp.wait(20)
    row = (
        sqlite3.connect(server.db)
        .execute(
            "SELECT cause, queue, agent_id, recording_sha256, ivr_path FROM calls WHERE call_id = ?",
            (call_id,),
        )
        .fetchone()
    )
    assert row[:4] == ("caller_hangup", "sales", "1001", ready["data"]["sha256"])
    assert "main_menu" in row[4]


async def test_unanswered_agent_then_next_agent_answers(cti: Any, tmp_path: Path) -> None:
    silent_port, answer_port = free_port(), free_port()
    silent = Sipp("agent_noanswer", tmp_path, local_port=silent_port).start()
    answering = Sipp("agent_uas", tmp_path, local_port=answer_port, rtp_echo=True).start()
    # the silent agent has been idle longest, so it is rung first
    server, client = await cti([agent("1001", silent_port), agent("1002", answer_port)])
    caller = dial(
        server,
        "caller_dtmf",
        tmp_path,
        keys={"dtmf_delay": 3500, "talk_ms": 12000, **dtmf_keys("1", tmp_path)},
    ).start()
    connected = await client.wait_event("call.connected", timeout=40)
    assert connected["data"]["agent_id"] == "1002"
    failed = await client.wait_event("agent.offer_failed", agent_id="1001")
    assert failed["data"]["cause"] == "no_answer"
    offers = [e["data"]["agent_id"] for e in client.events if e["event"] == "agent.offered"]
    assert offers == ["1001", "1002"]
    assert connected["data"]["wait_seconds"] >= 6  # the ring timeout of the first agent
    assert caller.wait(60) == 0, caller.summary()
    assert silent.wait(20) == 0, silent.summary()
    assert answering.wait(20) == 0, answering.summary()


async def test_caller_hangs_up_while_queued_is_abandoned(cti: Any, tmp_path: Path) -> None:
    """Over SIP/TCP this time; nobody is logged in, so the caller waits and gives up."""
    server, client = await cti([])
    caller = dial(
        server,
        "caller_hangup_early",
        tmp_path,
        transport="tcp",
        keys={"dtmf_delay": 3500, "hangup_ms": 3000, **dtmf_keys("1", tmp_path)},
    ).start()
    queued = await client.wait_event("call.queued", timeout=20)
    moved = await client.request("queue.set_priority", call_id=queued["call_id"], priority=7)
    assert moved["ok"] and moved["position"] == 1, moved
    changed = await client.wait_event("call.priority_changed")
    assert changed["data"]["priority"] == 7
    assert caller.wait(60) == 0, caller.summary()
    ended = await client.wait_event("call.ended")
    assert ended["data"]["cause"] == "abandoned" and ended["data"]["queue"] == "sales"
    assert ended["data"]["wait_seconds"] >= 2
    abandoned = await client.wait_event("call.abandoned")
    assert abandoned["call_id"] == ended["call_id"]


async def test_sip_info_dtmf_and_baresip_softphone_answers(cti: Any, tmp_path: Path) -> None:
    phone = Baresip(tmp_path, user="1002").start()
    try:
        server, client = await cti([{"id": "1002", "skills": ["support"], "contact": phone.contact}])
        caller = dial(
            server,
            "caller_info_dtmf",
            tmp_path,
            keys={"dtmf_delay": 3500, "digit": 2, "talk_ms": 6000},
        ).start()
        assert caller.wait(60) == 0, caller.summary()
        ready = await client.wait_event("recording.ready", timeout=20)
        names = events_of(client, ready["call_id"])
        assert_causal(names, [*CAUSAL, "recording.ready"])
        queued = next(e for e in client.events if e["event"] == "call.queued")
        assert queued["data"]["queue"] == "support"
        channels, rms = channel_rms(Path(ready["data"]["path"]))
        assert channels == 2 and min(rms) > 100, f"a silent channel: {rms}"
    finally:
        phone.stop()


async def test_blind_transfer_sends_refer_and_ends_our_leg(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "xfer.yaml").write_text(
        "start: hello\nnodes:\n"
        "  hello: {type: play, prompt: beep, next: out}\n"
        '  out: {type: transfer, to: "sip:desk@127.0.0.1:5999"}\n'
    )
    server = HotlineProcess(
        workdir=tmp_path / "hotline", agents=[], flows_dir=flows, main_flow="xfer"
    ).start()
    client = await CtiClient.session(server, events=["call.*"])
    try:
        caller = dial(server, "caller_refer", tmp_path).start()
        assert caller.wait(30) == 0, caller.summary()  # it checked Refer-To and got our BYE
        ended = await client.wait_event("call.ended")
        assert ended["data"]["cause"] == "transferred"
    finally:
        await client.close()
        assert server.stop() == 0


async def test_sigterm_with_calls_up_ends_them_and_exits_cleanly(cti: Any, tmp_path: Path) -> None:
    server, client = await cti([])
    callers = dial(
        server,
        "caller_dtmf",
        tmp_path,
        calls=3,
        rate=10,
        keys={"dtmf_delay": 2500, "talk_ms": 30000, **dtmf_keys("1", tmp_path)},
    ).start()
    await client.wait_for(
        lambda: len([e for e in client.events if e["event"] == "call.queued"]) == 3, 20, "3 queued"
    )
    assert server.stop() == 0, server.log()  # the order: media, calls, account, library
    ended = await client.wait_for(
        lambda: (
            (found := [e for e in client.events if e["event"] == "call.ended"]) and len(found) == 3 and found
        ),
        5,
        "3 call.ended",
    )
    assert [e["data"]["cause"] for e in ended] == ["shutdown"] * 3
    callers.wait(30)  # each caller got our BYE
    assert callers.stats()["SuccessfulCall(C)"] == "3", callers.summary()


async def test_garbage_on_sip_and_cti_does_not_stop_service(cti: Any, tmp_path: Path) -> None:
    import asyncio
    import socket

    agent_port = free_port()
    agent_sipp = Sipp("agent_uas", tmp_path, local_port=agent_port, rtp_echo=True).start()
    server, client = await cti([agent("1001", agent_port)])
    junk = [b"\x00\xff" * 300, b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n", b"SIP/2.0 999 What\r\n\r\n"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for datagram in junk:
            udp.sendto(datagram, ("127.0.0.1", server.sip_port))
    with socket.create_connection(("127.0.0.1", server.sip_port)) as tcp:
        tcp.sendall(b"GARBAGE / HTTP/1.1\r\nContent-Length: -5\r\n\r\n" * 3)
    other = await CtiClient.connect(server.cti_port)
    assert (await other.request("auth", token="not-it"))["error"]["code"] == "cti.auth_failed"
    await other.send_raw(b"{not json\n")
    await other.wait_for(lambda: other.other, 5, "error reply")
    assert other.other[0]["error"]["code"] == "cti.bad_json"
    assert (await other.request("auth", token=server.token))["ok"]  # still usable
    await other.close()
    await asyncio.sleep(0.2)
    caller = dial(
        server,
        "caller_dtmf",
        tmp_path,
        keys={"dtmf_delay": 3000, "talk_ms": 3000, **dtmf_keys("1", tmp_path)},
    ).start()
    assert caller.wait(60) == 0, caller.summary()
    await client.wait_event("call.connected")
    assert agent_sipp.wait(30) == 0, agent_sipp.summary()


def test_ports_in_use_exit_2_with_the_reason(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = HotlineProcess(workdir=tmp_path, agents=[], cti_port=busy.getsockname()[1])
        with pytest.raises(AssertionError) as info:
            server.start()
    assert server.proc.returncode == 2
    assert "a CTI port is in use" in str(info.value) and "change them in [cti]" in str(info.value)


async def test_cti_call_commands_on_a_live_call(cti: Any, tmp_path: Path) -> None:
    port1, port2 = free_port(), free_port()
    sales = Sipp("agent_uas", tmp_path, local_port=port1, rtp_echo=True, name="agent_sales").start()
    support = Sipp("agent_uas", tmp_path, local_port=port2, rtp_echo=True, name="agent_support").start()
    server, client = await cti(
        [
            {**agent("1001", port1, ("sales",)), "wrap_up": 60},  # ended by agent.end_wrap_up below
            {"id": "1002", "skills": ["support"], "contact": f"sip:1002@127.0.0.1:{port2}"},
        ]
    )
    caller = dial(
        server,
        "caller_dtmf",
        tmp_path,
        keys={"dtmf_delay": 3000, "talk_ms": 40000, **dtmf_keys("1", tmp_path)},
    ).start()
    connected = await client.wait_event("call.connected", timeout=30)
    cid = connected["call_id"]
    for cmd, args in [
        ("call.hold", {}),
        ("call.retrieve", {}),
        ("call.recording", {"action": "pause"}),
        ("call.recording", {"action": "resume"}),
        ("call.set_variables", {"variables": {"tier": "gold"}}),
    ]:
        reply = await client.request(cmd, call_id=cid, **args)
        assert reply["ok"], (cmd, reply)
    assert (await client.request("call.recording", call_id=cid, action="stop"))["ok"]
    stopped = await client.wait_event("recording.ready", timeout=20)
    assert (await client.request("call.recording", call_id=cid, action="start"))["ok"]  # a new segment
    assert (await client.request("call.recording", call_id=cid, action="start"))["error"][
        "code"
    ] == "recording.active"
    assert (await client.request("call.answer", call_id=cid))["error"]["code"] == "call.already_answered"
    status = await client.request("queue.status", queue="sales")
    assert status["ok"] and status["waiting"] == [] and "offered" in status["figures"]
    assert (await client.request("call.hangup", call_id="nope"))["error"]["code"] == "call.unknown"
    assert (await client.request("call.transfer", call_id=cid))["error"]["code"] == "cti.bad_request"
    assert (await client.request("agent.end_wrap_up", agent="1002"))["error"]["code"] == "acd.not_in_wrap_up"
    # move the caller to the support queue: agent 1001 is released, 1002 answers
    assert (await client.request("call.transfer", call_id=cid, queue="support"))["ok"]
    await client.wait_event("call.connected", agent_id="1002", timeout=20)
    assert stopped["data"]["path"].endswith(f"{cid}.wav")
    sidecar = json.loads(Path(stopped["data"]["sidecar"]).read_text())
    assert len(sidecar["gaps"]) == 1 and sidecar["gaps"][0]["to"] is not None  # the pause is marked
    await client.wait_for(
        lambda: [
            e
            for e in client.events
            if e["event"] == "recording.ready" and e["data"]["path"].endswith("-2.wav")
        ],
        20,
        "the segment started by command, closed by the transfer",
    )
    assert (await client.request("agent.end_wrap_up", agent="1001"))["state"] == "available"
    assert (await client.request("flow.emergency", on=True))["on"] is True
    await client.wait_event("ivr.emergency_changed")
    assert (await client.request("call.hangup", call_id=cid))["ok"]
    ended = await client.wait_event("call.ended", timeout=20)
    assert ended["data"]["cause"] == "hung_up_by_cti" and ended["data"]["agent_id"] == "1002"
    second = await client.wait_for(
        lambda: [
            e
            for e in client.events
            if e["event"] == "recording.ready" and e["data"]["path"].endswith("-3.wav")
        ],
        20,
        "the third recording segment (agent 1002)",
    )
    assert second[0]["call_id"] == cid
    caller.wait(60)
    for peer in (sales, support):
        assert peer.wait(20) == 0, peer.summary()


async def test_manual_answer_by_cti(tmp_path: Path) -> None:
    server = HotlineProcess(workdir=tmp_path / "hotline", agents=[], auto_answer=False).start()
    client = await CtiClient.session(server, events=["call.*"])
    try:
        caller = dial(
            server,
            "caller_hangup_early",
            tmp_path,
            keys={"dtmf_delay": 1000, "hangup_ms": 1000, **dtmf_keys("1", tmp_path)},
        ).start()
        offered = await client.wait_event("call.offered", timeout=20)
        await asyncio.sleep(1.0)
        assert not [e for e in client.events if e["event"] == "call.answered"]  # still ringing
        assert (await client.request("call.answer", call_id=offered["call_id"]))["ok"]
        await client.wait_event("call.answered", timeout=10)
        assert caller.wait(60) == 0, caller.summary()
    finally:
        await client.close()
        assert server.stop() == 0
