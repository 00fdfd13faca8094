"""What a Prometheus scrape of /metrics costs the event loop, on a large configuration.

    .venv/bin/python -m bench.metrics_scrape [--queues 50] [--agents 500] [--waiting 2000] [--scrapes 50]

Builds the real router, statistics and event bus from a generated config (no SIP),
puts ``--waiting`` callers in line, and times ``Operations.render_metrics()`` (snapshot
of every queue plus prometheus_client's exposition), which runs on the loop thread, and
one ``evaluate_alerts()`` step. Prints the figures and the size of the exposition.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import acd
import cti_bridge
from hotline.config import load_config
from hotline.flowset import agent_specs, queue_specs
from hotline.ops import Operations


def build(tmp: Path, queues: int, agents: int) -> SimpleNamespace:
    lines = ["[[cti.tokens]]", "name = 'b'", "secret = 'b'"]
    for q in range(queues):
        lines += ["[[acd.queues]]", f"name = 'q{q}'", f"skills = ['s{q % 8}']"]
    for a in range(agents):
        lines += [
            "[[acd.agents]]",
            f"id = 'a{a}'",
            f"skills = ['s{a % 8}']",
            f"contact = 'sip:a{a}@127.0.0.1'",
        ]
    path = tmp / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    config = load_config(path)
    stats = acd.build_statistics(queue_specs(config), agent_specs(config), acd.StatsConfig(), now=time.time())
    flow = SimpleNamespace(name="main", version="x")
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
        bus=cti_bridge.EventBus(outbox=None),
        recordings=tmp,
    )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queues", type=int, default=50)
    ap.add_argument("--agents", type=int, default=500)
    ap.add_argument("--waiting", type=int, default=2000)
    ap.add_argument("--scrapes", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = build(Path(tmp), args.queues, args.agents)
        wall = time.time()
        for i in range(args.waiting):
            q = f"q{i % args.queues}"
            outs = s.router.handle(acd.events.CallEnqueued(call_id=f"c{i}", queue=q), 0.0)
            s.stats.observe_all(outs, wall)
        ops = Operations(s)
        times = []
        for _ in range(args.scrapes):
            t0 = time.perf_counter()
            body = ops.render_metrics()
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ops.evaluate_alerts()
        alert_ms = 1000 * (time.perf_counter() - t0)
        ops.stop()
    times.sort()
    lines = body.count(b"\n")
    print(
        f"{args.queues} queues, {args.agents} agents, {args.waiting} waiting: /metrics render "
        f"median {1000 * statistics.median(times):.1f} ms, max {1000 * times[-1]:.1f} ms over "
        f"{args.scrapes} scrapes; {len(body)} bytes, {lines} lines; "
        f"one alert evaluation {alert_ms:.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
