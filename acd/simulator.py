"""A discrete-event simulator that drives the real ACD router.

Callers arrive per queue as a Poisson process, wait (and may abandon after an
exponentially distributed patience), are rung to agents by the real
:class:`acd.Router`, talk for an exponential or log-normal time and hang up; the
router's own timers run ring-no-answer and wrap-up. The figures come from the
statistics core (:mod:`acd.stats`), fed with every router output, as in the server.

The clock is a heap of ``(time, seq, kind, ...)`` entries; the router's
``next_deadline()`` is compared with the heap top at each step and
``on_timer(deadline)`` is called when it comes first. There is no I/O in
:func:`simulate`; :func:`main` is the command line (``hotline simulate``).
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import math
import random
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import erlang
from . import events as ev
from .model import AcdError, AcdUsageError, AgentSpec, QueueSpec
from .router import Router
from .stats import StatsConfig, build_statistics

__all__ = ["AgentGroup", "QueueLoad", "Scenario", "SimulationError", "main", "simulate"]

HANDLE_KINDS = ("exponential", "lognormal")

# heap entry kinds
_ARRIVAL, _ANSWER, _HANGUP, _ABANDON, _HORIZON, _WARMUP = range(6)


class SimulationError(AcdUsageError):
    """The scenario is malformed (a bad file, a bad flag, an unknown queue)."""

    code = "acd.bad_scenario"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueLoad:
    """A queue (the router's own :class:`QueueSpec`) and the traffic offered to it."""

    spec: QueueSpec  # routing config: skills, ring_timeout, wrap_up, ...
    rate: float  # calls per hour, Poisson arrivals
    talk: float  # seconds, mean talk time (AHT = talk + the queue's wrap_up)
    handle: str = "exponential"  # talk-time distribution: "exponential" or "lognormal"
    cv: float = 1.0  # coefficient of variation of a log-normal talk time (sd / mean)
    patience: float | None = None  # seconds, mean exponential patience; None: nobody abandons
    priority: int = 0  # caller priority given to the router


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentGroup:
    """``count`` identical agents."""

    count: int  # how many agents
    skills: Any  # whatever AgentSpec.skills takes: a tuple of names (or, later, name -> proficiency)
    answer_delay: float = 0.0  # seconds from ring to answer; >= ring_timeout means never answers
    name: str = "agent"  # id prefix: agent ids are f"{name}{n}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    queues: tuple[QueueLoad, ...]
    agents: tuple[AgentGroup, ...]
    hours: float = 1.0  # hours of arrivals; the run continues until every caller has left
    seed: int = 1  # random seed: the same scenario and seed give the same figures
    warmup: float = 0.0  # seconds; statistics are reset at this time (start-up transient)
    max_calls: int | None = None  # stop arrivals after this many calls (all queues together)
    stats: StatsConfig = field(default_factory=StatsConfig)


# ------------------------------------------------------------------- running
def _talk_sampler(load: QueueLoad, rng: random.Random) -> Any:
    mean = load.talk
    if mean <= 0:
        return lambda: 0.0
    if load.handle == "exponential":
        rate = 1.0 / mean
        expo = rng.expovariate
        return lambda: expo(rate)
    if load.handle == "lognormal":
        sigma2 = math.log1p(load.cv * load.cv)
        mu, sigma = math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)
        logn = rng.lognormvariate
        return lambda: logn(mu, sigma)
    raise SimulationError(f"handle must be one of {HANDLE_KINDS}, not {load.handle!r}")


