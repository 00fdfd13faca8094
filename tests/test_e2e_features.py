"""Over real SIP: caller profiles, service codes and flow hot reload in the server."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT, CtiClient, HotlineProcess, free_port
from .peers import Sipp, dial, dtmf_keys
from .test_cti_schema import validate_events

pytestmark = pytest.mark.sip


async def test_profile_service_code_and_hot_reload(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    main = flows / "main.yaml"
    main.write_text((ROOT / "flows" / "main.yaml").read_text())
    agent_port = free_port()
    agent = Sipp("agent_uas", tmp_path, local_port=agent_port, rtp_echo=True, calls=2).start()
    server = HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=[
            {"id": "1001", "skills": ["sales", "support"], "contact": f"sip:1001@127.0.0.1:{agent_port}"}
        ],
        flows_dir=flows,
        extra_toml="",
    )
    server.start()
    config = str(server.workdir / "config.toml")
    csv_file = tmp_path / "profiles.csv"
    csv_file.write_text(
        "number,tier,assisted,language,priority_human,name,notes\n5551234,gold,no,en,no,Ada,\n"
    )
    imported = subprocess.run(
        [sys.executable, "-m", "hotline", "profiles", "import", str(csv_file), "--config", config],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    client = await CtiClient.session(server)
    try:
        assert (await client.request("agent.login", agent="1001"))["ok"]
        assert (await client.request("agent.ready", agent="1001"))["ok"]

        async def call() -> dict:
            def ended() -> list[dict]:
                return [e for e in client.events if e["event"] == "recording.ready"]

            before = len(ended())
            caller = dial(
                server,
                "caller_dtmf",
                tmp_path,
                keys={"caller": "5551234", "dtmf_delay": 3000, "talk_ms": 2500, **dtmf_keys("1", tmp_path)},
            ).start()
            assert caller.wait(60) == 0, caller.summary()
            await client.wait_for(lambda: len(ended()) > before, 20, "recording.ready")
            return [e for e in client.events if e["event"] == "call.ended"][-1]

        first = await call()
        offered = next(e for e in client.events if e["event"] == "call.offered")
        code = offered["data"]["service_code"]
        assert len(code) == 7 and code[3] == "-"
        summary = first["data"]["summary"]
        assert summary["service_code"] == code and summary["profile_tier"] == "gold"
        row = (
            sqlite3.connect(server.db)
            .execute("SELECT service_code FROM calls WHERE call_id = ?", (first["call_id"],))
            .fetchone()
        )
        assert row == (code,)
        ready = next(e for e in client.events if e["event"] == "recording.ready")
        assert json.loads(Path(ready["data"]["sidecar"]).read_text())["service_code"] == code

        # a broken edit is refused with its line; the old flow keeps answering
        old_version = offered["data"]["flow_version"]
        good = main.read_text()
        main.write_text(good.replace("next: main_menu", "next: main_menuu"))
        now = await client.request("flow.reload")  # an operator need not wait for the poll
        assert now["error"]["code"] == "flow.rejected" and "main.yaml:" in now["error"]["message"], now
        rejected = await client.wait_event("ivr.flow_rejected", timeout=15)
        assert rejected["data"]["code"] == "flow.unknown_node" and rejected["data"]["line"] > 1
        # a valid edit goes live for new calls
        main.write_text(good.replace("Welcome to the hotline.", "Welcome back to the hotline."))
        reloaded = await client.wait_event("ivr.flow_reloaded", timeout=15)
        new_version = reloaded["data"]["flows"]["main"]
        assert new_version != old_version
        await asyncio.sleep(0.2)
        await call()
        versions = [e["data"]["flow_version"] for e in client.events if e["event"] == "call.offered"]
        assert versions == [old_version, new_version]
    finally:
        await client.close()
        assert server.stop() == 0
        validate_events(client.events)
    assert agent.wait(20) == 0, agent.summary()


CALLBACK_FLOW = """
flow: main
start: wait
nodes:
  wait:
    type: queue
    queue: sales
    hold: {text: "Please hold."}
    callback_after: 60
    callback_key: "1"
    callback_prompt: {text: "The wait is long. Press 1 and we will call you back."}
    callback_next: bye
  bye: {type: hangup, prompt: {text: "We will call you back."}}
