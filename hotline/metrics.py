"""Prometheus metrics: one registry, small explicit update functions, and a snapshot collector.

Counters and histograms move when something happens (a call ends, the router decides, an IVR
turn ends, a prompt is played) through :class:`HotlineMetrics` methods; everything that is a
level (calls in progress, callers waiting, agents by state, backlog, SIP legs, ...) is read at
scrape time from a :class:`Snapshot` the adapter builds, so nothing can drift.

Labels stay bounded: queue names (from the config), phases, states, causes, alert codes. No
call id, number or agent id is ever a label. The exposition is prometheus_client's, not ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import alerts

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: call.ended causes that become label values; anything else is counted as "other"
CAUSES = frozenset(
    {
        "caller_hangup",
        "agent_hangup",
        "abandoned",
        "ivr_hangup",
        "transferred",
        "failed",
        "shutdown",
        "callback_requested",
        "overflow_voicemail",
        "hung_up_by_cti",
        "no_answer",
        "busy",
    }
)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
TURN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The levels at one moment, as the adapter reads them (None: not measured here)."""

    calls_by_phase: Mapping[str, int] = field(default_factory=dict)  # phase -> calls in progress
    waiting: Mapping[str, int] = field(default_factory=dict)  # queue -> callers waiting
    longest_wait: Mapping[str, float] = field(default_factory=dict)  # queue -> seconds
    agents: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (queue, state) -> agents
    service_level: Mapping[str, float | None] = field(default_factory=dict)  # queue -> 0..1, this interval
    asa: Mapping[str, float | None] = field(default_factory=dict)  # queue -> seconds, this interval
    abandon_rate: Mapping[str, float | None] = field(default_factory=dict)  # queue -> 0..1, this interval
    sip_legs: int = 0  # SIP call legs up (callers and agents)
    speech_streams: int = 0  # live recognizers
    outbox_backlog: int | None = None  # events not yet published to MQTT; None: no MQTT
    mqtt_lag_seconds: float | None = None  # age of the oldest unpublished event
    mqtt_connected: bool | None = None
    mqtt_disconnected_seconds: float | None = None  # seconds since MQTT was last connected (0 = up)
    disk_free: float | None = None  # 0..1 free on the recordings directory's file system
    alerts_active: Iterable[tuple[str, str, str]] = ()  # (code, severity, queue or "")


def alert_samples(s: Snapshot) -> alerts.Samples:
    """What the alert rules watch, from a snapshot."""
    out: dict[tuple[str, str | None], float] = {}
    for queue, value in s.service_level.items():
        if value is not None:
            out[("service_level", queue)] = value
    for queue, value in s.abandon_rate.items():
        if value is not None:
            out[("abandon_rate", queue)] = value
    for queue, seconds in s.longest_wait.items():
        out[("longest_wait", queue)] = seconds
    logged_in: dict[str, int] = {}
    for (queue, state), n in s.agents.items():
        if state != "logged_out":
            logged_in[queue] = logged_in.get(queue, 0) + n
    for queue, n in s.waiting.items():
        out[("no_agents", queue)] = float(n) if logged_in.get(queue, 0) == 0 else 0.0
    if s.disk_free is not None:
        out[("disk_free", None)] = s.disk_free
    if s.outbox_backlog is not None:
        out[("outbox_backlog", None)] = float(s.outbox_backlog)
    if s.mqtt_disconnected_seconds is not None:
        out[("mqtt_disconnected", None)] = s.mqtt_disconnected_seconds
    return out


