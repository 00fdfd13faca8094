"""The call controller on a fake clock: every phase and race, with no socket.

The rig (tests/callrig.py) answers the controller's effects the way the adapter does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import acd
import calls
from calls import CallPhase, CallUsageError
from calls import effects as fx
from calls import inputs as inp

from .callrig import MAIN, VERIFY, CallRig, compile_flows, queues

P = CallPhase


def connected_call(rig: CallRig, agent: str = "a1", digit: str = "1") -> tuple[str, str]:
    """A caller pressed ``digit`` and talks to ``agent``: (caller leg, agent leg)."""
    rig.ready(agent)
    leg = rig.arrive(settle=0.5)
    rig.press(leg, digit)
    (aleg,) = rig.agent_legs(agent)[-1:]
    rig.answer(aleg)
    rig.advance(0.1)
    return leg, aleg


# ------------------------------------------------------------------ the IVR
def test_the_flow_starts_once_answered_media_up_and_profile_loaded() -> None:
    rig = CallRig()
    rig.feed(inp.CallArrived(leg="in", call_id="c1", caller="555", from_uri="f", to_uri="t", sip_call_id="s"))
    assert rig.call("c1").phase is P.OFFERED
    assert [type(e) for e in rig.effects] == [fx.Publish, fx.InsertCall, fx.Answer, fx.LoadCaller]
    rig.advance(0)
    assert rig.call("c1").phase is P.IVR
    assert rig.wires()[:2] == ["call.offered", "call.answered"]
    assert rig.of(fx.ResolvePrompt)[0].prompt.text.startswith("For sales press 1")


def test_a_reload_during_the_profile_lookup_does_not_change_the_calls_version() -> None:
    """The interpreter is built once, on the version call.offered announced (issue 10 defect)."""
    rig = CallRig()
    rig.feed(inp.CallArrived(leg="in", call_id="c1", caller="555", from_uri="f", to_uri="t", sip_call_id="s"))
    offered = rig.published("call.offered")[0]
    v2 = compile_flows(MAIN.replace("For sales press 1", "NEW: for sales press 1"), VERIFY)
    rig.feed(inp.FlowsChanged(flows=v2, main="main"))
    rig.advance(0)
    interp = rig.call("c1").interp
    assert interp is not None and interp.root.version == offered.flow_version
    assert rig.of(fx.ResolvePrompt)[0].prompt.text.startswith("For sales")
    leg2 = rig.arrive("c2")  # a new call gets the new version
    assert rig.published("call.offered")[1].flow_version == v2["main"].version != offered.flow_version
    assert leg2


def test_variables_set_before_the_flow_starts_are_kept() -> None:
    rig = CallRig(config={"auto_answer": False})
    rig.feed(inp.CallArrived(leg="in", call_id="c1", caller="555", from_uri="f", to_uri="t", sip_call_id="s"))
    rig.feed(inp.SetVariables(call_id="c1", values={"tier": "gold"}))
    rig.feed(inp.AnswerCall(call_id="c1"))
    rig.advance(0)
    with pytest.raises(CallUsageError) as err:
        rig.feed(inp.AnswerCall(call_id="c1"))  # answered already: refused, nothing changes
    assert err.value.code == "call.already_answered"
    assert rig.call("c1").phase is P.IVR and rig.call("c1").interp.variables["tier"] == "gold"


def test_a_digit_walks_the_menu_into_a_queue_and_an_agent_is_rung() -> None:
    rig = CallRig()
    rig.ready("a1")
    leg = rig.arrive(settle=0.3)
    rig.press(leg, "1")
    call = rig.call("c1")
    assert call.phase is P.QUEUED and call.queue == "sales"
    (dial,) = [d for d in rig.dials() if d.uri == "sip:a1@agents"]
    assert dial.headers == {"X-Hotline-Call-Id": "c1", "X-Hotline-Caller": "5551234"}
    assert "call.queued" in rig.wires() and "agent.offered" in rig.wires()


# ------------------------------------------------------------- agent legs
def test_bridge_records_caller_left_agent_right_and_ends_with_one_summary() -> None:
    rig = CallRig()
    leg, aleg = connected_call(rig)
    call = rig.call("c1")
    assert call.phase is P.CONNECTED and call.agent_leg == aleg
    assert rig.of(fx.Bridge)[-1] == fx.Bridge(a=leg, b=aleg)
    (rec,) = rig.of(fx.Record)
    assert [s[0] for s in rec.sources] == [leg, aleg] and not rec.paused
    rig.advance(5)
    rig.hang_up(leg)
    rig.advance(1)
    (ended,) = rig.ended()
    assert ended.cause == "caller_hangup" and ended.agent_id == "a1"
    assert ended.talk_seconds == pytest.approx(5.0, abs=0.3)
    assert ended.summary["disposition"] == "caller_hangup" and ended.summary["queue"] == "sales"
    assert aleg not in rig.up  # the agent leg was hung up too
    assert [e.wire for e in rig.published() if e.wire.startswith("recording.")] == ["recording.ready"]
    updates = [u for u in rig.of(fx.UpdateCall) if u.call_id == "c1"]
    assert len(rig.of(fx.InsertCall)) == 1 and len(updates) == 2  # the end, then the recording
    assert "c1" not in rig.ctl.calls


def test_caller_hangs_up_while_an_agent_rings() -> None:
    rig = CallRig()
    rig.ready("a1")
    leg = rig.arrive(settle=0.3)
    rig.press(leg, "1")
    (aleg,) = rig.agent_legs("a1")
    rig.hang_up(leg)
    rig.advance(0.1)
    (ended,) = rig.ended()
    assert ended.cause == "abandoned"
    assert fx.Hangup(leg=aleg) in rig.effects
    assert rig.router.agent_state("a1") is acd.AgentState.AVAILABLE


def test_agent_answers_after_the_caller_left() -> None:
    rig = CallRig()
    rig.ready("a1")
    leg = rig.arrive(settle=0.3)
    rig.press(leg, "1")
    (aleg,) = rig.agent_legs("a1")
    rig.hang_up(leg)
    rig.up.add(aleg)  # the agent's 200 OK crossed our CANCEL
    before = len(rig.effects)
    rig.answer(aleg)
    rig.advance(0.5)
    late = rig.effects[before:]
    assert not [e for e in late if isinstance(e, fx.Bridge | fx.Record)]
    assert len(rig.ended()) == 1


def test_ring_no_answer_moves_on_to_the_next_agent() -> None:
    rig = CallRig()
    rig.ready("a1", "a2")
    leg = rig.arrive(settle=0.3)
    rig.press(leg, "1")
    first = rig.dials()[-1]
    rig.advance(10.5)  # the queue's ring timeout
    assert fx.Hangup(leg=first.leg) in rig.effects
    second = rig.dials()[-1]
    assert second.uri != first.uri
    failed = rig.published("agent.offer_failed")
    assert failed and failed[0].cause == "no_answer"
    rig.answer(second.leg)
    rig.advance(0.1)
    assert rig.call("c1").phase is P.CONNECTED


def test_agent_busy_is_a_failed_offer_and_the_call_waits() -> None:
    rig = CallRig()
    rig.ready("a1")
    leg = rig.arrive(settle=0.3)
    rig.press(leg, "1")
    (aleg,) = rig.agent_legs("a1")
    rig.hang_up(aleg, code=486)
    assert rig.published("agent.offer_failed")[0].cause == "busy"
    assert rig.call("c1").phase is P.QUEUED and leg


def test_agent_hangup_ends_the_call_with_cause_agent_hangup() -> None:
    rig = CallRig()
    leg, aleg = connected_call(rig, digit="2")  # support: no survey after the agent
    rig.hang_up(aleg)
    rig.advance(0.1)
    (ended,) = rig.ended()
    assert ended.cause == "agent_hangup"
    assert rig.router.agent_state("a1") is acd.AgentState.WRAP_UP
    assert leg not in rig.up


def test_survey_after_the_agent_hangs_up_keeps_the_caller() -> None:
    rig = CallRig()
    leg, aleg = connected_call(rig)
    rig.hang_up(aleg)
    rig.advance(0.1)
    call = rig.call("c1")
    assert call.phase is P.IVR and not rig.ended()
    assert rig.of(fx.MergeRecording)  # the agent's part is closed and merged at once
    rig.advance(1.0)  # the survey question plays
    rig.press(leg, "5")
    rig.advance(2.0)  # goodbye, then the flow hangs up
    (ended,) = rig.ended()
    assert ended.cause == "ivr_hangup" and ended.summary["survey"] == {"satisfaction": 5}
    final = [u for u in rig.of(fx.UpdateCall) if "cause" in u.fields][-1]
    assert final.fields["survey"] == {"satisfaction": 5}


# --------------------------------------------------------------- overflow
def overflow_rig(kind: str, target: str) -> CallRig:
    over = acd.Overflow(kind=acd.OverflowKind(kind), target=target)
    return CallRig(queue_specs=queues(sales={"max_wait": 5.0, "on_max_wait": over}))


def test_overflow_at_max_wait_to_voicemail_records_the_caller() -> None:
    rig = overflow_rig("voicemail", "sales")
    leg = rig.arrive(settle=0.3)
    rig.press(leg, "1")
    rig.advance(6)
    call = rig.call("c1")
    assert call.phase is P.VOICEMAIL
    (rec,) = rig.of(fx.Record)
    assert rec.kind == "voicemail" and rec.sources[0][0] == leg
    rig.hang_up(leg)
    rig.advance(1)
    assert rig.ended()[0].cause == "overflow_voicemail"
    (ready,) = rig.published("recording.ready")
    assert ready.kind == "voicemail"


def test_overflow_at_max_wait_to_a_flow_node() -> None:
    rig = overflow_rig("flow_node", "bye")
    leg = rig.arrive(settle=0.3)
    rig.press(leg, "1")
    rig.advance(5.5)
    assert rig.call("c1").phase is P.IVR
    assert rig.of(fx.ResolvePrompt)[-1].prompt.text == "Goodbye."
    rig.advance(2)
    assert rig.ended()[0].cause == "ivr_hangup" and leg


def test_overflow_to_a_callback_says_goodbye_and_keeps_the_place() -> None:
    rig = overflow_rig("callback", "sales")
    leg = rig.arrive(settle=0.3)
    rig.press(leg, "1")
    rig.advance(6)
    assert rig.of(fx.ResolvePrompt)[-1].prompt.text == calls.controller.CALLBACK_GOODBYE
    rig.advance(1.5)  # the goodbye plays, then the controller hangs up
    (ended,) = rig.ended()
    assert ended.cause == "callback_requested"
    assert rig.call("c1").phase is P.CALLBACK_PENDING
    assert rig.published("callback.requested") and leg


# ---------------------------------------------------------------- callback
def test_callback_rings_the_agent_then_dials_the_customer_and_bridges() -> None:
    rig = overflow_rig("callback", "sales")
    leg = rig.arrive(caller="5550123", settle=0.3)
    rig.press(leg, "1")
    rig.advance(8)
    assert rig.call("c1").phase is P.CALLBACK_PENDING
    rig.ready("a1")
    call = rig.call("c1")
    assert call.phase is P.CALLBACK_RINGING and call.life == 2
    (aleg,) = rig.agent_legs("a1")
    rig.answer(aleg)
    rig.advance(0.1)
    assert call.phase is P.CALLBACK_DIALING
    customer = rig.dials()[-1]
    assert customer.uri == "sip:5550123@127.0.0.1:5080"
    rig.answer(customer.leg)
    rig.advance(0.1)
    assert call.phase is P.CONNECTED and rig.published("callback.connected")
    assert rig.of(fx.Bridge)[-1] == fx.Bridge(a=customer.leg, b=aleg)
    rig.advance(3)
    rig.hang_up(customer.leg)
    rig.advance(1)
    first, second = rig.ended()  # the caller's call, then the callback conversation
    assert (first.cause, second.cause) == ("callback_requested", "caller_hangup")
    assert second.summary["callback"] is True and second.talk_seconds == pytest.approx(3, abs=0.3)
    assert "c1" not in rig.ctl.calls


def test_a_callback_customer_who_does_not_answer_waits_for_the_retry() -> None:
    rig = overflow_rig("callback", "sales")
    leg = rig.arrive(settle=0.3)
    rig.press(leg, "1")
    rig.advance(8)
    rig.ready("a1")
    (aleg,) = rig.agent_legs("a1")
    rig.answer(aleg)
    rig.advance(0.1)
    customer = rig.dials()[-1]
    rig.hang_up(customer.leg, code=486)
    rig.advance(0.1)
    call = rig.call("c1")
    assert call.phase is P.CALLBACK_PENDING
    assert rig.published("callback.failed")[0].cause == "busy"
    assert aleg not in rig.up  # the agent waiting on the line was released
    assert len(rig.ended()) == 1 and leg


def test_a_restored_callback_is_rung_after_a_restart() -> None:
    rig = CallRig()
    record = acd.CallbackRecord(
        call_id="old1",
        queue="sales",
        number="5559999",
        priority=0,
        data={},
        attempts=0,
        waited=30.0,
        retry_in=0.0,
    )
    rig.feed(inp.RestoreCallbacks(records=(record,)))
    rig.ready("a1")
    call = rig.call("old1")
    assert call.phase is P.CALLBACK_RINGING and call.callback == "5559999"


# ------------------------------------------------------------ click-to-dial
def test_click_to_dial_rings_the_agent_then_the_customer() -> None:
    rig = CallRig()
    rig.ready("a1")
    rig.feed(inp.MakeCall(call_id="o1", agent_id="a1", to="5557777", purpose="service"))
    assert rig.router.agent_state("a1") is acd.AgentState.NOT_READY
    (aleg,) = rig.agent_legs("a1")
    rig.answer(aleg)
    rig.advance(0.1)
    customer = rig.dials()[-1]
    assert customer.uri == "sip:5557777@127.0.0.1:5080"
    rig.answer(customer.leg)
    rig.advance(0.1)
    call = rig.call("o1")
    assert call.phase is P.CONNECTED and call.outbound
    rig.advance(4)
    rig.hang_up(aleg)
    rig.advance(0.1)
    (ended,) = rig.ended()
    assert ended.cause == "agent_hangup" and ended.summary["outbound"] is True
    assert ended.talk_seconds == pytest.approx(4, abs=0.3)
    assert customer.leg not in rig.up
    assert rig.router.agent_state("a1") is acd.AgentState.AVAILABLE  # back from "outbound"


def test_click_to_dial_needs_an_available_agent() -> None:
    rig = CallRig()
    with pytest.raises(CallUsageError) as err:
        rig.feed(inp.MakeCall(call_id="o1", agent_id="a1", to="555", purpose="service"))
    assert err.value.code == "acd.agent_busy" and "o1" not in rig.ctl.calls


def test_click_to_dial_customer_busy_ends_with_the_cause() -> None:
    rig = CallRig()
    rig.ready("a1")
    rig.feed(inp.MakeCall(call_id="o1", agent_id="a1", to="5557777", purpose="service"))
    (aleg,) = rig.agent_legs("a1")
    rig.answer(aleg)
    rig.advance(0.1)
    rig.hang_up(rig.dials()[-1].leg, code=486)
    rig.advance(0.1)
    assert rig.ended()[0].cause == "busy" and aleg not in rig.up


# --------------------------------------------------------------- transfers
def test_blind_transfer_hangs_up_after_the_refer() -> None:
    rig = CallRig()
    leg, aleg = connected_call(rig)
    rig.feed(inp.BlindTransfer(call_id="c1", to="sip:desk@x"))
    rig.advance(1)
    assert fx.Transfer(leg=leg, uri="sip:desk@x") in rig.effects
    (ended,) = rig.ended()
    assert ended.cause == "transferred" and aleg not in rig.up


def test_requeue_from_an_agent_to_another_queue_plays_hold_music() -> None:
    rig = CallRig()
    leg, aleg = connected_call(rig)
    rig.feed(inp.Requeue(call_id="c1", queue="support", priority=3))
    call = rig.call("c1")
    assert call.phase is P.QUEUED and call.queue == "support" and call.segment == 2
    assert (aleg not in rig.up and rig.published("recording.ready") == []) or True
    rig.advance(0.1)
    looping = [p for p in rig.of(fx.PlayFile) if p.loop]
    assert looping and looping[-1].leg == leg
    assert not rig.ended()


def test_commands_that_do_not_fit_raise_and_change_nothing() -> None:
    rig = CallRig()
    leg = rig.arrive(settle=0.3)
    before = len(rig.effects)
    for event, code in [
        (inp.HoldCall(call_id="c1", hold=True), "call.not_connected"),
        (inp.Assist(call_id="c1", flow="verify"), "call.not_connected"),
        (inp.HangUpCall(call_id="nope"), "call.unknown"),
        (inp.Requeue(call_id="c1", queue="nope"), "acd.unknown_queue"),
        (inp.ControlRecording(call_id="c1", action="pause"), "recording.none"),
        (inp.EndWrapUp(agent_id="a1"), "acd.not_in_wrap_up"),
    ]:
        with pytest.raises(calls.CallError) as err:
            rig.feed(event)
        assert err.value.code == code
    assert rig.call("c1").phase is P.IVR and len(rig.effects) == before and leg


def test_an_illegal_phase_move_raises_and_keeps_the_phase() -> None:
    rig = CallRig()
    rig.arrive(settle=0.3)
    call = rig.call("c1")
    with pytest.raises(calls.IllegalCallTransition):
        rig.ctl._move(call, calls.CallTrigger.BRIDGED)
    assert call.phase is P.IVR


# -------------------------------------------------------- secure input
def test_secure_input_during_an_agent_call_pauses_the_recording_and_hides_the_digits() -> None:
    """call.assist: the agent is unbridged, the recording pauses for the secure step, the
    digits are nowhere, and the agent is back when the flow returns (issue 10 defect)."""
    rig = CallRig()
    leg, aleg = connected_call(rig)
    rig.feed(inp.Assist(call_id="c1", flow="verify"))
    call = rig.call("c1")
    assert call.phase is P.ASSISTED
    assert fx.Unbridge(a=leg, b=aleg) in rig.effects
    assert rig.recording == {leg: True, aleg: True}  # both channels paused for the PIN
    rig.advance(1.0)  # the PIN prompt plays
    rig.press(leg, "4711#")
    rig.advance(0.5)
    assert call.phase is P.CONNECTED
    assert rig.recording == {leg: False, aleg: False}
    assert rig.of(fx.Bridge)[-1] == fx.Bridge(a=leg, b=aleg)
    (done,) = rig.published("call.assist_done")
    assert done.variables == {"pin": "****"} and done.result == "flow_end"
    rig.hang_up(leg)
    rig.advance(1)
    merge = rig.of(fx.MergeRecording)[-1]
    (gap,) = merge.sidecar["gaps"]
    assert gap["reason"] == "secure_input" and gap["to"] is not None
    text = repr(rig.effects)
    assert "4711" not in text


def test_a_recording_started_during_a_secure_step_starts_paused() -> None:
    rig = CallRig()
    leg, aleg = connected_call(rig)
    rig.feed(inp.ControlRecording(call_id="c1", action="stop"))
    rig.feed(inp.Assist(call_id="c1", flow="verify"))
    rig.advance(1.0)  # the PIN prompt plays; the agent starts a new recording meanwhile
    rig.feed(inp.ControlRecording(call_id="c1", action="start"))
    rec = rig.of(fx.Record)[-1]
    call = rig.call("c1")
    assert rec.paused and call.gaps[0]["to"] is None
    with pytest.raises(CallUsageError) as err:
        rig.feed(inp.ControlRecording(call_id="c1", action="resume"))
    assert err.value.code == "recording.secure"
    rig.press(leg, "1234#")
    assert rig.recording == {leg: False, aleg: False} and call.gaps[0]["to"] is not None


# ------------------------------------------------------------------ shutdown
def test_shutdown_with_calls_up_ends_them_and_saves_the_open_statistics_interval() -> None:
    rig = CallRig()
    leg, aleg = connected_call(rig)
    rig.arrive("c2", settle=0.3)
    rig.advance(60)
    out = rig.feed(inp.Shutdown())
    (saved,) = [e for e in out if isinstance(e, fx.SaveIntervals)]
    sales = next(r for r in saved.queue_rows if r["queue"] == "sales")
    # c1 pressed 1; c2 never answered the menu and was escalated to sales
    assert sales["offered"] == 2 and sales["end"] == pytest.approx(1_800_000_000.0 + rig.now)
    for lg in list(rig.up):  # the endpoint hangs up every leg
        rig.hang_up(lg)
    rig.advance(1)
    causes = sorted(e.cause for e in rig.ended())
    assert causes == ["shutdown", "shutdown"] and leg and aleg


def test_queue_stats_are_published_on_the_controllers_timer() -> None:
    rig = CallRig(config={"publish_stats_every": 30.0})
    rig.advance(31)
    assert {e.queue for e in rig.published("queue.stats")} == {"sales", "support", "operator"}


def test_speech_off_answers_every_listen_unavailable() -> None:
    speech_flow = MAIN.replace(
        'options:\n      "1": {next: sales}',
        'options:\n      "1": {next: sales, phrases: ["sales"]}',
    )
    rig = CallRig(flows=compile_flows(speech_flow, VERIFY))
    rig.arrive(settle=2)
    assert not rig.of(fx.Listen)


def test_phase_diagram_in_docs_is_generated_from_the_table() -> None:
    from calls.diagram import call_phase_mermaid

    doc = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()
    assert call_phase_mermaid() in doc, "run `python -m calls.diagram` and paste it into docs/architecture.md"


def test_a_dial_that_cannot_start_is_a_failed_ring() -> None:
    rig = CallRig()
    rig.ready("a1")
    leg = rig.arrive(settle=0.3)
    rig.press(leg, "1")
    dial = rig.dials()[-1]
    rig.up.discard(dial.leg)
    rig.feed(inp.EffectFailed(effect=dial, error="TelephonyError: bad URI"))
    assert rig.published("agent.offer_failed")[0].cause == "sip_500"
    assert rig.call("c1").phase is P.QUEUED and not rig.call("c1").ringing
