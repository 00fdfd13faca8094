"""/metrics, /health, /ready and the alert wiring on a real HTTP port, with a stand-in server
(the real router, statistics, event bus and config; no SIP): fast adapter tests."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

import acd
import cti_bridge
from hotline.config import load_config
from hotline.flowset import agent_specs, queue_specs
from hotline.ops import Operations


class Supervisor:
    """Stands in for the Kamailio supervisor: what /ready asks of it."""

    def __init__(self) -> None:
        self.up = False

    def is_up(self) -> bool:
        return self.up


def stand_in(tmp_path: Path, extra: str) -> Any:
    path = tmp_path / "config.toml"
    path.write_text(
        "[[cti.tokens]]\nname = 'reader'\nsecret = 'r'\n"
        "[[acd.queues]]\nname = 'sales'\nskills = ['sales']\n"
        "[[acd.agents]]\nid = '1001'\nskills = ['sales']\ncontact = 'sip:1001@127.0.0.1:5999'\n" + extra
    )
    config = load_config(path)
    outbox = cti_bridge.Outbox(tmp_path / "hotline.db", retain_seconds=60, retain_events=1000)
    stats = acd.build_statistics(queue_specs(config), agent_specs(config), acd.StatsConfig(), now=time.time())
    flow = SimpleNamespace(name="main", version="abc")
    return SimpleNamespace(
        config=config,
        # what ops reads of the call controller: phases, statistics, the main flow
        controller=SimpleNamespace(
            phase_counts=lambda: {"ivr": 0}, stats=stats, flow=flow, flows={"main": flow}
        ),
        router=acd.build_router(queue_specs(config), agent_specs(config)),
        stats=stats,
        endpoint=SimpleNamespace(active_legs=0, bound=True, last_pump=None),
        speech=None,
        mqtt=None,
        bus=cti_bridge.EventBus(outbox=outbox),
        recordings=tmp_path,
    )


async def serve(server: Any, ops: Operations) -> Any:
    cti = cti_bridge.build_cti(
        server.bus, [cti_bridge.Token("reader", "r")], lambda c, a: asyncio.sleep(0),  # type: ignore[arg-type,return-value]
        host="127.0.0.1", port=None, http_port=0, ops=ops,
    )  # fmt: skip
    await cti.start()
    return cti


async def get(port: int, path: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"http://127.0.0.1:{port}{path}"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.text()


async def test_ready_checks_a_managed_proxy_and_health_checks_the_pump(tmp_path: Path) -> None:
    server = stand_in(tmp_path, "")
    proxy = Supervisor()
    ops = Operations(server, supervisor=proxy)
    ops.start()
    cti = await serve(server, ops)
    port = cti.http_port
    status, body = await get(port, "/ready")
    assert status == 503 and json.loads(body)["failing"] == ["proxy"]
    assert json.loads(body)["checks"]["proxy"] == {"ok": False, "detail": "the managed SIP proxy is down"}
    proxy.up = True
    status, body = await get(port, "/ready")
    assert status == 200 and set(json.loads(body)["checks"]) == {"sip", "flows", "database", "proxy"}
    status, body = await get(port, "/health")  # nothing pumps pjsua2 here
    assert status == 503 and json.loads(body)["failing"] == ["sip_pump"]
    server.endpoint.last_pump = asyncio.get_running_loop().time()
    status, body = await get(port, "/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert Operations(server).supervisor is None  # not managed: no proxy check
    ops.stop()
    await cti.stop()


async def test_metrics_token_unless_public_and_alerts_wired_to_the_bus(tmp_path: Path) -> None:
    server = stand_in(
        tmp_path,
        "[http]\nmetrics_public = true\n"
        "[[alerts]]\nmetric = 'no_agents'\nthreshold = 0\nseverity = 'critical'\n",
    )
    ops = Operations(server)
    server.bus.add_sink(ops.observe_event)
    published: list[dict[str, Any]] = []
    server.bus.add_sink(published.append)
    cti = await serve(server, ops)
    status, body = await get(cti.http_port, "/metrics")  # public: no token
    assert status == 200
    # a caller waits on sales and nobody is logged in: the rule fires through the real wiring
    server.router.handle(acd.events.CallEnqueued(call_id="c1", queue="sales"), 0.0)
    server.stats.observe_all(
        [acd.events.CallQueued(call_id="c1", queue="sales", priority=0, position=1)], time.time()
    )
    found = ops.evaluate_alerts()
    server.bus.flush()
    assert [(a.code, a.severity, a.queue) for a in found] == [("queue.no_agents", "critical", "sales")]
    assert [e["event"] for e in published] == ["alert.raised"]
    status, body = await get(cti.http_port, "/metrics")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
    }
    assert samples[("hotline_queue_waiting", (("queue", "sales"),))] == 1
    active = (
        "hotline_alert_active",
        (("code", "queue.no_agents"), ("queue", "sales"), ("severity", "critical")),
    )
    assert samples[active] == 1
    assert (
        samples[("hotline_alerts_raised_total", (("code", "queue.no_agents"), ("severity", "critical")))] == 1
    )
    assert not any("c1" in str(labels) for _name, labels in samples)  # no call id is ever a label
    ops.stop()
    await cti.stop()


async def test_metrics_refuse_a_missing_or_wrong_token(tmp_path: Path) -> None:
    server = stand_in(tmp_path, "")
    cti = await serve(server, Operations(server))
    assert (await get(cti.http_port, "/metrics"))[0] == 401
    assert (await get(cti.http_port, "/metrics", token="wrong"))[0] == 401
    status, body = await get(cti.http_port, "/metrics", token="r")
    assert status == 200 and "hotline_calls_in_progress" in body
    await cti.stop()