"""


async def test_callback_keeps_the_place_and_calls_the_customer_back(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(CALLBACK_FLOW)
    agent_port, customer_port = free_port(), free_port()
    agent = Sipp(
        "agent_uas", tmp_path, local_port=agent_port, rtp_echo=True, keys={"answer_delay": 300}
    ).start()
    # the customer's phone when called back: answers, talks 4 s, hangs up
    customer = Sipp(
        "agent_hangup",
        tmp_path,
        local_port=customer_port,
        rtp_echo=True,
        keys={"answer_delay": 500, "hangup_ms": 4000},
        name="customer",
    ).start()
    server = HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=[{"id": "1001", "skills": ["sales"], "contact": f"sip:1001@127.0.0.1:{agent_port}"}],
        flows_dir=flows,
        extra_toml=f'[callbacks]\ndial_uri = "sip:{{number}}@127.0.0.1:{customer_port}"\n',
    ).start()
    client = await CtiClient.session(server)
    try:
        # nobody is logged in: the wait is long, the caller takes the callback offer and hangs up
        caller = dial(
            server,
            "caller_dtmf",
            tmp_path,
            keys={"caller": "5550123", "dtmf_delay": 3500, "talk_ms": 8000, **dtmf_keys("1", tmp_path)},
        ).start()
        requested = await client.wait_event("callback.requested", timeout=20)
        assert requested["data"]["number"] == "5550123" and requested["data"]["queue"] == "sales"
        ended = await client.wait_event("call.ended", timeout=20)
        assert ended["data"]["cause"] == "callback_requested"
        assert caller.wait(30) == 0, caller.summary()
        # an agent becomes free: agent first, then the customer is dialled and bridged
        assert (await client.request("agent.login", agent="1001"))["ok"]
        assert (await client.request("agent.ready", agent="1001"))["ok"]
        await client.wait_event("callback.offered", timeout=20)
        await client.wait_event("callback.dialing", timeout=20)
        connected = await client.wait_event("callback.connected", timeout=20)
        assert connected["call_id"] == requested["call_id"]
        ready = await client.wait_event("recording.ready", timeout=30)
        assert ready["call_id"] == requested["call_id"]
        assert customer.wait(30) == 0, customer.summary()
    finally:
        await client.close()
        assert server.stop() == 0
        validate_events(client.events)
    assert agent.wait(20) == 0, agent.summary()


OVERFLOW_FLOW = """
flow: main
start: choose
entry_points: [sorry]  # the sales queue overflows here (config on_max_wait)
nodes:
  choose:
    type: menu
    prompt: {text: "Press 1 or 2."}
    options: {"1": {next: sales}, "2": {next: support}}
    escalate_to: sales
  sales: {type: queue, queue: sales, hold: {text: "Please hold."}}
  support: {type: queue, queue: support, hold: {text: "Please hold."}}
  sorry: {type: hangup, prompt: {text: "Sorry, nobody is free. Goodbye."}}
