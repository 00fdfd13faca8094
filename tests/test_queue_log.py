"""hotline.queuelog, core tier: every event it writes has the parameters Asterisk documents
for it (docs: "Queue Logs", queue_log event reference), in order, from envelopes alone."""

from __future__ import annotations

from typing import Any

from hotline.queuelog import LAYOUTS, QueueLog

# Asterisk's documented parameter lists for the events hotline writes (not our own table:
# written out here from the reference, so a change to LAYOUTS is caught)
ASTERISK = {
    "ENTERQUEUE": ["url", "callerid"],
    "CONNECT": ["holdtime", "bridgedchanneluniqueid", "ringtime"],
    "COMPLETECALLER": ["holdtime", "calltime", "origposition"],
    "COMPLETEAGENT": ["holdtime", "calltime", "origposition"],
    "ABANDON": ["position", "origposition", "waittime"],
    "EXITWITHTIMEOUT": ["position", "origposition", "waittime"],
    "EXITEMPTY": ["position", "origposition", "waittime"],
    "FULL": [],
    "RINGNOANSWER": ["ringtime"],
    "AGENTLOGIN": ["channel"],
    "AGENTLOGOFF": ["channel", "logintime"],
    "PAUSE": ["reason"],
    "UNPAUSE": ["reason"],
}


def env(t: float, event: str, call_id: str | None = None, **data: Any) -> dict[str, Any]:
    import datetime as dt

    iso = dt.datetime.fromtimestamp(1_800_000_000 + t, dt.UTC).isoformat().replace("+00:00", "Z")
    return {"event": event, "time": iso, "call_id": call_id, "data": data}


def state(t: float, before: str, after: str, reason: str | None = None) -> dict[str, Any]:
    return env(t, "agent.state_changed", agent_id="7", reason=reason, **{"from": before, "to": after})


def overflow(t: float, call_id: str, reason: str, wait: float) -> dict[str, Any]:
    return env(t, "call.overflowed", call_id, queue="support", reason=reason, kind="voicemail", target="",
               wait_seconds=wait)  # fmt: skip


def run(*envelopes: dict[str, Any]) -> list[list[str]]:
    log = QueueLog()
    return [line.split("|") for e in envelopes for line in log.feed(e)]


def test_layouts_match_asterisks_reference() -> None:
    assert {k: list(v) for k, v in LAYOUTS.items()} == ASTERISK


def test_every_line_has_its_events_fields() -> None:
    lines = run(
        state(0, "logged_out", "not_ready", "login"),
        state(1, "not_ready", "available"),
        env(2, "call.offered", "a", caller="5550001"),
        env(3, "call.queued", "a", queue="sales", priority=0, position=1),
        env(4, "call.offered", "b", caller="5550002"),
        env(5, "call.queued", "b", queue="sales", priority=0, position=2),
        env(6, "agent.offered", "a", agent_id="7", queue="sales"),
        env(21, "agent.offer_failed", "a", agent_id="7", cause="no_answer", consecutive=1),
        env(22, "agent.offered", "a", agent_id="7", queue="sales"),
        env(25, "call.connected", "a", agent_id="7", queue="sales", wait_seconds=22.0),
        env(30, "call.abandoned", "b", queue="sales", wait_seconds=25.0),
        env(85, "call.ended", "a", cause="agent_hangup", queue="sales", agent_id="7", talk_seconds=60.0),
        state(90, "available", "not_ready", "lunch"),
        state(95, "not_ready", "logged_out"),
        env(100, "call.offered", "c", caller="5550003"),
        env(101, "call.queued", "c", queue="support", priority=0, position=1),
        overflow(161, "c", "max_wait", 60.0),
        env(170, "call.offered", "d"),
        env(171, "call.queued", "d", queue="support", priority=0, position=1),
        overflow(172, "d", "no_agents", 1.0),
        env(180, "call.offered", "e"),
        overflow(181, "e", "queue_full", 0.0),
    )  # fmt: skip
    for fields in lines:
        assert len(fields) == 5 + len(ASTERISK[fields[4]]), fields
    got = [(f[0], f[1], f[2], f[3], f[4], *f[5:]) for f in lines]
    e = 1_800_000_000
    assert got == [
        (str(e), "NONE", "NONE", "Agent/7", "AGENTLOGIN", "Agent/7"),
        (str(e + 1), "NONE", "NONE", "Agent/7", "UNPAUSE", ""),
        (str(e + 3), "a", "sales", "NONE", "ENTERQUEUE", "", "5550001"),
        (str(e + 5), "b", "sales", "NONE", "ENTERQUEUE", "", "5550002"),
        (str(e + 21), "a", "sales", "Agent/7", "RINGNOANSWER", "15000"),  # milliseconds
        (str(e + 25), "a", "sales", "Agent/7", "CONNECT", "22", "a", "3"),
        (str(e + 30), "b", "sales", "NONE", "ABANDON", "1", "2", "25"),  # first in line by then
        (str(e + 85), "a", "sales", "Agent/7", "COMPLETEAGENT", "22", "60", "1"),
        (str(e + 90), "NONE", "NONE", "Agent/7", "PAUSE", "lunch"),
        (str(e + 95), "NONE", "NONE", "Agent/7", "AGENTLOGOFF", "Agent/7", "95"),
        (str(e + 101), "c", "support", "NONE", "ENTERQUEUE", "", "5550003"),
        (str(e + 161), "c", "support", "NONE", "EXITWITHTIMEOUT", "1", "1", "60"),
        (str(e + 171), "d", "support", "NONE", "ENTERQUEUE", "", ""),
        (str(e + 172), "d", "support", "NONE", "EXITEMPTY", "1", "1", "1"),
        (str(e + 181), "e", "support", "NONE", "FULL"),
    ]


def test_a_caller_hanging_up_is_completecaller_and_pipes_are_kept_out_of_fields() -> None:
    lines = run(
        env(0, "call.offered", "a", caller="55|1"),
        env(1, "call.queued", "a", queue="q", priority=0, position=1),
        env(2, "call.connected", "a", agent_id="1", queue="q", wait_seconds=1.0),
        env(9, "call.ended", "a", cause="caller_hangup", queue="q", agent_id="1", talk_seconds=7.0),
    )
    assert [f[4] for f in lines] == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"]
    assert lines[0][6] == "55/1" and lines[2][5:] == ["1", "7", "1"]