def _check_scenario(scenario: Scenario) -> None:
    """Every figure in range, each problem named (raises :class:`SimulationError`)."""
    problems: list[str] = []
    if not scenario.queues or not scenario.agents:
        problems.append("a scenario needs at least one queue and one agent group")
    for g in scenario.agents:
        if g.count < 1:
            problems.append(f"agent group {g.name!r}: count (--agents) must be at least 1, not {g.count}")
        if g.answer_delay < 0:
            problems.append(f"agent group {g.name!r}: answer_delay must be 0 or more, not {g.answer_delay:g}")
    for q in scenario.queues:
        name = q.spec.name
        for label, value in (("rate (--rate)", q.rate), ("talk (--aht)", q.talk), ("cv", q.cv)):
            if not math.isfinite(value) or value < 0:
                problems.append(f"queue {name!r}: {label} must be 0 or more, not {value:g}")
        if q.patience is not None and q.patience < 0:
            problems.append(f"queue {name!r}: patience must be 0 or more, not {q.patience:g}")
        if q.handle not in HANDLE_KINDS:
            problems.append(f"queue {name!r}: handle must be one of {', '.join(HANDLE_KINDS)}")
    for label, value in (("hours", scenario.hours), ("warmup", scenario.warmup)):
        if not math.isfinite(value) or value < 0:
            problems.append(f"{label} must be 0 or more, not {value:g}")
    if scenario.max_calls is not None and scenario.max_calls < 0:
        problems.append(f"max_calls must be 0 or more, not {scenario.max_calls}")
    if problems:
        raise SimulationError("; ".join(problems))