"""


async def test_overflow_to_a_flow_node_and_to_a_callback(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(OVERFLOW_FLOW)
    server = HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=[{"id": "1001", "skills": ["support"], "contact": "sip:1001@127.0.0.1:9"}],
        queues=[
            {
                "name": "sales",
                "skills": ["sales"],
                "max_wait": 2,
                "on_max_wait": {"kind": "flow_node", "target": "sorry"},
            },
            {
                "name": "support",
                "skills": ["support"],
                "on_no_agents": {"kind": "callback", "target": "support"},
            },
            {"name": "operator"},
        ],
        flows_dir=flows,
    ).start()
    client = await CtiClient.session(server)
    try:
        for digit in ("1", "2"):
            caller = dial(
                server,
                "caller_dtmf",
                tmp_path,
                keys={
                    "caller": "5550999",
                    "dtmf_delay": 2500,
                    "talk_ms": 15000,
                    **dtmf_keys(digit, tmp_path),
                },
                name=f"caller_{digit}",
            ).start()
            assert caller.wait(60) == 0, caller.summary()  # hotline hangs up in both cases
        await client.wait_for(
            lambda: len([e for e in client.events if e["event"] == "call.ended"]) == 2, 20, "2 ends"
        )
        overflows = [e["data"] for e in client.events if e["event"] == "call.overflowed"]
        assert [(o["queue"], o["reason"], o["kind"]) for o in overflows] == [
            ("sales", "max_wait", "flow_node"),
            ("support", "no_agents", "callback"),
        ]
        causes = [e["data"]["cause"] for e in client.events if e["event"] == "call.ended"]
        assert causes == ["ivr_hangup", "callback_requested"]
        assert any(e["event"] == "callback.requested" for e in client.events)
    finally:
        await client.close()
        assert server.stop() == 0
        validate_events(client.events)


async def test_a_returning_caller_gets_the_agent_who_served_them(tmp_path: Path) -> None:
    ports = {"1001": free_port(), "1002": free_port()}
    phones = {  # noqa: F841 (the agents' phones run while the test does)
        a: Sipp("agent_uas", tmp_path, local_port=p, rtp_echo=True, calls=2, name=f"agent_{a}").start()
        for a, p in ports.items()
    }
    server = HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=[
            {"id": a, "skills": ["sales"], "contact": f"sip:{a}@127.0.0.1:{p}"} for a, p in ports.items()
        ],
        queues=[
            {"name": "sales", "skills": ["sales"], "wrap_up": 0, "preferred_seconds": 20},
            {"name": "support"},
            {"name": "operator"},
            {"name": "care", "skills": ["certified"]},  # the shipped main flow's
        ],
    ).start()
    client = await CtiClient.session(server)
    try:
        for a in ("1002", "1001"):  # 1002 idles longest: it takes the first call
            assert (await client.request("agent.login", agent=a))["ok"]
            assert (await client.request("agent.ready", agent=a))["ok"]
        await asyncio.sleep(0.5)
        assert (await client.request("agent.not_ready", agent="1002", reason="x"))["ok"]
        assert (await client.request("agent.ready", agent="1002"))["ok"]  # now 1001 idles longest
        for n in range(2):
            caller = dial(
                server,
                "caller_dtmf",
                tmp_path,
                keys={"caller": "5551212", "dtmf_delay": 3000, "talk_ms": 2000, **dtmf_keys("1", tmp_path)},
                name=f"caller_{n}",
            ).start()
            assert caller.wait(60) == 0, caller.summary()
            await client.wait_for(
                lambda n=n: len([e for e in client.events if e["event"] == "call.ended"]) == n + 1,
                20,
                "call end",
            )
            await asyncio.sleep(0.5)  # the contact is recorded
            if n == 0:  # make the other agent the longest idle one again
                first = next(e for e in client.events if e["event"] == "call.connected")["data"]["agent_id"]
                other = "1002" if first == "1001" else "1001"
                assert (await client.request("agent.not_ready", agent=other, reason="x"))["ok"]
                assert (await client.request("agent.ready", agent=other))["ok"]
                assert (await client.request("agent.not_ready", agent=first, reason="x"))["ok"]
                assert (await client.request("agent.ready", agent=first))["ok"]
        served = [e["data"]["agent_id"] for e in client.events if e["event"] == "call.connected"]
        assert served[1] == served[0], f"the returning caller went to {served[1]}, not {served[0]}"
    finally:
        await client.close()
        assert server.stop() == 0
        validate_events(client.events)


async def test_click_to_dial_with_the_outbound_guard(tmp_path: Path) -> None:
    agent_port, customer_port = free_port(), free_port()
    agent = Sipp(
        "agent_uas", tmp_path, local_port=agent_port, rtp_echo=True, keys={"answer_delay": 300}
    ).start()
    customer = Sipp(
        "agent_hangup",
        tmp_path,
        local_port=customer_port,
        rtp_echo=True,
        keys={"answer_delay": 500, "hangup_ms": 3000},
        name="customer",
    ).start()
    server = HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=[{"id": "1001", "skills": ["sales"], "contact": f"sip:1001@127.0.0.1:{agent_port}"}],
        extra_toml=(
            f'[callbacks]\ndial_uri = "sip:{{number}}@127.0.0.1:{customer_port}"\n'
            "[outbound]\nmarketing_hours = {}\n"
        ),  # no marketing hours at all
    ).start()
    config = str(server.workdir / "config.toml")
    added = subprocess.run(
        [sys.executable, "-m", "hotline", "dnc", "add", "+15550111", "--config", config],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    client = await CtiClient.session(server)
    try:
        assert (await client.request("agent.login", agent="1001"))["ok"]
        assert (await client.request("agent.ready", agent="1001"))["ok"]
        refused = await client.request("call.make", agent="1001", to="+15550111", purpose="marketing")
        assert refused["error"]["code"] == "outbound.dnc", refused
        refused = await client.request("call.make", agent="1001", to="+15550122", purpose="marketing")
        assert refused["error"]["code"] == "outbound.outside_hours", refused
        assert (await client.request("call.make", agent="1001", to="+15550111"))["error"][
            "code"
        ] == "cti.bad_request"
        made = await client.request(
            "call.make", agent="1001", to="+15550111", purpose="service"
        )  # DNC: marketing only
        assert made["ok"], made
        await client.wait_event("call.answered", call_id=made["call_id"], timeout=20)
        ended = await client.wait_event("call.ended", call_id=made["call_id"], timeout=20)
        assert ended["data"]["cause"] == "caller_hangup" and ended["data"]["talk_seconds"] > 1
        ready = await client.wait_event("recording.ready", call_id=made["call_id"], timeout=20)
        assert ready["data"]["channels"] == 2
        states = [
            (e["data"]["to"], e["data"]["reason"])
            for e in client.events
            if e["event"] == "agent.state_changed"
        ]
        assert ("not_ready", "outbound") in states and states[-1][0] == "available"
    finally:
        await client.close()
        assert server.stop() == 0
        validate_events(client.events)
    assert customer.wait(20) == 0, customer.summary()
    assert agent.wait(20) == 0, agent.summary()


async def test_a_caller_who_dropped_resumes_their_place(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(
        "flow: main\nstart: back\nnodes:\n"
        '  back:\n    type: resume\n    prompt: {text: "Welcome back. Press 1."}\n    next: menu\n'
        '  menu:\n    type: menu\n    prompt: {text: "Press 2 for support."}\n    options: {"2": support}\n'
        "    escalate_to: support\n"
        '  support: {type: queue, queue: support, priority: 1, hold: {text: "Please hold."}}\n'
    )
    server = HotlineProcess(workdir=tmp_path / "hotline", agents=[], flows_dir=flows).start()
    client = await CtiClient.session(server, events=["call.*", "ivr.*"])
    try:
        for n, digit in enumerate(("2", "1")):  # first: into the queue, then give up; then: resume
            caller = dial(
                server,
                "caller_hangup_early",
                tmp_path,
                keys={
                    "caller": "5553434",
                    "dtmf_delay": 3000,
                    "hangup_ms": 2000,
                    **dtmf_keys(digit, tmp_path),
                },
                name=f"caller_{n}",
            ).start()
            assert caller.wait(60) == 0, caller.summary()
            await client.wait_for(
                lambda n=n: len([e for e in client.events if e["event"] == "call.ended"]) == n + 1, 20, "end"
            )
            await asyncio.sleep(0.5)  # the contact is recorded
        queued = [e["data"] for e in client.events if e["event"] == "call.queued"]
        assert [(q["queue"], q["priority"]) for q in queued] == [("support", 1), ("support", 2)]
        paths = [e["data"]["summary"]["ivr_path"] for e in client.events if e["event"] == "call.ended"]
        assert paths[1][:2] == ["back", "support"]  # straight back into the queue, no menu
    finally:
        await client.close()
        assert server.stop() == 0
        validate_events(client.events)


async def test_a_pending_callback_survives_a_restart(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(CALLBACK_FLOW)
    server = HotlineProcess(workdir=tmp_path / "hotline", agents=[], flows_dir=flows)
    server.start()
    client = await CtiClient.session(server, events=["callback.*", "call.ended"])
    caller = dial(
        server,
        "caller_dtmf",
        tmp_path,
        keys={"caller": "5550456", "dtmf_delay": 3500, "talk_ms": 8000, **dtmf_keys("1", tmp_path)},
    ).start()
    requested = await client.wait_event("callback.requested", timeout=20)
    await client.wait_event("call.ended", timeout=20)
    assert caller.wait(30) == 0, caller.summary()
    last = client.events[-1]["seq"]
    await client.close()
    assert server.stop() == 0
    server.start()  # same database
    client = await CtiClient.connect(server.cti_port)
    try:
        assert (await client.request("auth", token=server.token))["ok"]
        assert (await client.request("subscribe", events=["callback.*"], since=last))["ok"]
        restored = await client.wait_event("callback.requested", timeout=10, restored=True)
        assert restored["call_id"] == requested["call_id"] and restored["data"]["number"] == "5550456"
    finally:
        await client.close()
        assert server.stop() == 0
        validate_events(client.events)


SURVEY_FLOW = """
flow: main
start: support
nodes:
  support:
    type: queue
    queue: support
    hold: {text: "Please hold."}
    after_agent: rate
  rate:
    type: survey
    prompt: {text: "How did we do? Press 1 to 5."}
    question: satisfaction
    next: bye
  bye: {type: hangup, prompt: {text: "Thank you."}}
