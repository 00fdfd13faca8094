"""Routing-decision benchmark: the ACD core against a naive baseline, in one run.

    .venv/bin/python -m bench.router [--decisions 20000] [--naive-decisions 300] [--seed 4]

Workload: 1,000 agents and 10,000 waiting callers in 16 queues over 8 skills, with
proficiencies 1-5, minimum levels 1-4, caller priorities 0-9 (aging 60 s), relaxation
steps (30 s: minimum 2; 90 s: drop a skill) on half the queues and mixed strategies.

**A decision** is one ``Router.handle(AgentBecameReady)`` call for an agent in wrap-up
while ~10,000 callers wait: the core picks the caller the agent should take, asks the
caller's strategy, and emits the offer (``RingAgent``). Only that call is timed.
Between decisions (untimed) the agent answers and hangs up (back to wrap-up), a new
caller arrives so 10,000 keep waiting, the clock moves 50 ms and due timers
(relaxation steps) run.

**The naive baseline** is the pre-issue router's algorithm, extended to proficiency
levels and relaxation: on every decision it collects the available agents by scanning
every agent, sorts every waiting caller by effective priority, and for each caller in
that order scans the available agents for one with the skills. For the first
``--naive-decisions`` decisions both run in lockstep on the same events and the
benchmark checks they pick the same caller.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from dataclasses import dataclass

import acd
from acd import AgentSpec, QueueSpec, RelaxStep
from acd import events as ev
from acd.model import qualifies, relaxed_requirements, skill_levels

AGENTS, WAITING, QUEUES, SKILLS = 1000, 10_000, 16, 8
STEP = 0.05  # seconds of simulated time between decisions
STRATEGY_MIX = ("longest_idle", "longest_idle", "fewest_calls", "best_proficiency", "round_robin")


def workload(seed: int) -> tuple[list[QueueSpec], list[AgentSpec]]:
    rnd = random.Random(seed)
    skills = [f"s{i}" for i in range(SKILLS)]
    queues = []
    for i in range(QUEUES):
        need = rnd.sample(skills, rnd.choice((1, 2)))
        relax = (RelaxStep(after=30, min_level=2), RelaxStep(after=90, drop=(need[-1],))) if i % 2 else ()
        queues.append(
            QueueSpec(
                name=f"q{i}",
                skills={s: rnd.randint(1, 4) for s in need},
                strategy=STRATEGY_MIX[i % len(STRATEGY_MIX)],
                relax=relax,
                wrap_up=1e9,  # agents leave wrap-up only by the timed AgentBecameReady
                ring_timeout=1e9,
            )
        )
    agents = [
        AgentSpec(
            id=f"a{i}",
            name=f"A{i}",
            skills={s: rnd.randint(1, 5) for s in rnd.sample(skills, rnd.randint(2, 4))},
            contact=f"sip:a{i}@bench",
        )
        for i in range(AGENTS)
    ]
    return queues, agents


@dataclass(slots=True)
class NaiveCaller:
    call_id: str
    queue: QueueSpec
    priority: int
    enqueued_at: float
    order: int


class NaiveRouter:
    """Scan every agent for every caller, on every decision."""

    def __init__(self, queues: list[QueueSpec], agents: list[AgentSpec]) -> None:
        self.reqs = {q.name: relaxed_requirements(q) for q in queues}
        self.after = {q.name: sorted(s.after for s in q.relax) for q in queues}
        self.levels = {a.id: skill_levels(a.skills, default=5) for a in agents}
        self.state = dict.fromkeys(self.levels, "wrap_up")
        self.idle_since = dict.fromkeys(self.levels, 0.0)
        self.callers: dict[str, NaiveCaller] = {}
        self.order = 0

    def enqueue(self, call_id: str, queue: QueueSpec, priority: int, now: float) -> None:
        self.callers[call_id] = NaiveCaller(call_id, queue, priority, now, self.order)
        self.order += 1

    def ready(self, agent_id: str, now: float) -> str | None:
        self.state[agent_id], self.idle_since[agent_id] = "available", now
        available = [a for a, s in self.state.items() if s == "available"]

        def rank(c: NaiveCaller) -> tuple[float, float, int]:
            eff = c.priority + (now - c.enqueued_at) / c.queue.aging_seconds
            return (-eff, c.enqueued_at, c.order)

        picked = None
        for caller in sorted(self.callers.values(), key=rank):
            wait = now - caller.enqueued_at
            step = sum(1 for t in self.after[caller.queue.name] if t <= wait)
            need = self.reqs[caller.queue.name][step]
            best = None
            for agent in available:
                if (
                    self.state[agent] == "available"
                    and qualifies(self.levels[agent], need)
                    and (best is None or self.idle_since[agent] < self.idle_since[best])
                ):
                    best = agent
            if best is not None:
                self.state[best] = "reserved"
                del self.callers[caller.call_id]
                picked = picked or caller.call_id
                available.remove(best)
                if not available:
                    break
        return picked

    def busy_again(self, agent_id: str) -> None:
        self.state[agent_id] = "wrap_up"


def percentile(sorted_ns: list[int], p: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(p * len(sorted_ns)))] / 1000.0  # microseconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--decisions", type=int, default=20_000, help="timed core decisions")
    parser.add_argument("--naive-decisions", type=int, default=300, help="of those, also run by the baseline")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    queues, specs = workload(args.seed)
    router = acd.build_router(queues, specs)
    naive = NaiveRouter(queues, specs)
    now = 0.0
    serial = 0

    def new_caller(run_naive: bool) -> None:
        nonlocal serial
        queue = rnd.choice(queues)
        priority = rnd.choice((0, 0, 0, 0, 1, 2, 3, 5, 9))
        cid = f"c{serial}"
        serial += 1
        router.handle(ev.CallEnqueued(call_id=cid, queue=queue.name, priority=priority), now)
        if run_naive:
            naive.enqueue(cid, queue, priority, now)

    def cycle(agent_id: str, call_id: str) -> None:
        """Untimed: the agent answers and hangs up; it is in wrap-up again."""
        router.handle(ev.AgentAnswered(call_id=call_id, agent_id=agent_id), now)
        router.handle(ev.AgentHungUp(call_id=call_id, agent_id=agent_id), now)

    t0 = time.perf_counter()
    for spec in specs:
        router.handle(ev.AgentLoggedIn(agent_id=spec.id), now)
    for _ in range(WAITING):
        new_caller(True)
        now += 0.001
    # every agent takes one call and ends in wrap-up (setup, untimed)
    in_wrap: list[str] = []
    for spec in specs:
        out = router.handle(ev.AgentBecameReady(agent_id=spec.id), now)
        rings = [o for o in out if isinstance(o, ev.RingAgent)]
        if rings:
            naive.callers.pop(rings[0].call_id)
            cycle(spec.id, rings[0].call_id)
            new_caller(True)
            in_wrap.append(spec.id)
    setup = time.perf_counter() - t0
    idle = len(specs) - len(in_wrap)

    gc.collect()
    gc.freeze()  # setup objects are permanent: keep the collector from rescanning them
    core_ns: list[int] = []
    naive_ns: list[int] = []
    offers = mismatches = 0
    for i in range(args.decisions):
        lockstep = i < args.naive_decisions
        now += STEP
        if (deadline := router.next_deadline()) is not None and deadline <= now:
            router.on_timer(now)
        agent_id = in_wrap[rnd.randrange(len(in_wrap))]
        event = ev.AgentBecameReady(agent_id=agent_id)
        start = time.perf_counter_ns()
        out = router.handle(event, now)
        core_ns.append(time.perf_counter_ns() - start)
        rings = [o for o in out if isinstance(o, ev.RingAgent)]
        picked = rings[0].call_id if rings else None
        if lockstep:
            start = time.perf_counter_ns()
            naive_pick = naive.ready(agent_id, now)
            naive_ns.append(time.perf_counter_ns() - start)
            mismatches += naive_pick != picked
            naive.busy_again(agent_id)
        if picked is None:
            in_wrap.remove(agent_id)  # stays available; a later caller takes it
            continue
        offers += 1
        cycle(agent_id, picked)
        new_caller(lockstep)

    core_ns.sort()
    naive_ns.sort()
    core_mean = statistics.fmean(core_ns) / 1000
    print(
        f"workload: {AGENTS} agents, {WAITING} waiting callers, {QUEUES} queues, {SKILLS} skills"
        f" (setup {setup:.1f} s)"
    )
    print(
        f"callers waiting at end: {sum(router.counts(q.name).waiting for q in queues)};"
        f" agents idle after setup: {idle}"
    )
    print(f"core : {len(core_ns)} decisions ({offers} offered a caller)")
    print(
        f"  p50 {percentile(core_ns, 0.50):7.1f} us   p99 {percentile(core_ns, 0.99):7.1f} us"
        f"   max {core_ns[-1] / 1000:8.1f} us   mean {core_mean:6.1f} us"
        f"   {1e6 / core_mean:10.0f} decisions/s"
    )
    if naive_ns:
        naive_mean = statistics.fmean(naive_ns) / 1000
        print(
            f"naive: {len(naive_ns)} decisions (same events in lockstep;"
            f" {mismatches} picked a different caller)"
        )
        print(
            f"  p50 {percentile(naive_ns, 0.50):7.1f} us   p99 {percentile(naive_ns, 0.99):7.1f} us"
            f"   max {naive_ns[-1] / 1000:8.1f} us   mean {naive_mean:6.1f} us"
            f"   {1e6 / naive_mean:10.0f} decisions/s"
        )
        print(f"speed-up (decisions/s, core vs naive): {naive_mean / core_mean:.0f}x")
        p99 = percentile(core_ns, 0.99)
        met = "met" if naive_mean / core_mean >= 20 else "MISSED"
        print(f"targets: core p99 < 100 us: {'met' if p99 < 100 else 'MISSED'}; >= 20x naive: {met}")


if __name__ == "__main__":
    main()
