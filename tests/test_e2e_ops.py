"""Operating hotline, end to end on one real server: the start-up log is JSON line by line
(pjlib's lines included), /metrics moves during a real SIPp call, the queue_log of that call
(exported and followed live) has Asterisk's lines in order, and /ready turns 503 when the
database cannot be written."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hotline.client import CtiClient, Event
from hotline.queuelog import LAYOUTS

from .helpers import ROOT, HotlineProcess, free_port, until
from .peers import Sipp, dial, dtmf_keys

pytestmark = pytest.mark.sip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HotlineProcess]:
    work = tmp_path_factory.mktemp("ops")
    port = free_port()
    proc = HotlineProcess(
        workdir=work / "hotline",
        agents=[{"id": "1001", "skills": ["sales"], "contact": f"sip:1001@127.0.0.1:{port}"}],
        log_level="info",
        extra_toml="",
    )
    proc.config_text = lambda orig=proc.config_text: orig().replace(  # type: ignore[method-assign]
        "[cti]\n", "pjsip_log_level = 3\n[cti]\n", 1
    )
    proc.agent_port = port  # type: ignore[attr-defined]
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def get(server: HotlineProcess, path: str, token: bool = True) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {server.token}"} if token else {}
    url = f"http://127.0.0.1:{server.http_port}{path}"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.text()


def test_the_start_up_log_is_json_line_by_line(server: HotlineProcess) -> None:
    lines = server.log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line, or this raises
    names = [r["event"] for r in records]
    assert "hotline_started" in names and "sip_listening" in names
    pjsip = [r for r in records if r["event"] == "pjsip"]
    assert pjsip, "no pjlib line came through the LogWriter"  # the real path ran
    assert all(r["sender"] and r["message"] and "timestamp" in r for r in pjsip)


async def test_metrics_move_during_a_real_call_and_its_queue_log(
    server: HotlineProcess, tmp_path: Path
) -> None:
    status, _ = await get(server, "/metrics", token=False)
    assert status == 401  # [http] metrics_public is off by default
    status, body = await get(server, "/metrics")
    assert status == 200
    before = scrape(body)
    assert before[("process_resident_memory_bytes", ())] > 10e6
    assert ("process_cpu_seconds_total", ()) in before

    config = str(server.workdir / "config.toml")
    follow_file = tmp_path / "queue_log"
    follower = subprocess.Popen(
        [sys.executable, "-m", "hotline", "report", "--config", config, "--queue-log", "--follow",
         "--output", str(follow_file)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        agent = Sipp("agent_uas", tmp_path, local_port=server.agent_port, rtp_echo=True).start()  # type: ignore[attr-defined]
        async with CtiClient("127.0.0.1", server.cti_port, server.token) as cti:
            await cti.request("agent.login", agent="1001")
            await cti.request("agent.ready", agent="1001")
            caller = dial(
                server, "caller_dtmf", tmp_path,
                keys={"caller": "5550100", "dtmf_delay": 3000, "talk_ms": 4000, **dtmf_keys("1", tmp_path)},
            ).start()  # fmt: skip
            seen: list[Event] = []

            async def wait(name: str) -> Event:
                while True:
                    item = await cti.next_event(timeout=40)
                    if isinstance(item, Event):
                        seen.append(item)
                        if item.name == name:
                            return item

            connected = await wait("call.connected")
            call_id = connected.call_id
            _, body = await get(server, "/metrics")
            during = scrape(body)
            assert during[("hotline_calls_in_progress", (("phase", "connected"),))] == 1
            assert during[("hotline_sip_legs", ())] >= 2
            assert during[("hotline_queue_agents", (("queue", "sales"), ("state", "on_call")))] == 1
            assert during[("hotline_routing_decisions_total", (("decision", "offer"),))] >= 1
            assert during[("hotline_routing_decision_seconds_count", ())] >= 1
            assert during[("hotline_ivr_turn_seconds_count", (("input", "dtmf"),))] >= 1
            # the shipped flow's greeting and menu are recorded WAVs (flows/prompts)
            assert during[("hotline_prompts_total", (("source", "recorded"),))] >= 2
            await wait("call.ended")
            assert caller.wait(30) == 0, caller.summary()
        agent.wait(20)
        _, body = await get(server, "/metrics")
        after = scrape(body)
        done = ("hotline_calls_total", (("outcome", "caller_hangup"), ("queue", "sales")))
        assert after[done] == before.get(done, 0) + 1
        assert after[("hotline_connects_total", (("queue", "sales"),))] >= 1
        assert after.get(("hotline_calls_in_progress", (("phase", "connected"),)), 0) == 0

        # the queue_log: exported now, and written live by the follower
        export = subprocess.run(
            [sys.executable, "-m", "hotline", "report", "--config", config, "--queue-log"],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert export.returncode == 0, export.stderr
        until(
            lambda: f"|{call_id}|sales|Agent/1001|COMPLETECALLER|" in follow_file.read_text(),
            10,
            what="follow",
        )
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(10) == 0, follower.stderr.read() if follower.stderr else ""
    finally:
        if follower.poll() is None:  # a failure above must not leave it running
            follower.kill()
            follower.wait()
    for text in (export.stdout, follow_file.read_text()):
        lines = [line.split("|") for line in text.splitlines()]
        for fields in lines:  # Asterisk's layout: epoch|callid|queue|agent|EVENT|params...
            assert fields[0].isdigit() and len(fields) == 5 + len(LAYOUTS[fields[4]]), fields
        mine = [f for f in lines if f[1] == call_id]
        assert [f[4] for f in mine] == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"], mine
        enter, connect, complete = mine
        assert enter[2:4] == ["sales", "NONE"] and enter[6] == "5550100"  # url (none), caller id
        assert connect[3] == "Agent/1001" and connect[6] == call_id and int(connect[5]) >= 0
        assert (
            complete[3] == "Agent/1001" and int(complete[6]) >= 3 and complete[7] == "1"
        )  # talk, origposition
        logins = [f for f in lines if f[4] == "AGENTLOGIN" and f[3] == "Agent/1001"]
        assert logins and int(logins[-1][0]) <= int(enter[0])


async def test_health_and_ready_and_ready_fails_when_the_database_is_read_only(
    server: HotlineProcess,
) -> None:
    status, body = await get(server, "/health", token=False)
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok" and set(health["checks"]) == {"loop", "sip_pump"}
    status, body = await get(server, "/ready", token=False)
    ready: dict[str, Any] = json.loads(body)
    assert status == 200 and ready["failing"] == [] and set(ready["checks"]) == {"sip", "flows", "database"}
    db = server.db
    subprocess.run(["chattr", "+i", str(db)], check=True)  # read-only, even for root
    try:
        status, body = await get(server, "/ready", token=False)
        ready = json.loads(body)
        assert status == 503 and ready["status"] == "failing" and ready["failing"] == ["database"]
        assert "read-only" in ready["checks"]["database"]["detail"], ready
        status, _ = await get(server, "/health", token=False)
        assert status == 200  # alive all the same
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    status, _ = await get(server, "/ready", token=False)
    assert status == 200
