"""Live cues and post-call QA in the call controller, on a fake clock (calls/cues.py).

The rig plays the adapter; cue reports (KeywordHeard, AgitationMeasured) are fed as the cue
workers would send them, with monotonic times on the rig's clock.
"""

from __future__ import annotations

from pathlib import Path

import calls
from calls import CallPhase
from calls import effects as fx
from calls import inputs as inp
from calls.cues import CuePolicy

from .callrig import CallRig
from .test_calls_core import connected_call

P = CallPhase


def rig_with(**policy: object) -> CallRig:
    return CallRig(config={"cues": CuePolicy(**policy)})  # type: ignore[arg-type]


def heard(
    rig: CallRig, phrase: str = "file a complaint", category: str = "complaint", channel: str = "caller"
):
    return rig.feed(
        inp.KeywordHeard(
            call_id="c1", channel=channel, phrase=phrase, category=category, confidence=0.87,
            at=rig.now - 0.2, start=rig.now - 1.1, latency=0.2,
        )
    )  # fmt: skip


def score(rig: CallRig, value: float, channel: str = "caller") -> list[fx.Effect]:
    return rig.feed(
        inp.AgitationMeasured(call_id="c1", channel=channel, score=value, at=rig.now, start=rig.now - 3)
    )


def test_taps_follow_the_call_from_the_queue_to_the_bridge_to_the_end() -> None:
    rig = rig_with(channels=("caller", "agent"))
    rig.ready("a1")
    leg = rig.arrive(settle=0.5)
    rig.press(leg, "1")  # sales: queued, the caller is tapped while waiting
    (first,) = rig.of(fx.StartCues)
    assert first.taps == (("caller", leg),) and first.language == "en" and not first.paused
    (aleg,) = rig.agent_legs("a1")
    rig.answer(aleg)
    rig.advance(0.1)
    second = rig.of(fx.StartCues)[-1]
    assert second.taps == (("agent", aleg),)  # the caller's tap goes on; the agent's joins
    rig.hang_up(leg)
    rig.advance(1)
    assert rig.of(fx.StopCues) == [fx.StopCues(call_id="c1", channels=())]


def test_not_while_queued_taps_only_at_the_bridge() -> None:
    rig = rig_with(while_queued=False)
    leg, _aleg = connected_call(rig)
    (start,) = rig.of(fx.StartCues)
    assert start.taps == (("caller", leg),)


def test_a_keyword_is_published_alerted_and_kept_for_the_summary() -> None:
    rig = rig_with()
    leg, _ = connected_call(rig)
    rig.advance(5)
    heard(rig)
    (kw,) = rig.published("call.keyword")
    assert (kw.category, kw.word, kw.channel, kw.agent_id, kw.queue) == (
        "complaint", "file a complaint", "caller", "a1", "sales",
    )  # fmt: skip
    assert kw.offset == round(rig.now - 0.2 - rig.call("c1").started, 3)
    (alert,) = rig.published("alert.raised")
    assert (alert.code, alert.call_id, alert.category) == ("call.keyword", "c1", "complaint")
    rig.hang_up(leg)
    rig.advance(1)
    (ended,) = rig.ended()
    assert [c["category"] for c in ended.summary["cues"]] == ["complaint"]


def test_actions_are_per_category() -> None:
    rig = rig_with(actions={"regulator": ("summary",)})
    connected_call(rig)
    heard(rig, "ombudsman", "regulator")
    assert rig.published("call.keyword") and not rig.published("alert.raised")
    assert rig.call("c1").cues and not rig.call("c1").pop_cues


def test_agitation_rises_with_hysteresis_and_is_rate_limited() -> None:
    rig = rig_with(agitation_level=0.6, agitation_clear=0.4, agitation_min_interval=30)
    connected_call(rig)
    for value in (0.2, 0.5, 0.59):
        score(rig, value)
        rig.advance(3)
    assert not rig.published("call.agitation")
    score(rig, 0.7)
    rig.advance(3)
    score(rig, 0.8)  # still agitated: no second event
    rig.advance(3)
    score(rig, 0.45)  # between the levels: still agitated (hysteresis)
    rig.advance(3)
    score(rig, 0.3)  # cleared
    rig.advance(3)
    score(rig, 0.9)  # 12 s after the raise: rate-limited
    assert [(e.agitated, e.score) for e in rig.published("call.agitation")] == [(True, 0.7), (False, 0.3)]
    rig.advance(20)
    score(rig, 0.9)  # 32 s after: raised again
    assert [e.agitated for e in rig.published("call.agitation")] == [True, False, True]
    alerts = rig.published("alert.raised")
    assert [a.code for a in alerts] == ["call.agitation", "call.agitation"]
    assert rig.call("c1").agitation_peak == 0.9


def test_an_agitated_caller_still_queued_moves_up_once_and_the_agent_sees_the_cue() -> None:
    rig = rig_with(priority_boost=3)
    leg = rig.arrive(settle=0.5)
    rig.press(leg, "1")  # queued in sales, nobody available
    assert rig.call("c1").phase is P.QUEUED
    rig.advance(10)
    score(rig, 0.75)
    score(rig, 0.2)
    rig.advance(40)
    score(rig, 0.8)  # a second raise does not boost again
    (moved,) = rig.published("call.priority_changed")
    assert moved.priority == 3 and rig.call("c1").priority == 3
    heard(rig)
    rig.ready("a1")
    rig.advance(0.1)
    offered = rig.published("agent.offered")[-1]
    assert [c["kind"] for c in offered.data["cues"]] == ["agitation", "agitation", "keyword"]


