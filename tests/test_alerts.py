"""Operating alerts, core tier: a fake clock steps each rule through raised and cleared."""

from __future__ import annotations

import pytest

import alerts
from alerts import AlertCleared, AlertRaised, Rule, build_alerts, default_rules

from .helpers import FakeClock

# (metric, a value that trips the rule, a value that does not, the threshold, per queue)
CASES = [
    ("service_level", 0.55, 0.9, 0.8, True),
    ("longest_wait", 150.0, 30.0, 120.0, True),
    ("abandon_rate", 0.25, 0.05, 0.1, True),
    ("no_agents", 3.0, 0.0, 0.0, True),
    ("disk_free", 0.04, 0.5, 0.1, False),
    ("outbox_backlog", 5000.0, 10.0, 1000.0, False),
    ("mqtt_disconnected", 45.0, 0.0, 30.0, False),
]


@pytest.mark.parametrize(
    ("metric", "bad", "good", "threshold", "per_queue"), CASES, ids=[c[0] for c in CASES]
)
def test_each_rule_raises_once_after_its_hold_and_clears_once(
    metric: str, bad: float, good: float, threshold: float, per_queue: bool
) -> None:
    clock = FakeClock()
    engine = build_alerts([Rule(metric=metric, threshold=threshold, for_seconds=60.0, severity="critical")])
    queue = "sales" if per_queue else None
    assert alerts.METRICS[metric].per_queue is per_queue

    def step(value: float, seconds: float) -> list[alerts.Alert]:
        clock.advance(seconds)
        return engine.evaluate({(metric, queue): value}, clock.now)

    assert step(good, 0) == []
    assert step(bad, 10) == []  # the condition starts ...
    assert engine.next_deadline() == pytest.approx(clock.now + 60)
    assert step(bad, 59) == []  # ... and has held 59 s: not yet
    assert step(good, 0.5) == [] and step(bad, 0.5) == []  # a blip restarts the hold
    assert step(bad, 59.9) == []
    (raised,) = step(bad, 0.2)
    assert isinstance(raised, AlertRaised) and raised.wire == "alert.raised"
    assert raised.code == alerts.METRICS[metric].code and raised.severity == "critical"
    assert (raised.value, raised.limit, raised.queue) == (bad, threshold, queue)
    assert step(bad, 30) == [] and step(bad, 300) == []  # once per transition
    assert step(good, 10) == []  # clearing waits for the same hold
    assert step(good, 59) == []
    (cleared,) = step(good, 1)
    assert isinstance(cleared, AlertCleared) and cleared.wire == "alert.cleared"
    assert (cleared.code, cleared.value, cleared.limit, cleared.queue) == (
        raised.code,
        good,
        threshold,
        queue,
    )
    assert step(good, 600) == []
    assert engine.active() == []


def test_per_queue_rules_watch_each_queue_apart_and_a_queue_filter_narrows() -> None:
    engine = build_alerts(
        [
            Rule(metric="longest_wait", threshold=60.0),
            Rule(metric="no_agents", threshold=0.0, queue="support"),
        ]
    )
    samples = {
        ("longest_wait", "sales"): 90.0,
        ("longest_wait", "support"): 10.0,
        ("no_agents", "sales"): 2.0,
        ("no_agents", "support"): 1.0,
    }
    out = engine.evaluate(samples, 0.0)
    assert [(a.code, a.queue) for a in out] == [
        ("queue.longest_wait", "sales"),
        ("queue.no_agents", "support"),
    ]
    # the sales line empties: its sample disappears, which clears it
    out = engine.evaluate({("no_agents", "support"): 1.0}, 1.0)
    assert [(type(a).__name__, a.code, a.queue) for a in out] == [
        ("AlertCleared", "queue.longest_wait", "sales")
    ]


def test_two_levels_of_one_metric_are_two_alerts() -> None:
    engine = build_alerts(default_rules())
    out = engine.evaluate({("longest_wait", "sales"): 400.0}, 0.0)
    assert sorted((a.code, a.severity) for a in out) == [
        ("queue.longest_wait", "critical"),
        ("queue.longest_wait", "warning"),
    ]
    assert "queue sales: longest wait is 400 s, above 300 s" in {a.message for a in out}


def test_default_rules_watch_mqtt_only_when_it_is_configured() -> None:
    assert not any(r.metric.startswith(("mqtt", "outbox")) for r in default_rules())
    assert {r.metric for r in default_rules(mqtt=True)} == set(alerts.METRICS)
    levels = sorted(
        r.threshold for r in default_rules(service_level_target=0.9) if r.metric == "service_level"
    )
    assert levels == [pytest.approx(0.675), 0.9]


def test_bad_rules_are_refused() -> None:
    with pytest.raises(alerts.AlertConfigError, match="unknown metric 'latency'"):
        build_alerts([Rule(metric="latency", threshold=1.0)])
    with pytest.raises(alerts.AlertConfigError, match="severity"):
        build_alerts([Rule(metric="longest_wait", threshold=1.0, severity="page")])  # type: ignore[arg-type]


def test_speech_alerts_share_the_vocabulary() -> None:
    from telephony import asr

    assert asr.AlertRaised is AlertRaised and asr.AlertCleared is AlertCleared
    a = asr.AsrGovernor(asr.GovernorConfig(max_live=1)).admit(0.0).alerts[0]
    assert a.code == "asr.overload" and a.severity == "warning" and a.queue is None