def simulate(scenario: Scenario) -> dict[str, Any]:
    """Run ``scenario`` to completion and return its figures as plain data."""
    _check_scenario(scenario)
    wall0 = time.perf_counter()
    rng = random.Random(scenario.seed)
    specs = [q.spec for q in scenario.queues]
    agent_specs: list[AgentSpec] = []
    delay: dict[str, float] = {}
    for group in scenario.agents:
        for n in range(1, group.count + 1):
            aid = f"{group.name}{n}"
            if aid in delay:
                raise SimulationError(f"agent id {aid!r} is used twice: give the groups distinct names")
            agent_specs.append(AgentSpec(id=aid, name=aid, skills=group.skills, contact=f"sim:{aid}"))
            delay[aid] = group.answer_delay
    router = Router(specs, agent_specs, None)  # what acd.build_router builds
    stats = build_statistics(specs, agent_specs, scenario.stats, now=0.0)
    observe = stats.observe

    loads = {q.spec.name: q for q in scenario.queues}
    talk = {name: _talk_sampler(q, rng) for name, q in loads.items()}
    waited = dict.fromkeys(loads, 0)  # answered after a wait > 0
    ewt_errors: list[float] = []  # estimate - actual wait, seconds, if the router gives one
    ewt_waits: list[float] = []  # the actual waits of those calls, seconds
    ewt_from = [0.0]  # seconds: only calls queued from then on (after the warm-up) are scored
    ewt_given: dict[str, float] = {}
    horizon = scenario.hours * 3600.0
    max_calls = scenario.max_calls if scenario.max_calls is not None else math.inf

    heap: list[tuple[Any, ...]] = []
    push, pop = heapq.heappush, heapq.heappop
    seq = 0
    ringing: dict[str, int] = {}  # call id -> ring token; an answer with a stale token is dropped
    waiting: set[str] = set()  # callers not yet connected (they may still abandon)
    calls = 0
    router_calls = 0
    horizon_snapshot: dict[str, Any] | None = None

    # what the simulator reacts to, by output type; every other output only feeds the statistics
    kinds: dict[type, int] = {
        ev.RingAgent: 1,
        ev.CancelRing: 2,
        ev.CallConnected: 3,
        ev.CallAbandoned: 4,
        ev.CallQueued: 5,
    }
    for obj in vars(ev).values():  # the router's overflow event, whatever its class is called
        if isinstance(obj, type) and getattr(obj, "wire", None) == "call.overflowed":
            kinds[obj] = 6
    kind_of = kinds.get

    def process(outs: Sequence[Any], now: float) -> None:
        nonlocal seq
        for o in outs:
            observe(o, now)
            kind = kind_of(type(o))
            if kind is None:
                continue
            if kind == 1:  # RingAgent: the agent answers after its delay, unless cancelled first
                seq += 1
                ringing[o.call_id] = seq
                push(heap, (now + delay[o.agent_id], seq, _ANSWER, o.call_id, o.agent_id))
            elif kind == 2:  # CancelRing
                ringing.pop(o.call_id, None)
            elif kind == 3:  # CallConnected: talk, then the agent hangs up
                waiting.discard(o.call_id)
                if o.wait_seconds > 0.0:
                    waited[o.queue] += 1
                if ewt_given:
                    given = ewt_given.pop(o.call_id, None)
                    if given is not None:
                        ewt_errors.append(given - o.wait_seconds)
                        ewt_waits.append(o.wait_seconds)
                seq += 1
                push(heap, (now + talk[o.queue](), seq, _HANGUP, o.call_id, o.agent_id))
            elif kind == 4:  # CallAbandoned
                waiting.discard(o.call_id)
                ewt_given.pop(o.call_id, None)
            elif kind == 5:  # CallQueued
                estimate = getattr(o, "ewt", None)  # EWT hook: used once the router fills it
                if estimate is not None and now >= ewt_from[0]:
                    ewt_given[o.call_id] = float(estimate)
            elif getattr(o, "kind", "queue") != "queue":  # overflowed out of the ACD
                waiting.discard(o.call_id)  # (voicemail, callback, flow node): gone from the line
                ewt_given.pop(o.call_id, None)

    now = 0.0
    for spec in agent_specs:
        process(router.handle(ev.AgentLoggedIn(agent_id=spec.id), now), now)
        process(router.handle(ev.AgentBecameReady(agent_id=spec.id), now), now)
    arrival_rate: dict[str, float] = {}
    for name, load in loads.items():
        if load.rate > 0:
            arrival_rate[name] = load.rate / 3600.0
            seq += 1
            push(heap, (rng.expovariate(arrival_rate[name]), seq, _ARRIVAL, name, None))
    seq += 1
    push(heap, (horizon, seq, _HORIZON, None, None))
    if 0 < scenario.warmup < horizon:
        seq += 1
        push(heap, (scenario.warmup, seq, _WARMUP, None, None))

    expo = rng.expovariate
    Enqueued, Answered, AgentHungUp, CallerHungUp = (
        ev.CallEnqueued,
        ev.AgentAnswered,
        ev.AgentHungUp,
        ev.CallerHungUp,
    )
    next_deadline, on_timer, handle = router.next_deadline, router.on_timer, router.handle
    counted_from = 0  # calls that arrived before the warm-up ended
    while True:
        deadline = next_deadline()
        if heap and (deadline is None or heap[0][0] < deadline):
            now, token, kind, a, b = pop(heap)
            if kind == _ARRIVAL:
                if now >= horizon or calls >= max_calls:
                    continue
                calls += 1
                call_id = str(calls)
                load = loads[a]
                waiting.add(call_id)
                if load.patience is not None:
                    seq += 1
                    push(heap, (now + expo(1.0 / load.patience), seq, _ABANDON, call_id, None))
                seq += 1
                push(heap, (now + expo(arrival_rate[a]), seq, _ARRIVAL, a, None))
                outs = handle(Enqueued(call_id=call_id, queue=a, priority=load.priority), now)
            elif kind == _ANSWER:
                if ringing.get(a) != token:
                    continue  # that ring was cancelled (timeout or caller gone)
                del ringing[a]
                outs = handle(Answered(call_id=a, agent_id=b), now)
            elif kind == _HANGUP:
                outs = handle(AgentHungUp(call_id=a, agent_id=b), now)
            elif kind == _ABANDON:
                if a not in waiting:
                    continue
                outs = handle(CallerHungUp(call_id=a), now)
            elif kind == _HORIZON:
                horizon_snapshot = stats.snapshot(now)
                continue
            else:  # _WARMUP
                stats.reset(now)
                counted_from = calls
                ewt_from[0] = now
                for name in waited:
                    waited[name] = 0
                continue
        elif deadline is not None:
            now = deadline
            outs = on_timer(now)
        else:
            break
        router_calls += 1
        process(outs, now)

    final = stats.snapshot(now)
    at_horizon = horizon_snapshot if horizon_snapshot is not None else final
    return _report(
        scenario,
        final=final,
        at_horizon=at_horizon,
        waited=waited,
        arrivals=calls,
        counted=calls - counted_from,
        end=now,
        wall=time.perf_counter() - wall0,
        router_calls=router_calls,
        ewt_errors=ewt_errors,
        ewt_waits=ewt_waits,
        agents_by_queue={
            name: len(q["agents"]) and sum(q["agents"].values()) for name, q in final["queues"].items()
        },
    )