"""


async def test_post_call_survey_after_the_agent_hangs_up(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(SURVEY_FLOW)
    agent_port = free_port()
    agent = Sipp(
        "agent_hangup",
        tmp_path,
        local_port=agent_port,
        rtp_echo=True,
        keys={"answer_delay": 300, "hangup_ms": 2000},
    ).start()
    server = HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=[{"id": "1001", "skills": ["support"], "contact": f"sip:1001@127.0.0.1:{agent_port}"}],
        flows_dir=flows,
    ).start()
    client = await CtiClient.session(server)
    try:
        assert (await client.request("agent.login", agent="1001"))["ok"]
        assert (await client.request("agent.ready", agent="1001"))["ok"]
        # the caller keys 4 about 8 s in: after the agent's 2 s talk, during the survey prompt
        caller = dial(
            server,
            "caller_dtmf",
            tmp_path,
            keys={"caller": "5557878", "dtmf_delay": 8000, "talk_ms": 8000, **dtmf_keys("4", tmp_path)},
        ).start()
        answered = await client.wait_event("ivr.survey_answered", timeout=40)
        assert answered["data"]["score"] == 4 and answered["data"]["question"] == "satisfaction"
        ended = await client.wait_event("call.ended", timeout=20)
        assert ended["data"]["summary"]["survey"] == {"satisfaction": 4}
        assert ended["data"]["cause"] == "ivr_hangup"  # the flow said thank you and hung up
        caller.wait(60)
        row = (
            sqlite3.connect(server.db)
            .execute("SELECT survey FROM calls WHERE call_id = ?", (ended["call_id"],))
            .fetchone()
        )
        assert json.loads(row[0]) == {"satisfaction": 4}
    finally:
        await client.close()
        assert server.stop() == 0
        validate_events(client.events)
    assert agent.wait(20) == 0, agent.summary()


LOOKUP_FLOW = """
flow: main
start: who
nodes:
  who:
    type: lookup
    url: "http://127.0.0.1:{crm_port}/customers/{{caller.number}}"
    timeout: 2
    result: {{tier: customer.tier}}
    next: route
    fallback: support
  route:
    type: branch
    cases: [{{if: "tier == 'gold'", next: sales}}]
    default: support
  sales: {{type: queue, queue: sales, data: {{tier: "{{tier}}"}}}}
  support: {{type: queue, queue: support}}
