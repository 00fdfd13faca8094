"""The IVR over real SIP: secure digits that leave no trace, and the three-level
escalation reaching a human with its history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import CtiClient, HotlineProcess, free_port
from .peers import Sipp, dial, dtmf_keys
from .test_cti_schema import validate_events

pytestmark = pytest.mark.sip

CARD = "4111111111111111"  # Luhn-valid test card number

FLOW = """
flow: pay
start: menu
nodes:
  menu:
    type: menu
    prompt: {text: "Press 1 to pay by card."}
    options: {"1": {next: card, label: payments}}
    timeout: 4
    escalate_to: operator
  card:
    type: collect
    prompt: {text: "Enter your card number, then press hash."}
    var: card
    min_digits: 12
    max_digits: 19
    validator: luhn
    secure: true
    next: sales
    escalate_to: operator
  sales: {type: queue, queue: sales}
  operator: {type: queue, queue: operator, priority: 5}
"""


async def run_call(tmp_path: Path, keys: str) -> tuple[HotlineProcess, CtiClient, list[dict]]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "pay.yaml").write_text(FLOW)
    agent_port = free_port()
    agent = Sipp("agent_uas", tmp_path, local_port=agent_port, rtp_echo=True).start()
    server = HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=[{"id": "1001", "skills": ["sales"], "contact": f"sip:1001@127.0.0.1:{agent_port}"}],
        flows_dir=flows,
        main_flow="pay",
    ).start()
    client = await CtiClient.session(server)
    assert (await client.request("agent.login", agent="1001"))["ok"]
    assert (await client.request("agent.ready", agent="1001"))["ok"]
    caller = dial(
        server,
        "caller_dtmf",
        tmp_path,
        keys={"caller": "5557777", "dtmf_delay": 2500, "talk_ms": 4000, **dtmf_keys(keys, tmp_path)},
    ).start()
    assert caller.wait(90) == 0, caller.summary()
    await client.wait_event("recording.ready", timeout=20)
    assert agent.wait(20) == 0, agent.summary()
    return server, client, client.events


async def test_secure_card_digits_leave_no_trace(tmp_path: Path) -> None:
    server, client, events = await run_call(tmp_path, "1" + CARD + "#")
    await client.close()
    assert server.stop() == 0
    validate_events(events)
    card_inputs = [e["data"] for e in events if e["event"] == "ivr.input" and e["data"]["node"] == "card"]
    assert card_inputs and all(i["masked"] and i["result"] == "match" for i in card_inputs), card_inputs
    queued = next(e for e in events if e["event"] == "call.queued")
    assert queued["data"]["queue"] == "sales"  # valid card: the flow went on to sales
    # the digits are nowhere: events, logs, database (call records, outbox), recordings
    needle = CARD[:8]
    assert needle not in json.dumps(events)
    assert needle not in server.log_path.read_text(errors="replace")
    for path in (server.workdir).rglob("*"):
        if path.is_file() and path.suffix != ".wav":
            assert needle.encode() not in path.read_bytes(), f"secure digits found in {path}"


async def test_three_failures_reach_a_human_with_the_history(tmp_path: Path) -> None:
    server, client, events = await run_call(tmp_path, "999")
    await client.close()
    assert server.stop() == 0
    validate_events(events)
    results = [e["data"]["result"] for e in events if e["event"] == "ivr.input"]
    assert results == ["no_match", "no_match", "no_match"]
    escalated = next(e for e in events if e["event"] == "ivr.escalated")
    assert escalated["data"]["to"] == "operator" and len(escalated["data"]["history"]) == 3
    offered = next(e for e in events if e["event"] == "agent.offered")
    assert offered["data"]["queue"] == "operator"
    assert offered["data"]["data"]["escalation"]["reason"] == "no_match"  # the agent sees what was tried
    assert any(e["event"] == "call.connected" for e in events)