_QUEUE_KEYS = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "overflowed",
    "sl_offered",
    "sl_no_early_abandons",
    "sl_answered",
    "sl_perf2",
    "abandon_rate",
    "asa",
    "aht",
    "avg_talk",
    "avg_wrap",
    "max_wait",
)


def _report(
    scenario: Scenario,
    *,
    final: dict[str, Any],
    at_horizon: dict[str, Any],
    waited: Mapping[str, int],
    arrivals: int,
    counted: int,
    end: float,
    wall: float,
    router_calls: int,
    ewt_errors: Sequence[float],
    ewt_waits: Sequence[float],
    agents_by_queue: Mapping[str, int],
) -> dict[str, Any]:
    queues: dict[str, Any] = {}
    for load in scenario.queues:
        name = load.spec.name
        figures = final["queues"][name]
        row: dict[str, Any] = {k: figures[k] for k in _QUEUE_KEYS}
        row["p_wait"] = waited[name] / figures["answered"] if figures["answered"] else None
        row["occupancy"] = at_horizon["queues"][name]["occupancy"]
        row["agents"] = agents_by_queue[name]
        prediction = _erlang_prediction(scenario, load, agents_by_queue[name])
        if prediction is not None:
            row["erlang_c"] = prediction
        queues[name] = row
    busy = sum(a["busy_seconds"] for a in at_horizon["agents"].values())
    idle = sum(a["available_seconds"] for a in at_horizon["agents"].values())
    if ewt_errors:
        n = len(ewt_errors)
        mean = sum(ewt_errors) / n
        mae = sum(abs(e) for e in ewt_errors) / n
        mean_wait = sum(ewt_waits) / n
        abs_waited = [abs(err) for err, w in zip(ewt_errors, ewt_waits, strict=True) if w > 0.0]
        ewt: dict[str, Any] = {
            "calls": n,  # answered calls queued after the warm-up (abandons have no actual wait)
            "mean_error": mean,  # seconds, estimate - actual: > 0 overestimates
            "mean_abs_error": mae,  # seconds
            "mean_wait": mean_wait,  # seconds, actual
            "relative_mae": mae / mean_wait if mean_wait > 0 else None,  # MAE / mean actual wait
            "calls_that_waited": len(abs_waited),  # of those, callers with an actual wait > 0
            "mean_abs_error_waited": sum(abs_waited) / len(abs_waited) if abs_waited else None,  # seconds
        }
    else:
        ewt = {"skipped": "no call that was given an estimate was answered after the warm-up"}
    return {
        "seed": scenario.seed,
        "hours": scenario.hours,
        "warmup_seconds": scenario.warmup,
        "service_level_threshold": scenario.stats.service_level_threshold,
        "short_abandon_threshold": scenario.stats.short_abandon_threshold,
        "calls": arrivals,
        "calls_counted": counted,
        "simulated_seconds": end,
        "wall_seconds": wall,
        "calls_per_second": arrivals / wall if wall > 0 else None,
        "router_calls": router_calls,
        "occupancy": busy / (busy + idle) if busy + idle > 0 else None,
        "queues": queues,
        "ewt": ewt,
    }


