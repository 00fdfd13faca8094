"""A simulated bank-hotline day through the real ACD router: wall time and calls/s.

    .venv/bin/python bench/simulate_day.py                 # 1,000,000 calls, 300 agents
    .venv/bin/python bench/simulate_day.py --calls 50000   # a quick look
    .venv/bin/python bench/simulate_day.py --profile       # where the time goes (cProfile)

Four queues with mixed skills, log-normal talk, a 1 s ring, wrap-up, exponential
patience. One million calls over 24 h on 300 agents means about 11.6 calls/s: the
mean talk time is chosen so that occupancy is about 0.9 (AHT ~ 22.5 s). That keeps
the router's work per call (agents to scan, callers in line) at the scale of a
large hotline; use ``--agents 2400 --talk 170`` for realistic handle times.
Target: under 60 s of wall time for 1,000,000 calls.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acd.simulator import scenario_from_dict, simulate

QUEUES = [  # name, share of the calls
    ("retail", 0.45),
    ("cards", 0.30),
    ("loans", 0.15),
    ("business", 0.10),
]
GROUPS = [  # share of the agents, skills
    (0.40, ["retail"]),
    (0.20, ["cards"]),
    (0.15, ["retail", "cards"]),
    (0.15, ["loans", "retail"]),
    (0.10, ["business", "loans"]),
]


def scenario(calls: int, agents: int, talk: float, hours: float, seed: int) -> dict[str, object]:
    per_hour = calls / hours * 1.02  # a little over, so max_calls is reached before the end
    counts = [round(share * agents) for share, _ in GROUPS]
    counts[0] += agents - sum(counts)
    return {
        "hours": hours,
        "seed": seed,
        "max_calls": calls,
        "stats": {"service_level_threshold": 20.0, "short_abandon_threshold": 5.0},
        "queues": [
            {
                "name": name,
                "skills": [name],
                "rate": per_hour * share,
                "talk": talk,
                "handle": "lognormal",
                "cv": 0.8,
                "patience": 90.0,
                "wrap_up": 2.0,
                "ring_timeout": 15.0,
            }
            for name, share in QUEUES
        ],
        "agents": [
            {"count": n, "skills": skills, "answer_delay": 1.0, "name": f"g{i}-"}
            for i, ((_, skills), n) in enumerate(zip(GROUPS, counts, strict=True))
        ],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=1_000_000)
    p.add_argument("--agents", type=int, default=300)
    p.add_argument("--talk", type=float, default=20.5, help="mean talk time, seconds")
    p.add_argument("--hours", type=float, help="default: 24 h per 1,000,000 calls (the same load)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="run under cProfile and print the top 25")
    args = p.parse_args(argv)

    hours = args.hours if args.hours is not None else 24.0 * args.calls / 1_000_000
    sc = scenario_from_dict(scenario(args.calls, args.agents, args.talk, hours, args.seed))
    profiler = cProfile.Profile() if args.profile else None
    t0 = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = simulate(sc)
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - t0

    print(
        f"{result['calls']:,} calls, {args.agents} agents, "
        f"{result['simulated_seconds'] / 3600:.1f} h simulated: {wall:.2f} s wall, "
        f"{result['calls'] / wall:,.0f} calls/s, "
        f"{result['router_calls'] / wall:,.0f} router calls/s"
        + (" (under cProfile: slower than without)" if profiler else "")
    )
    print(f"occupancy {result['occupancy']:.1%}")
    for name, q in result["queues"].items():
        print(
            f"  {name:9} offered {q['offered']:>7,} SL20 {q['sl_offered']:.1%} ASA {q['asa']:.1f} s "
            f"abandon {q['abandon_rate']:.1%} AHT {q['aht']:.1f} s"
        )
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
