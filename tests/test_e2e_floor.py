"""The floor over real SIP, checked by ear: each party (a baresip softphone) sends its own tone
and records what it hears; who hears whom in each monitoring mode, during a consultation, a
conference and after an attended transfer is measured from those recordings, not from events."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from .helpers import ROOT, CtiClient, HotlineProcess
from .peers import Baresip, tone_level, tone_level_right, write_tone_wav
from .test_cti_schema import validate_events

MAIN = """
flow: main
start: agents
nodes:
  agents: {type: queue, queue: sales, hold: {text: "Please hold."}}
"""
CALLER, AGENT, OTHER = 450.0, 700.0, 1100.0  # each party's tone, Hz
HEARD, SILENT = 0.04, 0.012  # tone amplitude (0..1; each sends 0.3) heard / not heard


def at(event: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()


def phone(tmp: Path, user: str, freq: float) -> Baresip:
    wav = write_tone_wav(tmp / f"{user}.wav", 150.0, freq=freq)
    return Baresip(tmp, user=user, audio=wav).start()


def server_for(tmp: Path, agents: list[dict[str, Any]]) -> HotlineProcess:
    flows = tmp / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(MAIN)
    return HotlineProcess(
        workdir=tmp / "hotline",
        agents=agents,
        flows_dir=flows,
        queues=[
            {"name": "sales", "skills": ["sales"], "wrap_up": 30, "dispositions": ["resolved", "escalated"]},
            {"name": "support", "skills": ["support"]},
            {"name": "operator"},
        ],
    ).start()


def levels(path: Path, start: float, seconds: float = 1.6) -> dict[str, float]:
    """Each party's tone in a recording's window (the window's middle part of a period)."""
    return {
        name: round(tone_level(path, f, start, seconds), 4)
        for name, f in (("caller", CALLER), ("agent", AGENT), ("other", OTHER))
    }


def heard(lv: dict[str, float], *names: str) -> bool:
    return all(lv[n] > HEARD for n in names)


def silent(lv: dict[str, float], *names: str) -> bool:
    return all(lv[n] < SILENT for n in names)


async def connect_call(server: HotlineProcess, client: CtiClient, caller: Baresip) -> dict[str, Any]:
    assert (await client.request("agent.login", agent="1001"))["ok"]
    assert (await client.request("agent.ready", agent="1001"))["ok"]
    caller.command(f"/dial sip:hotline@127.0.0.1:{server.sip_port}")
    answered = await client.wait_event("call.answered", timeout=15)
    connected = await client.wait_event("call.connected", timeout=20)
    return {"answered": answered, "connected": connected, "call_id": connected["call_id"]}


async def test_listen_whisper_barge_are_heard_by_the_right_parties(tmp_path: Path) -> None:
    caller, agent, boss = (
        phone(tmp_path, "5550100", CALLER),
        phone(tmp_path, "1001", AGENT),
        phone(tmp_path, "1009", OTHER),
    )
    server = server_for(
        tmp_path,
        [
            {"id": "1001", "skills": ["sales"], "contact": agent.contact},
            {"id": "1009", "name": "Supervisor", "contact": boss.contact},
        ],
    )
    client = await CtiClient.session(server)
    marks: dict[str, float] = {}
    try:
        call = await connect_call(server, client, caller)
        cid = call["call_id"]
        await asyncio.sleep(1.5)
        reply = await client.request("call.monitor", call_id=cid, supervisor="1009", mode="listen")
        assert reply["ok"], reply
        started = await client.wait_event("supervisor.monitor_started", timeout=15)
        marks["listen"] = at(started)
        for mode in ("whisper", "barge"):
            await asyncio.sleep(3.0)
            assert (await client.request("call.monitor_mode", call_id=cid, mode=mode))["ok"]
            marks[mode] = at(await client.wait_event("supervisor.monitor_changed", mode=mode))
        await asyncio.sleep(3.0)
        assert (await client.request("call.monitor_stop", call_id=cid))["ok"]
        marks["stopped"] = at(await client.wait_event("supervisor.monitor_ended", reason="stopped"))
        await asyncio.sleep(3.0)
        caller.command("/hangup")
        ended = await client.wait_event("call.ended", timeout=15)
        ready = await client.wait_event("recording.ready", timeout=20)
    finally:
        await client.close()
        assert server.stop() == 0
        for p in (caller, agent, boss):
            p.stop()
    validate_events(client.events)

    origin = {
        "caller": at(call["answered"]),
        "agent": at(call["connected"]),
        "supervisor": marks["listen"],
    }
    files = {
        "caller": caller.received_audio()[0],
        "agent": agent.received_audio()[0],
        "supervisor": boss.received_audio()[0],
    }

    def window(party: str, period: str) -> dict[str, float]:
        return levels(files[party], marks[period] - origin[party] + 0.7)

    got = {(p, m): window(p, m) for p in files for m in ("listen", "whisper", "barge")}
    got.update({(p, "stopped"): window(p, "stopped") for p in ("caller", "agent")})
    report = json.dumps({f"{p}/{m}": v for (p, m), v in got.items()}, indent=1)
    # listen: the supervisor hears both; nobody hears the supervisor
    assert heard(got["supervisor", "listen"], "caller", "agent"), report
    assert silent(got["agent", "listen"], "other") and silent(got["caller", "listen"], "other"), report
    # whisper: the agent hears the supervisor, the caller does not
    assert heard(got["supervisor", "whisper"], "caller", "agent"), report
    assert heard(got["agent", "whisper"], "other", "caller"), report
    assert silent(got["caller", "whisper"], "other") and heard(got["caller", "whisper"], "agent"), report
    # barge: everyone hears everyone
    assert heard(got["supervisor", "barge"], "caller", "agent"), report
    assert heard(got["agent", "barge"], "other", "caller"), report
    assert heard(got["caller", "barge"], "other", "agent"), report
    # stopped: the supervisor is gone, caller and agent still talk
    assert silent(got["agent", "stopped"], "other") and silent(got["caller", "stopped"], "other"), report
    assert heard(got["agent", "stopped"], "caller") and heard(got["caller", "stopped"], "agent"), report

    # the recording: caller left, agent right; the supervisor is on the right only while barging
    wav, rec0 = Path(ready["data"]["path"]), at(call["connected"])
    right = {
        m: tone_level_right(wav, OTHER, marks[m] - rec0 + 0.7, 1.6) for m in ("listen", "whisper", "barge")
    }
    left = tone_level(wav, OTHER, marks["barge"] - rec0 + 0.7, 1.6)
    assert right["barge"] > HEARD and right["listen"] < SILENT and right["whisper"] < SILENT, right
    assert left < SILENT, left
    sidecar = json.loads(Path(ready["data"]["sidecar"]).read_text())
    (mixed,) = sidecar["mixed"]
    assert (mixed["party"], mixed["id"], mixed["reason"], mixed["channel"]) == (
        "supervisor",
        "1009",
        "barge",
        "right",
    )
    assert abs(at({"time": mixed["from"]}) - marks["barge"]) < 1.0
    assert abs(at({"time": mixed["to"]}) - marks["stopped"]) < 1.0
    assert ended["data"]["summary"]["disposition"] == "caller_hangup"

    # every monitoring session is in the audit chain, with who asked
    db = sqlite3.connect(server.db)
    rows = db.execute("SELECT action, who, what, result FROM audit_log ORDER BY id").fetchall()
    db.close()
    mine = [r for r in rows if r[0] == "supervisor.monitor"]
    assert mine == [
        ("supervisor.monitor", "tests", cid, r) for r in ("started", "changed", "changed", "ended")
    ]
    verify = subprocess.run(
        [sys.executable, "-m", "hotline", "audit", "verify", "--config", str(server.workdir / "config.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


async def test_consult_conference_and_attended_transfer_by_ear(tmp_path: Path) -> None:
    caller, agent, other = (
        phone(tmp_path, "5550101", CALLER),
        phone(tmp_path, "1001", AGENT),
        phone(tmp_path, "1002", OTHER),
    )
    server = server_for(
        tmp_path,
        [
            {"id": "1001", "skills": ["sales"], "contact": agent.contact},
            {"id": "1002", "skills": ["sales"], "contact": other.contact},
        ],
    )
    client = await CtiClient.session(server)
    marks: dict[str, float] = {}
    try:
        assert (await client.request("agent.login", agent="1002"))["ok"]
        assert (await client.request("agent.ready", agent="1002"))["ok"]
        await asyncio.sleep(0.3)
        assert (await client.request("agent.not_ready", agent="1002", reason="x"))[
            "ok"
        ]  # 1001 takes the call
        call = await connect_call(server, client, caller)
        cid = call["call_id"]
        assert (await client.request("agent.ready", agent="1002"))["ok"]
        await asyncio.sleep(1.5)
        reply = await client.request("call.consult", call_id=cid, to="1002", agent="1001")
        assert reply["ok"] and reply["target_agent"] == "1002", reply
        consulted = await client.wait_event("call.consult_connected", timeout=15)
        marks["consult"] = at(consulted)
        await asyncio.sleep(3.0)
        assert (await client.request("call.conference", call_id=cid, agent="1001"))["ok"]
        marks["conference"] = at(await client.wait_event("call.conference_started"))
        await asyncio.sleep(3.0)
        assert (await client.request("call.transfer_complete", call_id=cid, agent="1001"))["ok"]
        marks["transferred"] = at(await client.wait_event("call.transferred"))
        await asyncio.sleep(1.0)
        # the first agent wraps up; the colleague gives their own code while talking
        done = await client.request("agent.disposition", agent="1001", code="escalated")
        assert done["ok"], done
        mine = await client.request("agent.disposition", agent="1002", code="resolved", note="sent the form")
        assert mine["ok"], mine
        wrong = await client.request("agent.disposition", agent="1002", code="bogus")
        assert wrong["error"]["code"] == "disposition.unknown"
        await asyncio.sleep(2.5)
        caller.command("/hangup")
        ended = await client.wait_event("call.ended", timeout=15)
        await client.wait_for(
            lambda: len([e for e in client.events if e["event"] == "recording.ready"]) == 2,
            20,
            "2 recordings",
        )
    finally:
        await client.close()
        assert server.stop() == 0
        for p in (caller, agent, other):
            p.stop()
    validate_events(client.events)

    origin = {"caller": at(call["answered"]), "agent": at(call["connected"]), "other": marks["consult"]}
    files = {
        "caller": caller.received_audio()[0],
        "agent": agent.received_audio()[0],
        "other": other.received_audio()[0],
    }

    def window(party: str, period: str) -> dict[str, float]:
        return levels(files[party], marks[period] - origin[party] + 0.7)

    got = {(p, m): window(p, m) for p in files for m in ("consult", "conference")}
    got.update({(p, "transferred"): window(p, "transferred") for p in ("caller", "other")})
    report = json.dumps({f"{p}/{m}": v for (p, m), v in got.items()}, indent=1)
    # consult: agent and colleague talk; the caller is on hold and hears neither
    assert heard(got["agent", "consult"], "other") and heard(got["other", "consult"], "agent"), report
    assert silent(got["caller", "consult"], "agent", "other") and silent(got["other", "consult"], "caller"), (
        report
    )
    # conference: all three
    assert heard(got["caller", "conference"], "agent", "other"), report
    assert heard(got["agent", "conference"], "caller", "other"), report
    assert heard(got["other", "conference"], "caller", "agent"), report
    # transferred: caller and colleague, the first agent gone
    assert heard(got["caller", "transferred"], "other") and silent(got["caller", "transferred"], "agent"), (
        report
    )
    assert heard(got["other", "transferred"], "caller"), report

    summary = ended["data"]["summary"]
    assert ended["data"]["agent_id"] == "1002" and summary["disposition_code"] == "resolved"
    assert summary["transfers"][0]["from"] == "1001" and summary["transfers"][0]["to"] == "1002"
    readies = [e["data"] for e in client.events if e["event"] == "recording.ready"]
    assert sorted(Path(r["path"]).name for r in readies) == [f"{cid}-2.wav", f"{cid}.wav"]
    first = json.loads(
        Path(next(r for r in readies if r["path"].endswith(f"{cid}.wav"))["sidecar"]).read_text()
    )
    assert first["agent_id"] == "1001" and first["mixed"][0]["party"] == "colleague"
    db = sqlite3.connect(server.db)
    (row,) = db.execute("SELECT agent_id, disposition, disposition_note FROM calls WHERE call_id = ?", (cid,))
    db.close()
    assert row == ("1002", "resolved", "sent the form")
    during = [
        (e["data"]["agent_id"], e["data"]["during"])
        for e in client.events
        if e["event"] == "call.disposition"
    ]
    assert during == [("1001", "wrap_up"), ("1002", "talk")]
    report_out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hotline",
            "report",
            "--dispositions",
            "--config",
            str(server.workdir / "config.toml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert report_out.returncode == 0, report_out.stderr
    assert any(line.split()[-2:] == ["resolved", "1"] for line in report_out.stdout.splitlines()), (
        report_out.stdout
    )