def _erlang_prediction(scenario: Scenario, load: QueueLoad, agents: int) -> dict[str, Any] | None:
    """Erlang C for a queue when it is the only queue (M/M/c holds only then)."""
    if len(scenario.queues) != 1 or agents < 1 or load.rate <= 0:
        return None
    aht = load.talk + load.spec.wrap_up
    if aht <= 0:
        return None
    offered = load.rate * aht / 3600.0
    t = scenario.stats.service_level_threshold
    return {
        "load_erlangs": offered,
        "p_wait": erlang.erlang_c(agents, offered),
        "service_level": erlang.service_level(agents, offered, aht, t),
        "asa": erlang.asa(agents, offered, aht),
        "occupancy": erlang.occupancy(agents, offered),
        "note": "M/M/c: exact for exponential talk, no abandonment, no ring delay",
    }


# ----------------------------------------------------------------- scenarios
def _queue_spec(raw: Mapping[str, Any]) -> QueueSpec:
    names = {f.name for f in dataclasses.fields(QueueSpec)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in names:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    if "name" not in kwargs:
        raise SimulationError("every queue needs a name")
    kwargs.setdefault("skills", ())
    try:
        return QueueSpec(**kwargs)
    except TypeError as exc:
        raise SimulationError(f"queue {kwargs['name']!r}: {exc}") from None


_LOAD_KEYS = {"rate", "talk", "aht", "handle", "cv", "patience", "priority"}


def scenario_from_dict(raw: Mapping[str, Any]) -> Scenario:
    """Build a scenario from parsed TOML/JSON (see docs/acd-statistics.md)."""
    try:
        queues = []
        for q in raw["queues"]:
            spec = _queue_spec(q)
            talk = q.get("talk", q.get("aht"))
            if talk is None:
                raise SimulationError(f"queue {spec.name!r} needs 'talk' (seconds)")
            patience = q.get("patience")
            queues.append(
                QueueLoad(
                    spec=spec,
                    rate=float(q["rate"]),
                    talk=float(talk),
                    handle=str(q.get("handle", "exponential")),
                    cv=float(q.get("cv", 1.0)),
                    patience=None if patience in (None, 0, "none") else float(patience),
                    priority=int(q.get("priority", 0)),
                )
            )
        agents = []
        for i, g in enumerate(raw["agents"]):
            skills = g.get("skills", ())
            agents.append(
                AgentGroup(
                    count=int(g["count"]),
                    skills=tuple(skills) if isinstance(skills, list) else skills,
                    answer_delay=float(g.get("answer_delay", 0.0)),
                    name=str(g.get("name", f"g{i + 1}-")),
                )
            )
        stats = StatsConfig(**raw.get("stats", {}))
        max_calls = raw.get("max_calls")
        return Scenario(
            queues=tuple(queues),
            agents=tuple(agents),
            hours=float(raw.get("hours", 1.0)),
            seed=int(raw.get("seed", 1)),
            warmup=float(raw.get("warmup", 0.0)),
            max_calls=None if max_calls is None else int(max_calls),
            stats=stats,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SimulationError(f"bad scenario: {exc!r}") from None


def load_scenario(path: Path) -> Scenario:
    text = path.read_text()
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise SimulationError(f"{path}: {exc}") from None
    return scenario_from_dict(raw)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hotline simulate",
        description="Drive the real ACD router with simulated callers and agents; print the figures.",
    )
    p.add_argument("scenario", nargs="?", type=Path, help="a TOML or JSON scenario (flags then override)")
    p.add_argument("--agents", type=int, help="agents (one queue, one skill) [10]")
    p.add_argument("--rate", type=float, help="calls per hour [240]")
    p.add_argument("--aht", type=float, help="mean talk time, seconds [120]")
    p.add_argument("--wrap-up", type=float, help="wrap-up after each call, seconds [0]")
    p.add_argument("--handle", choices=HANDLE_KINDS, help="talk-time distribution [exponential]")
    p.add_argument("--cv", type=float, help="log-normal coefficient of variation [1.0]")
    p.add_argument("--patience", type=float, help="mean patience, seconds (exponential); 0 = none [none]")
    p.add_argument("--answer-delay", type=float, help="seconds an agent takes to answer [0]")
    p.add_argument("--hours", type=float, help="hours of arrivals [8]")
    p.add_argument("--warmup", type=float, help="seconds before statistics start [0]")
    p.add_argument("--seed", type=int, help="random seed [1]")
    p.add_argument("--sl", type=float, help="service-level threshold, seconds [20]")
    p.add_argument("--short-abandon", type=float, help="short-abandon threshold, seconds [5]")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def _scenario_from_args(args: argparse.Namespace) -> Scenario:
    if args.scenario is not None:
        base = load_scenario(args.scenario)
        overrides: dict[str, Any] = {}
        for key in ("hours", "seed", "warmup"):
            if getattr(args, key) is not None:
                overrides[key] = getattr(args, key)
        stats: dict[str, Any] = {}
        if args.sl is not None:
            stats["service_level_threshold"] = args.sl
        if args.short_abandon is not None:
            stats["short_abandon_threshold"] = args.short_abandon
        if stats:
            overrides["stats"] = dataclasses.replace(base.stats, **stats)
        return dataclasses.replace(base, **overrides)

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    patience = pick(args.patience, 0.0)
    raw = {
        "hours": pick(args.hours, 8.0),
        "seed": pick(args.seed, 1),
        "warmup": pick(args.warmup, 0.0),
        "stats": {
            "service_level_threshold": pick(args.sl, 20.0),
            "short_abandon_threshold": pick(args.short_abandon, 5.0),
        },
        "queues": [
            {
                "name": "main",
                "skills": ["main"],
                "rate": pick(args.rate, 240.0),
                "talk": pick(args.aht, 120.0),
                "wrap_up": pick(args.wrap_up, 0.0),
                "handle": pick(args.handle, "exponential"),
                "cv": pick(args.cv, 1.0),
                "patience": patience if patience > 0 else None,
            }
        ],
        "agents": [
            {
                "count": pick(args.agents, 10),
                "skills": ["main"],
                "answer_delay": pick(args.answer_delay, 0.0),
                "name": "a",
            }
        ],
    }
    return scenario_from_dict(raw)


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if pct:
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _text(result: Mapping[str, Any]) -> str:
    lines = [
        f"{result['calls']} calls over {result['simulated_seconds'] / 3600:.2f} h simulated "
        f"in {result['wall_seconds']:.2f} s wall ({_fmt(result['calls_per_second'])} calls/s), "
        f"occupancy {_fmt(result['occupancy'], True)}",
    ]
    t = result["service_level_threshold"]
    for name, q in result["queues"].items():
        lines.append(
            f"{name}: offered {q['offered']} answered {q['answered']} abandoned {q['abandoned']} "
            f"(+{q['short_abandoned']} short) SL{t:g} {_fmt(q['sl_offered'], True)} "
            f"ASA {_fmt(q['asa'])} s AHT {_fmt(q['aht'])} s P(wait) {_fmt(q['p_wait'], True)} "
            f"occupancy {_fmt(q['occupancy'], True)}"
        )
        e = q.get("erlang_c")
        if e is not None:
            lines.append(
                f"  Erlang C: P(wait) {_fmt(e['p_wait'], True)} SL{t:g} {_fmt(e['service_level'], True)} "
                f"ASA {_fmt(e['asa'])} s occupancy {_fmt(e['occupancy'], True)}"
            )
    ewt = result["ewt"]
    if "skipped" in ewt:
        lines.append(f"EWT: {ewt['skipped']}")
    else:
        lines.append(
            f"EWT over {ewt['calls']} answered calls: mean error {ewt['mean_error']:+.1f} s, "
            f"MAE {ewt['mean_abs_error']:.1f} s (mean wait {ewt['mean_wait']:.1f} s, "
            f"relative {_fmt(ewt['relative_mae'], True)})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``hotline simulate``: exit 0, or 2 with a message on a bad scenario."""
    args = _parser().parse_args(argv)
    try:
        scenario = _scenario_from_args(args)
        result = simulate(scenario)
    except (AcdError, OSError) as exc:
        print(f"hotline simulate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=False))
    else:
        print(_text(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
