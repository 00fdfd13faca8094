"""The floor on a fake clock: supervisors (listen, whisper, barge), consultations, conferences,
attended transfers and dispositions, as effects of the pure call controller (calls/floor.py)."""

from __future__ import annotations

import pytest

import acd
from calls import CallPhase, CallUsageError
from calls import effects as fx
from calls import inputs as inp

from .callrig import CallRig, agents

P = CallPhase
DISPOSITIONS = {
    "dispositions": {"sales": ("resolved", "callback_needed")},
    "default_dispositions": ("other",),
}


def rig3(**config: object) -> CallRig:
    return CallRig(agent_specs=agents("a1", "a2", "a3"), config={**DISPOSITIONS, **config})


def connected(rig: CallRig, agent: str = "a1") -> tuple[str, str]:
    rig.ready(agent)
    leg = rig.arrive(settle=0.5)
    rig.press(leg, "1")
    (aleg,) = rig.agent_legs(agent)[-1:]
    rig.answer(aleg)
    rig.advance(0.1)
    assert rig.call("c1").phase is P.CONNECTED
    return leg, aleg


def since(rig: CallRig, mark: int) -> list[fx.Effect]:
    return [e for b in rig.batches[mark:] for e in b]


def edges(effects: list[fx.Effect]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    on = {(e.src, e.dst) for e in effects if isinstance(e, fx.Transmit)}
    off = {(e.src, e.dst) for e in effects if isinstance(e, fx.StopTransmit)}
    return on, off


def test_listen_whisper_barge_are_one_way_edges_and_the_barge_is_on_the_agent_channel() -> None:
    rig = rig3()
    c, a = connected(rig)
    rig.ready("a2")  # an available supervisor is kept from ACD offers while monitoring
    rig.feed(inp.Monitor(call_id="c1", supervisor="a2", mode="listen", by="boss"))
    assert rig.router.agent_state("a2") is acd.AgentState.NOT_READY
    (s,) = rig.agent_legs("a2")
    assert rig.dials()[-1].headers["X-Hotline-Monitor"] == "listen"
    assert not rig.of(fx.Transmit)  # nothing until the supervisor answers
    mark = len(rig.batches)
    rig.answer(s)
    rig.advance(0.1)
    assert edges(since(rig, mark)) == ({(c, s), (a, s)}, set())
    (started,) = rig.published("supervisor.monitor_started")
    assert (started.supervisor, started.mode, started.agent_id) == ("a2", "listen", "a1")

    mark = len(rig.batches)
    rig.feed(inp.MonitorMode(call_id="c1", mode="whisper", by="boss"))
    assert edges(since(rig, mark)) == ({(s, a)}, set())
    mark = len(rig.batches)
    rig.feed(inp.MonitorMode(call_id="c1", mode="barge", by="boss"))
    assert edges(since(rig, mark)) == ({(s, c)}, set())
    assert [(m.src, m.into, m.on) for m in rig.of(fx.MixRecording)] == [(s, a, True)]
    rig.advance(2.0)
    mark = len(rig.batches)
    rig.feed(inp.MonitorMode(call_id="c1", mode="listen", by="boss"))
    assert edges(since(rig, mark)) == (set(), {(s, c), (s, a)})
    assert [(m.src, m.on) for m in rig.of(fx.MixRecording)][-1] == (s, False)
    assert [e.mode for e in rig.published("supervisor.monitor_changed")] == ["whisper", "barge", "listen"]

    rig.feed(inp.MonitorStop(call_id="c1", by="boss"))
    assert fx.Hangup(leg=s) in rig.effects
    (ended,) = rig.published("supervisor.monitor_ended")
    assert ended.reason == "stopped" and ended.seconds > 1.9
    assert rig.router.agent_state("a2") is acd.AgentState.AVAILABLE  # given back
    audits = [(x.result, x.who, x.fields["mode"]) for x in rig.of(fx.Audit)]
    assert audits == [
        ("started", "boss", "listen"),
        ("changed", "boss", "whisper"),
        ("changed", "boss", "barge"),
        ("changed", "boss", "listen"),
        ("ended", "boss", "listen"),
    ]
    rig.hang_up(c)
    rig.advance(0.1)
    (merge,) = rig.of(fx.MergeRecording)
    (mixed,) = merge.sidecar["mixed"]
    assert (mixed["party"], mixed["id"], mixed["reason"], mixed["channel"]) == (
        "supervisor",
        "a2",
        "barge",
        "right",
    )
    assert mixed["from"] < mixed["to"]
    assert rig.ended()[0].summary["disposition_code"] is None


def test_monitoring_refusals_change_nothing() -> None:
    rig = rig3()
    with pytest.raises(CallUsageError) as err:
        rig.feed(inp.Monitor(call_id="nope", supervisor="a2", mode="listen"))
    assert err.value.code == "call.unknown"
    connected(rig)
    for sup, mode, code in [
        ("a2", "spy", "cti.bad_request"),
        ("a1", "listen", "monitor.self"),
        ("zz", "listen", "acd.unknown_agent"),
    ]:
        with pytest.raises(CallUsageError) as err:
            rig.feed(inp.Monitor(call_id="c1", supervisor=sup, mode=mode))
        assert err.value.code == code
    rig.feed(inp.Monitor(call_id="c1", supervisor="sip:boss@10.0.0.9", mode="listen"))
    assert rig.dials()[-1].uri == "sip:boss@10.0.0.9"
    with pytest.raises(CallUsageError) as err:
        rig.feed(inp.Monitor(call_id="c1", supervisor="a3", mode="listen"))
    assert err.value.code == "monitor.active"
    (s,) = [d.leg for d in rig.dials() if d.uri == "sip:boss@10.0.0.9"]
    rig.hang_up(s, code=486)  # busy: never answered
    (ended,) = rig.published("supervisor.monitor_ended")
    assert (ended.reason, ended.seconds) == ("busy", 0.0)
    assert [x.result for x in rig.of(fx.Audit)] == ["failed"]


def test_the_supervisor_leaves_when_the_call_ends_and_hears_no_assist_flow() -> None:
    rig = rig3()
    c, _ = connected(rig)
    rig.feed(inp.Monitor(call_id="c1", supervisor="a3", mode="barge"))
    (s,) = rig.agent_legs("a3")
    rig.answer(s)
    rig.advance(0.1)
    mark = len(rig.batches)
    rig.feed(
        inp.Assist(call_id="c1", flow="verify")
    )  # the caller types a PIN: the supervisor hears none of it
    on, off = edges(since(rig, mark))
    assert off == {(c, s), (s, c)} and not on
    rig.hang_up(c)
    rig.advance(0.1)
    assert fx.Hangup(leg=s) in rig.effects
    assert rig.published("supervisor.monitor_ended")[0].reason == "call_ended"


def test_consult_conference_and_attended_transfer() -> None:
    rig = rig3()
    c, a = connected(rig)
    rig.ready("a2")
    mark = len(rig.batches)
    rig.feed(inp.Consult(call_id="c1", to="a2", agent_id="a1"))
    out = since(rig, mark)
    assert fx.Unbridge(a=c, b=a) in out
    assert any(isinstance(e, fx.ResolvePrompt) for e in out)  # hold music for the caller
    assert rig.call("c1").phase is P.CONSULTING
    assert rig.router.agent_state("a2") is acd.AgentState.NOT_READY  # no ACD offer meanwhile
    (k,) = rig.agent_legs("a2")
    with pytest.raises(CallUsageError) as err:
        rig.feed(inp.TransferComplete(call_id="c1"))
    assert err.value.code == "consult.not_answered"
    rig.answer(k)
    rig.advance(0.1)
    assert fx.Bridge(a=a, b=k) in rig.effects
    assert rig.wires().count("call.consult_connected") == 1
    mark = len(rig.batches)
    rig.feed(inp.Conference(call_id="c1", agent_id="a1"))
    out = since(rig, mark)
    assert fx.Bridge(a=c, b=a) in out and fx.Bridge(a=c, b=k) in out
    assert fx.MixRecording(src=k, into=a, on=True) in out  # the colleague on the agent channel
    assert rig.call("c1").phase is P.CONFERENCE
    rig.advance(1.0)
    mark = len(rig.batches)
    rig.feed(inp.TransferComplete(call_id="c1", agent_id="a1"))
    out = since(rig, mark)
    assert fx.Hangup(leg=a) in out
    merges = [e for e in out if isinstance(e, fx.MergeRecording)]
    assert (
        merges
        and merges[0].sidecar["agent_id"] == "a1"
        and merges[0].sidecar["mixed"][0]["party"] == "colleague"
    )
    (record,) = [e for e in out if isinstance(e, fx.Record)]
    assert record.sources[1][0] == k  # a new segment: caller left, the colleague right
    call = rig.call("c1")
    assert (call.phase, call.agent_id, call.agent_leg) == (P.CONNECTED, "a2", k)
    (moved,) = rig.published("call.transferred")
    assert (moved.from_agent, moved.to_agent, moved.kind) == ("a1", "a2", "attended")
    rig.advance(0.1)
    assert rig.router.agent_state("a1") is acd.AgentState.WRAP_UP
    rig.feed(inp.SetDisposition(agent_id="a1", code="resolved"))  # a1 wraps up the part it handled
    rig.feed(inp.SetDisposition(agent_id="a2", code="callback_needed", note="sends the form"))
    assert [(d.agent_id, d.during) for d in rig.published("call.disposition")] == [
        ("a1", "wrap_up"),
        ("a2", "talk"),
    ]
    rig.hang_up(c)
    rig.advance(0.1)
    (ended,) = rig.ended()
    assert ended.agent_id == "a2" and ended.summary["disposition_code"] == "callback_needed"
    assert ended.summary["transfers"][0]["to"] == "a2"
    assert ended.summary["disposition"] == "caller_hangup"  # the end cause, as before
    assert rig.router.agent_state("a2") is acd.AgentState.AVAILABLE  # back once the call ended
    assert not [e for e in rig.effects if isinstance(e, fx.Log) and e.event == "acd_event_ignored"]


def test_a_cancelled_consultation_gives_the_caller_back_and_the_colleague_their_state() -> None:
    rig = rig3()
    c, a = connected(rig)
    rig.ready("a2")
    rig.feed(inp.Consult(call_id="c1", to="sales"))  # a queue: its longest-idle available agent
    (k,) = rig.agent_legs("a2")
    rig.answer(k)
    rig.advance(0.1)
    mark = len(rig.batches)
    rig.feed(inp.ConsultCancel(call_id="c1"))
    out = since(rig, mark)
    assert fx.Hangup(leg=k) in out and fx.Bridge(a=c, b=a) in out
    assert any(isinstance(e, fx.StopPlay) for e in out)
    assert rig.call("c1").phase is P.CONNECTED and rig.call("c1").agent_id == "a1"
    assert rig.published("call.consult_ended")[0].reason == "cancelled"
    rig.advance(0.1)
    assert rig.router.agent_state("a2") is acd.AgentState.AVAILABLE
    rig.feed(inp.AgentCommand(event=acd.events.AgentWentNotReady(agent_id="a2", reason="break")))
    with pytest.raises(CallUsageError) as err:
        rig.feed(inp.Consult(call_id="c1", to="support"))  # nobody of support is available now
    assert err.value.code == "acd.no_agent_available"
    assert rig.call("c1").phase is P.CONNECTED
    with pytest.raises(CallUsageError) as err:
        rig.feed(inp.Consult(call_id="c1", to="nowhere"))
    assert err.value.code == "consult.unknown_target"


def test_a_consultation_nobody_answers_comes_back_and_hanging_up_on_an_answered_one_transfers() -> None:
    rig = rig3()
    c, a = connected(rig)
    rig.feed(inp.Consult(call_id="c1", to="sip:desk@10.0.0.7"))
    (k,) = [d.leg for d in rig.dials() if d.uri == "sip:desk@10.0.0.7"]
    rig.hang_up(k, code=408)
    assert rig.published("call.consult_ended")[0].reason == "no_answer"
    assert rig.call("c1").phase is P.CONNECTED
    rig.feed(inp.Consult(call_id="c1", to="sip:desk@10.0.0.7"))
    k2 = [d.leg for d in rig.dials() if d.uri == "sip:desk@10.0.0.7"][-1]
    rig.answer(k2)
    rig.advance(0.1)
    rig.hang_up(a)  # the agent hangs up: transfer on hang-up
    rig.advance(0.1)
    call = rig.call("c1")
    assert (call.phase, call.agent_leg, call.agent_id) == (P.CONNECTED, k2, None)
    assert rig.published("call.transferred")[0].to == "sip:desk@10.0.0.7"
    rig.hang_up(k2)  # the external party hangs up: the caller goes on to the flow's survey
    rig.advance(0.1)
    assert rig.call("c1").phase is P.IVR
    rig.hang_up(c)
    rig.advance(0.1)
    assert rig.ended()[0].cause == "caller_hangup"
    assert not [e for e in rig.effects if isinstance(e, fx.Log) and e.level == "error"]


def test_dispositions_are_checked_against_the_queues_list() -> None:
    rig = rig3()
    with pytest.raises(CallUsageError) as err:
        rig.feed(inp.SetDisposition(agent_id="a1", code="resolved"))
    assert err.value.code == "disposition.no_call"
    c, _ = connected(rig)
    with pytest.raises(CallUsageError) as err:
        rig.feed(inp.SetDisposition(agent_id="a1", code="other"))
    assert err.value.code == "disposition.unknown" and "resolved, callback_needed" in str(err.value)
    with pytest.raises(CallUsageError) as err:
        rig.feed(inp.SetDisposition(agent_id="a1", code="resolved", call_id="c9"))
    assert err.value.code == "disposition.no_call"
    rig.feed(inp.SetDisposition(agent_id="a1", code="resolved", call_id="c1"))
    (update,) = [u for u in rig.of(fx.UpdateCall) if "disposition" in u.fields]
    assert update.fields == {"disposition": "resolved", "disposition_note": ""}
    rig.hang_up(c)
    rig.advance(0.1)
    assert rig.ended()[0].summary["disposition_code"] == "resolved"
    rig.advance(5.0)  # wrap-up over: too late
    with pytest.raises(CallUsageError) as err:
        rig.feed(inp.SetDisposition(agent_id="a1", code="resolved"))
    assert err.value.code == "disposition.no_call"


def test_no_dispositions_configured_is_a_clear_error() -> None:
    rig = CallRig(agent_specs=agents("a1", "a2"))
    connected(rig)
    with pytest.raises(CallUsageError) as err:
        rig.feed(inp.SetDisposition(agent_id="a1", code="resolved"))
    assert err.value.code == "disposition.not_configured"
