"""alerts: thresholds on operating figures, as a pure state machine.

Build it with :func:`build_alerts` from rules; call ``evaluate(samples, now)`` with the current
figures and monotonic ``now`` (seconds). It returns ``alert.raised`` / ``alert.cleared`` events,
once per transition: a condition must hold for the rule's ``for_seconds`` before the alert is
raised, and be gone as long before it is cleared. The events are the same vocabulary the
speech governor uses (``asr.overload``, ``asr.model_missing``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

Severity = Literal["warning", "critical"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRaised:
    wire: ClassVar[str] = "alert.raised"
    code: str  # stable code, e.g. "queue.service_level", "asr.overload"
    message: str  # what a person should know / do
    value: float  # the measured value that tripped it, in the metric's unit
    limit: float  # the threshold it crossed, in the same unit
    severity: str = "warning"  # warning or critical
    queue: str | None = None  # the queue it is about; None: the whole server


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertCleared:
    wire: ClassVar[str] = "alert.cleared"
    code: str  # the code of the alert that was raised
    message: str  # what changed
    value: float  # the measured value now
    limit: float  # the threshold it is back on the right side of
    severity: str = "warning"  # the severity it was raised with
    queue: str | None = None  # the queue it was about; None: the whole server


Alert = AlertRaised | AlertCleared


@dataclass(frozen=True, slots=True)
class Metric:
    code: str  # the alert code
    unit: str  # for messages: "", "s", "%"
    below: bool  # True: alert when the value falls below the threshold
    per_queue: bool  # True: one sample (and one alert) per queue
    what: str  # for messages


METRICS: dict[str, Metric] = {
    "service_level": Metric("queue.service_level", "%", True, True, "service level"),
    "longest_wait": Metric("queue.longest_wait", "s", False, True, "longest wait"),
    "abandon_rate": Metric("queue.abandon_rate", "%", False, True, "abandon rate"),
    "no_agents": Metric("queue.no_agents", "", False, True, "callers waiting with no agent logged in"),
    "disk_free": Metric("disk.recordings_free", "%", True, False, "free space on the recordings disk"),
    "outbox_backlog": Metric("mqtt.backlog", "", False, False, "events not yet published to MQTT"),
    "mqtt_disconnected": Metric("mqtt.disconnected", "s", False, False, "seconds MQTT has been disconnected"),
}


class AlertConfigError(ValueError):
    """A rule names an unknown metric or severity (you misused us)."""

    code = "alerts.bad_rule"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    metric: str  # a key of METRICS
    threshold: float  # in the metric's unit (fractions 0..1 for %)
    for_seconds: float = 0.0  # seconds the condition must hold (and be gone) before a transition
    severity: Severity = "warning"
    queue: str = ""  # per-queue metrics: only this queue; "" = each queue


#: Samples: (metric, queue or None) -> value. A per-queue metric has one sample per queue.
Samples = Mapping[tuple[str, str | None], float]


def default_rules(*, service_level_target: float = 0.8, mqtt: bool = False) -> list[Rule]:
    """The built-in rules (used when the config has no [[alerts]]): two levels each."""
    rules = [
        Rule(metric="service_level", threshold=service_level_target, for_seconds=300.0),
        Rule(
            metric="service_level",
            threshold=service_level_target * 0.75,
            for_seconds=300.0,
            severity="critical",
        ),
        Rule(metric="longest_wait", threshold=120.0),
        Rule(metric="longest_wait", threshold=300.0, severity="critical"),
        Rule(metric="abandon_rate", threshold=0.10, for_seconds=300.0),
        Rule(metric="abandon_rate", threshold=0.20, for_seconds=300.0, severity="critical"),
        Rule(metric="no_agents", threshold=0.0, for_seconds=10.0, severity="critical"),
        Rule(metric="disk_free", threshold=0.10),
        Rule(metric="disk_free", threshold=0.05, severity="critical"),
    ]
    if mqtt:
        rules += [
            Rule(metric="outbox_backlog", threshold=1000.0, for_seconds=60.0),
            Rule(metric="mqtt_disconnected", threshold=30.0, severity="critical"),
        ]
    return rules


@dataclass(slots=True)
class _State:
    raised: bool = False
    since: float | None = None  # seconds: when the condition started to differ from `raised`


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{100 * value:.1f}%"
    if unit == "s":
        return f"{value:.0f} s"
    return f"{value:g}"


@dataclass(slots=True)
class AlertEngine:
    """Rules in, transitions out. Time is an argument; nothing here reads a clock."""

    rules: tuple[Rule, ...]
    _states: dict[tuple[int, str | None], _State] = field(default_factory=dict)

    def evaluate(self, samples: Samples, now: float) -> list[Alert]:
        """The transitions that ``samples`` at ``now`` cause. A sample that is missing (a queue
        with nobody to measure, MQTT not configured) counts as the condition not holding."""
        out: list[Alert] = []
        for i, rule in enumerate(self.rules):
            metric = METRICS[rule.metric]
            if metric.per_queue:
                queues = {q for (m, q) in samples if m == rule.metric and q is not None}
                queues |= {q for (j, q) in self._states if j == i and q is not None}
                targets: list[str | None] = [q for q in sorted(queues) if not rule.queue or q == rule.queue]
            else:
                targets = [None]
            for queue in targets:
                value = samples.get((rule.metric, queue))
                out += self._step(i, rule, metric, queue, value, now)
        return out

    def next_deadline(self) -> float | None:
        """When a pending transition is due (the adapter evaluates then, or on its own tick)."""
        due = [
            s.since + self.rules[i].for_seconds for (i, _q), s in self._states.items() if s.since is not None
        ]
        return min(due) if due else None

    def active(self) -> list[tuple[Rule, str | None]]:
        """The alerts raised now: (rule, queue)."""
        return [(self.rules[i], q) for (i, q), s in self._states.items() if s.raised]

    def _step(
        self, i: int, rule: Rule, metric: Metric, queue: str | None, value: float | None, now: float
    ) -> list[Alert]:
        state = self._states.setdefault((i, queue), _State())
        holds = value is not None and (value < rule.threshold if metric.below else value > rule.threshold)
        if holds == state.raised:
            state.since = None
            return []
        if state.since is None:
            state.since = now
        if now - state.since < rule.for_seconds - 1e-9:
            return []
        state.since = None
        state.raised = holds
        shown = 0.0 if value is None else value
        where = f"queue {queue}: " if queue is not None else ""
        side = "below" if metric.below else "above"
        if holds:
            return [
                AlertRaised(
                    code=metric.code,
                    message=f"{where}{metric.what} is {_fmt(shown, metric.unit)}, {side} "
                    f"{_fmt(rule.threshold, metric.unit)}"
                    + (f" for {rule.for_seconds:g} s" if rule.for_seconds else ""),
                    value=shown,
                    limit=rule.threshold,
                    severity=rule.severity,
                    queue=queue,
                )
            ]
        if state.raised is False and not holds and value is None and queue is not None:
            del self._states[(i, queue)]  # the queue went quiet: forget it
        return [
            AlertCleared(
                code=metric.code,
                message=f"{where}{metric.what} is back at {_fmt(shown, metric.unit)} "
                f"({side} {_fmt(rule.threshold, metric.unit)} no more)",
                value=shown,
                limit=rule.threshold,
                severity=rule.severity,
                queue=queue,
            )
        ]


def build_alerts(rules: Iterable[Rule]) -> AlertEngine:
    """The one wiring point. Raises :class:`AlertConfigError` for an unknown metric or severity."""
    checked = tuple(rules)
    for rule in checked:
        if rule.metric not in METRICS:
            raise AlertConfigError(f"unknown metric {rule.metric!r}; use one of {', '.join(METRICS)}")
        if rule.severity not in ("warning", "critical"):
            raise AlertConfigError(f"severity must be warning or critical, not {rule.severity!r}")
    return AlertEngine(checked)


__all__ = [
    "METRICS",
    "Alert",
    "AlertCleared",
    "AlertConfigError",
    "AlertEngine",
    "AlertRaised",
    "Metric",
    "Rule",
    "Samples",
    "Severity",
    "build_alerts",
    "default_rules",
]