class _SnapshotCollector(Collector):
    def __init__(self, read: Callable[[], Snapshot]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        s = self._read()

        def family(
            name: str, doc: str, labels: list[str], items: Iterable[tuple[list[str], float | None]]
        ) -> Metric:
            g = GaugeMetricFamily(name, doc, labels=labels)
            for values, value in items:
                if value is not None:
                    g.add_metric(values, float(value))
            return g

        yield family(
            "hotline_calls_in_progress",
            "Calls in progress by phase.",
            ["phase"],
            (([p], n) for p, n in s.calls_by_phase.items()),
        )
        yield family(
            "hotline_queue_waiting",
            "Callers waiting in line.",
            ["queue"],
            (([q], n) for q, n in s.waiting.items()),
        )
        yield family(
            "hotline_queue_longest_wait_seconds",
            "Seconds the longest-waiting caller has waited.",
            ["queue"],
            (([q], v) for q, v in s.longest_wait.items()),
        )
        yield family(
            "hotline_queue_agents",
            "Agents able to serve the queue, by state.",
            ["queue", "state"],
            (([q, st], n) for (q, st), n in s.agents.items()),
        )
        yield family(
            "hotline_queue_service_level_ratio",
            "Answered within the service-level threshold over answered+abandoned, this interval.",
            ["queue"],
            (([q], v) for q, v in s.service_level.items()),
        )
        yield family(
            "hotline_queue_asa_seconds",
            "Average speed of answer, this interval.",
            ["queue"],
            (([q], v) for q, v in s.asa.items()),
        )
        yield family(
            "hotline_queue_abandon_ratio",
            "Abandoned over answered+abandoned, this interval.",
            ["queue"],
            (([q], v) for q, v in s.abandon_rate.items()),
        )
        yield family("hotline_sip_legs", "SIP call legs up.", [], [([], s.sip_legs)])
        yield family("hotline_speech_streams", "Speech recognizers in use.", [], [([], s.speech_streams)])
        yield family(
            "hotline_outbox_backlog", "Events not yet published to MQTT.", [], [([], s.outbox_backlog)]
        )
        yield family(
            "hotline_mqtt_lag_seconds",
            "Age of the oldest event not yet published to MQTT.",
            [],
            [([], s.mqtt_lag_seconds)],
        )
        connected = None if s.mqtt_connected is None else float(s.mqtt_connected)
        yield family(
            "hotline_mqtt_connected", "1 while the MQTT publisher is connected.", [], [([], connected)]
        )
        yield family(
            "hotline_recordings_disk_free_ratio",
            "Free space on the recordings file system, 0..1.",
            [],
            [([], s.disk_free)],
        )
        yield family(
            "hotline_alert_active",
            "1 for each alert raised and not yet cleared.",
            ["code", "severity", "queue"],
            (([c, sev, q], 1.0) for c, sev, q in s.alerts_active),
        )


class HotlineMetrics:
    """The registry and its update functions. ``read`` builds the snapshot at scrape time."""

    def __init__(self, read: Callable[[], Snapshot] | None = None, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)  # the snapshot is read at scrape time only
        if process:
            ProcessCollector(
                registry=self.registry
            )  # process_cpu_seconds_total, process_resident_memory_bytes
        self.calls = Counter(
            "hotline_calls",
            'Calls that ended, by queue ("" = never queued) and outcome.',
            ["queue", "outcome"],
            registry=self.registry,
        )
        self.abandons = Counter(
            "hotline_abandons",
            "Callers who hung up while waiting in line.",
            ["queue"],
            registry=self.registry,
        )
        self.connects = Counter(
            "hotline_connects", "Callers connected to an agent.", ["queue"], registry=self.registry
        )
        self.decisions = Counter(
            "hotline_routing_decisions",
            "Routing decisions by kind (offer, overflow, callback_dial).",
            ["decision"],
            registry=self.registry,
        )
        self.routing_latency = Histogram(
            "hotline_routing_decision_seconds",
            "Seconds one step of the router took (event in, actions out).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.turns = Histogram(
            "hotline_ivr_turn_seconds",
            "From the caller's input (key or end of speech) to the next prompt playing.",
            ["input"],
            buckets=TURN_BUCKETS,
            registry=self.registry,
        )
        self.prompts = Counter(
            "hotline_prompts",
            "Prompts played, by source (recorded WAV, synthesized, tone).",
            ["source"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "hotline_alerts_raised",
            "Alerts raised, by code and severity.",
            ["code", "severity"],
            registry=self.registry,
        )
        self._read = read or Snapshot
        self.registry.register(_SnapshotCollector(lambda: self._read()))

    def set_source(self, read: Callable[[], Snapshot]) -> None:
        self._read = read

    # -------------------------------------------------------------- updates
    def observe_event(self, envelope: Mapping[str, Any]) -> None:
        """A bus sink: counts from the events every integrator also sees."""
        name, data = envelope.get("event"), envelope.get("data") or {}
        if name == "call.ended":
            cause = str(data.get("cause") or "")
            self.calls.labels(str(data.get("queue") or ""), cause if cause in CAUSES else "other").inc()
        elif name == "call.abandoned":
            self.abandons.labels(str(data.get("queue", ""))).inc()
        elif name == "call.connected":
            self.connects.labels(str(data.get("queue", ""))).inc()
        elif name == "alert.raised":
            self.alerts.labels(str(data.get("code", "")), str(data.get("severity", "warning"))).inc()

    def routed(self, seconds: float, outputs: Iterable[object]) -> None:
        """One router step took ``seconds`` and produced ``outputs``."""
        self.routing_latency.observe(seconds)
        for out in outputs:
            kind = {"RingAgent": "offer", "OverflowCall": "overflow", "DialCallback": "callback_dial"}.get(
                type(out).__name__
            )
            if kind is not None:
                self.decisions.labels(kind).inc()

    def ivr_turn(self, input_kind: str, seconds: float) -> None:
        self.turns.labels(input_kind).observe(seconds)

    def prompt(self, source: str) -> None:
        self.prompts.labels(source).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