def test_a_secure_step_pauses_the_taps_and_cues_heard_meanwhile_are_dropped() -> None:
    rig = rig_with()
    leg, _aleg = connected_call(rig)
    rig.feed(inp.Assist(call_id="c1", flow="verify"))
    assert rig.of(fx.PauseCues) == [fx.PauseCues(call_id="c1", paused=True)]
    heard(rig)  # a report racing the pause: not acted on
    assert not rig.published("call.keyword")
    rig.advance(1.0)
    rig.press(leg, "4711#")
    rig.advance(0.5)
    assert rig.of(fx.PauseCues)[-1] == fx.PauseCues(call_id="c1", paused=False)
    heard(rig)
    assert len(rig.published("call.keyword")) == 1


def test_a_cti_recording_pause_pauses_the_taps_too() -> None:
    rig = rig_with()
    connected_call(rig)
    rig.feed(inp.ControlRecording(call_id="c1", action="pause"))
    rig.feed(inp.ControlRecording(call_id="c1", action="resume"))
    assert [e.paused for e in rig.of(fx.PauseCues)] == [True, False]


def test_reports_for_an_ended_call_or_an_untapped_channel_change_nothing() -> None:
    rig = rig_with()
    leg, _ = connected_call(rig)
    heard(rig, channel="agent")  # only the caller is tapped
    assert not rig.published("call.keyword")
    rig.hang_up(leg)
    rig.advance(1)
    heard(rig)
    assert not rig.published("call.keyword")


def test_off_by_default_nothing_is_tapped_and_the_summary_is_unchanged() -> None:
    rig = CallRig()
    leg, _ = connected_call(rig)
    rig.hang_up(leg)
    rig.advance(1)
    assert not rig.of(fx.StartCues) and "cues" not in rig.ended()[0].summary


def test_after_the_merge_the_recording_is_analysed_and_the_sentiment_kept() -> None:
    rig = rig_with(live=False, qa=True)
    leg, _ = connected_call(rig)
    rig.feed(inp.HoldCall(call_id="c1", hold=True))
    rig.advance(4)
    rig.feed(inp.HoldCall(call_id="c1", hold=False))
    rig.advance(2)
    rig.hang_up(leg)
    rig.advance(1)
    assert not rig.of(fx.StartCues)  # QA only
    (job,) = rig.of(fx.AnalyzeRecording)
    assert (job.call_id, job.number, job.language, job.queue, job.agent_id) == (
        "c1",
        "5551234",
        "en",
        "sales",
        "a1",
    )
    assert job.wav == Path("/rec/c1.wav") and job.sidecar == Path("/rec/c1.wav.json")
    (hold,) = job.holds
    assert round(hold[1] - hold[0], 3) == 4.0
    rig.feed(
        inp.QaDone(
            call_id="c1", number="5551234", wav=str(job.wav), sidecar="/rec/c1.qa.json", sha256="ab",
            language="en", flags={"flagged": []}, sentiment={"score": -0.4, "label": "negative"}, words=12,
            wall=1.0,
        )
    )  # fmt: skip
    (ready,) = rig.published("qa.ready")
    assert ready.sidecar == "/rec/c1.qa.json" and ready.sentiment["label"] == "negative"
    assert rig.of(fx.RecordSentiment) == [
        fx.RecordSentiment(number="5551234", call_id="c1", wall=1.0, score=-0.4, label="negative")
    ]
    rig.feed(inp.QaDone(call_id="c1", number="5551234", error="boom"))
    (failed,) = rig.published("qa.failed")
    assert failed.error == "boom"


def test_the_screen_pop_carries_the_callers_sentiment_from_the_profile() -> None:
    rig = rig_with()
    rig._react = _with_sentiment(rig._react)  # type: ignore[method-assign]
    rig.ready("a1")
    leg = rig.arrive(settle=0.5)
    rig.press(leg, "1")
    offered = rig.published("agent.offered")[-1]
    assert offered.data["caller_sentiment"]["label"] == "negative"
    assert isinstance(rig.ctl, calls.CallController)


def _with_sentiment(react):  # the profile lookup answers with a sentiment, as ProfileStore does
    def wrapped(e: fx.Effect) -> None:
        if isinstance(e, fx.LoadCaller):
            sentiment = {
                "last": -0.5,
                "label": "negative",
                "trend": "worse",
                "calls": 2,
                "history": [-0.5, 0.1],
            }
            caller = {"number": e.number, "sentiment": sentiment}
            react.__self__.later(0, inp.CallerLoaded(call_id=e.call_id, caller=caller))
            return
        react(e)

    return wrapped


SENTIMENT_FLOW = """
flow: main
start: route
nodes:
  route:
    type: branch
    cases:
      - {if: "caller.sentiment.label == 'negative' and caller.sentiment.trend == 'worse'", next: care}
    default: sales
  care: {type: queue, queue: support, priority: 7}
  sales: {type: queue, queue: sales}
"""


def test_a_flow_branches_on_the_callers_sentiment() -> None:
    from .callrig import compile_flows

    rig = CallRig(flows=compile_flows(SENTIMENT_FLOW), config={"cues": CuePolicy()})
    rig._react = _with_sentiment(rig._react)  # type: ignore[method-assign]
    rig.arrive(settle=0.5)
    call = rig.call("c1")
    assert (call.phase, call.queue, call.priority) == (P.QUEUED, "support", 7)
