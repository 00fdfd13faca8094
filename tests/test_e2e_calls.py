"""Call control over real SIP, decided by the call controller (calls/): secure input while a
caller talks to an agent (call.assist), heard or not heard by the agent's softphone."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import wave
from pathlib import Path
from typing import Any

from aiohttp import web

from .helpers import ROOT, CtiClient, HotlineProcess, free_port
from .peers import Baresip, dial, tone, wav_rms, write_call_pcap
from .test_cti_schema import validate_events

DOB, PIN = "01021980", "4711"

MAIN = """
flow: main
start: agents
nodes:
  agents: {type: queue, queue: sales, hold: {text: "Please hold."}}
"""


async def crm_stub(port: int, seen: list[dict[str, Any]]) -> web.AppRunner:
    """The bank's identity service: the only place the digits may go."""

    async def verify(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        return web.json_response({"verified": body.get("dob") == DOB and body.get("pin") == PIN})

    app = web.Application()
    app.router.add_post("/verify", verify)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def seconds_between(a: dict[str, Any], b: dict[str, Any]) -> float:
    t = [dt.datetime.fromisoformat(e["time"].replace("Z", "+00:00")) for e in (a, b)]
    return (t[1] - t[0]).total_seconds()


async def test_secure_input_during_an_agent_call_is_not_heard_recorded_or_stored(tmp_path: Path) -> None:
    crm_port = free_port()
    seen: list[dict[str, Any]] = []
    crm = await crm_stub(crm_port, seen)
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(MAIN)
    shipped = (ROOT / "flows" / "verify_identity.yaml").read_text()
    (flows / "verify_identity.yaml").write_text(
        shipped.replace("http://127.0.0.1:8089/verify", f"http://127.0.0.1:{crm_port}/verify")
    )
    agent = Baresip(tmp_path, user="1001").start()
    server = HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=[{"id": "1001", "skills": ["sales"], "contact": agent.contact}],
        flows_dir=flows,
    ).start()
    client = await CtiClient.session(server)
    try:
        assert (await client.request("agent.login", agent="1001"))["ok"]
        assert (await client.request("agent.ready", agent="1001"))["ok"]
        # the caller hums a tone all call long and types the date of birth and the PIN
        # while the identity flow asks for them (its prompts take keys while they play)
        audio = tone(30.0)
        pcap = write_call_pcap(tmp_path / "caller.pcap", audio, [(9.0, DOB + "#"), (16.0, PIN + "#")])
        caller = dial(
            server,
            "caller_speech",
            tmp_path,
            keys={"caller": "5550100", "speech_pcap": str(pcap), "talk_ms": 31000},
            timeout=90,
        ).start()
        connected = await client.wait_event("call.connected", timeout=20)
        call_id = connected["call_id"]
        await asyncio.sleep(3.0)  # agent and caller talk: the agent hears the tone
        reply = await client.request("call.assist", call_id=call_id, flow="verify_identity")
        assert reply["ok"], reply
        started = await client.wait_event("call.assist_started", timeout=5)
        done = await client.wait_event("call.assist_done", timeout=40)
        assert done["data"]["variables"]["verified"] is True, done
        assert done["data"]["variables"]["dob"] == "****" and done["data"]["variables"]["pin"] == "****"
        assert done["data"]["variables"]["verify_reason"] == "checked"
        assert seen == [{"caller": "5550100", "dob": DOB, "pin": PIN}]  # the digits reached the CRM only
        assert await asyncio.to_thread(caller.wait, 60) == 0, caller.summary()
        ended = await client.wait_event("call.ended", timeout=20)
        ready = await client.wait_event("recording.ready", timeout=20)
    finally:
        await client.close()
        assert server.stop() == 0
        agent.stop()
        await crm.cleanup()
    validate_events(client.events)

    # the agent heard the caller before and after the assist, and nothing during it
    (heard,) = agent.received_audio()
    assist_from = seconds_between(connected, started)
    assist_to = seconds_between(connected, done)
    assert wav_rms(heard, 0.5, assist_from - 1.0) > 0.05
    assert wav_rms(heard, assist_from + 0.5, assist_to - assist_from - 1.0) < 0.003
    assert wav_rms(heard, assist_to + 1.0, 2.0) > 0.05

    # the recording paused for the secure steps: gaps in the sidecar, the call shorter on file
    sidecar = json.loads(Path(ready["data"]["sidecar"]).read_text())
    gaps = [g for g in sidecar["gaps"] if g["reason"] == "secure_input"]
    assert gaps and all(g["to"] is not None for g in gaps)
    with wave.open(ready["data"]["path"]) as w:
        assert w.getnchannels() == 2
        on_file = w.getnframes() / w.getframerate()
    paused = sum(seconds_between({"time": g["from"]}, {"time": g["to"]}) for g in gaps)
    assert paused > 5.0 and on_file < ended["data"]["talk_seconds"] - paused + 1.0

    # the digits are nowhere: not in an event, the log, the call record or the sidecar
    events_text = json.dumps(client.events)
    db = sqlite3.connect(server.db)
    record = json.dumps(db.execute("SELECT * FROM calls").fetchall())
    outbox = json.dumps(db.execute("SELECT * FROM cti_outbox").fetchall())
    assert '"call.assist_done"' in outbox
    db.close()
    for text in (events_text, server.log_path.read_text(), record, outbox, json.dumps(sidecar)):
        assert DOB not in text and PIN + "#" not in text and f'"{PIN}"' not in text