"""


async def test_http_lookup_routes_by_crm_data_and_falls_back(tmp_path: Path) -> None:
    from aiohttp import web

    seen: list[str] = []

    async def customer(request: web.Request) -> web.Response:
        number = request.match_info["number"]
        seen.append(number)
        if number == "5551000":
            return web.json_response({"customer": {"tier": "gold"}})
        return web.json_response({"error": "unknown"}, status=404)

    app = web.Application()
    app.router.add_get("/customers/{number}", customer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    crm_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(LOOKUP_FLOW.format(crm_port=crm_port))
    server = HotlineProcess(workdir=tmp_path / "hotline", agents=[], flows_dir=flows).start()
    client = await CtiClient.session(server, events=["call.*", "agent.*"])
    try:
        for number in ("5551000", "5552000"):
            caller = dial(
                server,
                "caller_hangup_early",
                tmp_path,
                keys={"caller": number, "dtmf_delay": 2000, "hangup_ms": 500, **dtmf_keys("1", tmp_path)},
                name=f"caller_{number}",
            ).start()
            # wait in a thread: the CRM above answers from this test's event loop
            assert await asyncio.to_thread(caller.wait, 60) == 0, caller.summary()
        await client.wait_for(
            lambda: len([e for e in client.events if e["event"] == "call.queued"]) == 2, 20, "2 queued"
        )
        queues = [e["data"]["queue"] for e in client.events if e["event"] == "call.queued"]
        assert queues == ["sales", "support"]  # gold from the CRM; a 404 takes the fallback
        assert seen == ["5551000", "5552000"]
    finally:
        await client.close()
        assert server.stop() == 0
        await runner.cleanup()
        validate_events(client.events)


async def test_a_queue_node_can_ask_for_extra_skills(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(
        "flow: main\nstart: q\nnodes:\n"
        "  q: {type: queue, queue: sales, skills: [french], hold: {text: Wait.}}\n"
    )
    ports = {"1001": free_port(), "1002": free_port()}
    phone = Sipp("agent_uas", tmp_path, local_port=ports["1002"], rtp_echo=True).start()
    server = HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=[
            {"id": "1001", "skills": ["sales"], "contact": f"sip:1001@127.0.0.1:{ports['1001']}"},
            {"id": "1002", "skills": ["sales", "french"], "contact": f"sip:1002@127.0.0.1:{ports['1002']}"},
        ],
        flows_dir=flows,
    ).start()
    client = await CtiClient.session(server)
    try:
        for a in ("1001", "1002"):  # 1001 idles longest
            assert (await client.request("agent.login", agent=a))["ok"]
            assert (await client.request("agent.ready", agent=a))["ok"]
        caller = dial(
            server,
            "caller_dtmf",
            tmp_path,
            keys={"dtmf_delay": 1000, "talk_ms": 2000, **dtmf_keys("1", tmp_path)},
        ).start()
        offered = await client.wait_event("agent.offered", timeout=20)
        assert offered["data"]["agent_id"] == "1002"
        assert caller.wait(60) == 0, caller.summary()
    finally:
        await client.close()
        assert server.stop() == 0
        validate_events(client.events)
    phone.wait(20)


async def test_voicemail_records_the_caller_and_hands_it_over(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(
        "flow: main\nstart: vm\nnodes:\n  vm: {type: voicemail, prompt: beep, max_seconds: 30}\n"
    )
    server = HotlineProcess(workdir=tmp_path / "hotline", agents=[], flows_dir=flows).start()
    client = await CtiClient.session(server)
    try:
        caller = dial(
            server,
            "caller_hangup_early",
            tmp_path,
            keys={"dtmf_delay": 1500, "hangup_ms": 3000, **dtmf_keys("1", tmp_path)},
        ).start()
        assert caller.wait(60) == 0, caller.summary()
        ready = await client.wait_event("recording.ready", timeout=20, kind="voicemail")
        assert ready["data"]["channels"] == 1 and ready["data"]["seconds"] > 2
        import hashlib

        path = Path(ready["data"]["path"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == ready["data"]["sha256"]
        import wave

        with wave.open(str(path)) as w:
            assert w.getnchannels() == 1 and w.getnframes() > 8000
    finally:
        await client.close()
        assert server.stop() == 0
        validate_events(client.events)
