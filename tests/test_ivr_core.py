"""IVR interpreter with a fake clock: prompts, menu, the three-level ladder, queueing."""

from __future__ import annotations

from pathlib import Path

import pytest

import ivr
from ivr import flow as fl
from ivr import interpreter as it

from .helpers import FakeClock

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "flows" / "main.yaml"


@pytest.fixture
def flow() -> ivr.Flow:
    return ivr.load_flow(MAIN, known_queues=["sales", "support", "operator", "care"])


def plays(outputs: list) -> list[it.PlayPrompt]:
    return [o for o in outputs if isinstance(o, it.PlayPrompt)]


def finish(interp: ivr.CallInterpreter, outputs: list, now: float) -> list:
    """Report that the last prompt in ``outputs`` finished playing."""
    return interp.handle(it.PromptFinished(token=plays(outputs)[-1].token), now)


def test_greeting_menu_and_choice_enqueue_with_screen_pop(flow: ivr.Flow) -> None:
    clock = FakeClock()
    interp = ivr.build_interpreter(flow, "c1", "5551234")
    out = interp.start(clock.now)
    assert plays(out)[0].prompt.id == "welcome-hotline"
    out = finish(interp, out, clock.advance(2))
    assert plays(out)[0].prompt.id == "main-menu"
    out = finish(interp, out, clock.advance(3))
    assert interp.phase is ivr.Phase.AWAITING_INPUT
    assert interp.next_deadline() == pytest.approx(clock.now + 5)
    out = interp.handle(it.DigitPressed(digit="2"), clock.advance(1))
    inputs = [o for o in out if isinstance(o, it.IvrInput)]
    assert inputs == [
        it.IvrInput(call_id="c1", node="main_menu", mode="dtmf", input="2", result="match", attempt=0)
    ]
    enqueue = next(o for o in out if isinstance(o, it.Enqueue))
    assert enqueue.queue == "support"
    assert enqueue.data["caller"] == "5551234"
    assert enqueue.data["ivr_path"] == ["who", "greeting", "main_menu", "support"]
    assert enqueue.data["flow_version"] == flow.version
    assert plays(out)[0].prompt.id == "pls-hold-while-try"  # hold prompt loops
    assert interp.phase is ivr.Phase.QUEUED
    again = finish(interp, out, clock.advance(4))
    assert plays(again)[0].prompt.id == "pls-hold-while-try"
    out = interp.handle(it.AgentConnected(), clock.advance(1))
    assert out == [it.StopPrompt(token=plays(again)[0].token)]
    assert interp.phase is ivr.Phase.DONE


def test_keypress_interrupts_an_interruptible_prompt(flow: ivr.Flow) -> None:
    interp = ivr.build_interpreter(flow, "c1", "1")
    out = interp.start(0.0)
    greeting = plays(out)[0]
    out = finish(interp, out, 1.0)
    menu = plays(out)[0]
    out = interp.handle(it.DigitPressed(digit="1"), 1.5)  # barge through the menu prompt
    assert out[0] == it.StopPrompt(token=menu.token)
    assert any(isinstance(o, it.Enqueue) and o.queue == "sales" for o in out)
    assert greeting.token != menu.token


def test_key_during_greeting_carries_into_the_menu(flow: ivr.Flow) -> None:
    interp = ivr.build_interpreter(flow, "c1", "1")
    greeting = plays(interp.start(0.0))[0]
    out = interp.handle(it.DigitPressed(digit="2"), 0.5)
    assert out[0] == it.StopPrompt(token=greeting.token)
    stops = [o for o in out if isinstance(o, it.StopPrompt)]
    assert len(stops) == 2  # the greeting, then the menu prompt that the key answered
    assert next(o for o in out if isinstance(o, it.Enqueue)).queue == "support"
    assert interp.path == ["who", "greeting", "main_menu", "support"]


def test_three_failures_reach_a_human_with_history(flow: ivr.Flow) -> None:
    clock = FakeClock()
    interp = ivr.build_interpreter(flow, "c1", "1")
    out = finish(interp, interp.start(0.0), 1.0)  # greeting done, menu prompt playing
    out = finish(interp, out, clock.advance(3))
    # 1st failure: a wrong key -> the clarifying re-prompt
    out = interp.handle(it.DigitPressed(digit="9"), clock.advance(1))
    assert plays(out)[0].prompt.text.startswith("Sorry")
    out = finish(interp, out, clock.advance(3))
    # 2nd failure: silence -> the choices said explicitly, from the option labels
    out = interp.on_timer(clock.advance(5))
    assert plays(out)[0].prompt.text == "For sales, press 1. For support, press 2."
    out = finish(interp, out, clock.advance(3))
    assert interp.on_timer(clock.now + 1) == []  # not due yet: nothing happens
    # 3rd failure -> escalate to the operator queue, with what was tried
    out = interp.handle(it.DigitPressed(digit="7"), clock.advance(1))
    results = [o.result for o in out if isinstance(o, it.IvrInput)]
    assert results == ["no_match"]
    esc = next(o for o in out if isinstance(o, it.IvrEscalated))
    assert esc.to == "operator" and [h["result"] for h in esc.history] == ["no_match", "no_input", "no_match"]
    enqueue = next(o for o in out if isinstance(o, it.Enqueue))
    assert enqueue.queue == "operator" and enqueue.priority == 5
    assert enqueue.data["escalation"]["reason"] == "no_match"
    assert [i["input"] for i in enqueue.data["inputs"]] == ["9", "", "7"]


def test_failure_count_resets_when_node_is_reentered_from_elsewhere() -> None:
    text = """
flow: t
start: menu
nodes:
  menu:
    type: menu
    prompt: {text: "1 or 2"}
    options: {"1": back, "2": done}
    escalate_to: done
  back:
    type: play
    prompt: {text: "again"}
    next: menu
  done:
    type: hangup
"""
    flow, diags = ivr.compile_flow(text, "t.yaml")
    assert flow is not None, diags
    interp = ivr.build_interpreter(flow, "c", "")
    out = finish(interp, interp.start(0), 1)
    interp.handle(it.DigitPressed(digit="5"), 2)  # failure 1
    out = interp.handle(it.DigitPressed(digit="5"), 3)  # failure 2 (interrupts the reprompt)
    out = interp.handle(it.DigitPressed(digit="1"), 4)  # valid: go to `back`, then menu again
    out = finish(interp, out, 5)
    for n in (6, 7):  # two more failures are allowed: the count restarted
        out = interp.handle(it.DigitPressed(digit="5"), n)
        assert not any(isinstance(o, it.IvrEscalated) for o in out)
    out = interp.handle(it.DigitPressed(digit="5"), 8)
    assert any(isinstance(o, it.IvrEscalated) for o in out)


def test_transfer_hangup_and_voicemail_nodes() -> None:
    text = """
start: m
nodes:
  m:
    type: menu
    prompt: {text: menu}
    options: {"1": xfer, "2": vm, "3": bye}
    escalate_to: bye
  xfer: {type: transfer, to: "sip:desk@127.0.0.1"}
  vm: {type: voicemail, prompt: beep, max_seconds: 30}
  bye: {type: hangup, prompt: {text: Goodbye}}
"""
    flow, diags = ivr.compile_flow(text, "t.yaml")
    assert flow is not None, diags

    def chose(key: str) -> tuple[ivr.CallInterpreter, list]:
        i = ivr.build_interpreter(flow, "c", "")
        finish(i, i.start(0), 1)
        return i, i.handle(it.DigitPressed(digit=key), 2)

    _, out = chose("1")
    assert out[-1] == it.Transfer(to="sip:desk@127.0.0.1")
    i, out = chose("2")
    out = finish(i, out, 3)
    assert out == [it.StartRecording(kind="voicemail")]
    assert i.next_deadline() == 33
    assert i.on_timer(33) == [it.HangUp(reason="voicemail_complete")]
    i, out = chose("3")
    assert plays(out)[0].prompt.text == "Goodbye"
    assert finish(i, out, 4) == [it.HangUp(reason="flow_end")]


def test_goto_loop_without_input_hangs_up_instead_of_spinning() -> None:
    text = """
start: a
nodes:
  a: {type: goto, next: b}
  b: {type: goto, next: a}
"""
    flow, diags = ivr.compile_flow(text, "t.yaml")
    assert flow is None  # the validator now rejects the spin statically ...
    assert [(d.code, d.loc.line) for d in diags] == [("flow.loop_without_input", 4)]
    # ... and the interpreter still guards at run time (a hand-built flow skips the validator)
    loc = ivr.Location("t.yaml", 1, 1)
    nodes = {
        "a": fl.GotoNode(name="a", loc=loc, next="b", next_loc=loc),
        "b": fl.GotoNode(name="b", loc=loc, next="a", next_loc=loc),
    }
    raw = ivr.Flow(name="t", path="t.yaml", version="0", start="a", language="en", nodes=nodes)
    out = ivr.build_interpreter(raw, "c", "").start(0)
    assert out == [it.HangUp(reason="flow_loop")]


def test_stale_prompt_finished_is_ignored(flow: ivr.Flow) -> None:
    interp = ivr.build_interpreter(flow, "c", "")
    out = interp.start(0)
    interp.handle(it.DigitPressed(digit="1"), 0.1)  # stops the greeting
    assert interp.handle(it.PromptFinished(token=plays(out)[0].token), 0.2) == []


def test_callback_is_offered_as_soon_as_the_wait_is_known_to_be_long() -> None:
    text = """
start: wait
nodes:
  wait:
    type: queue
    queue: sales
    hold: {text: "Please hold."}
    callback_after: 60
    callback_next: bye
  bye: {type: hangup}
"""
    flow, diags = ivr.compile_flow(text, "q.yaml")
    assert flow is not None, diags
    interp = ivr.build_interpreter(flow, "c", "555")
    hold = plays(interp.start(0))[0]
    assert interp.handle(it.VariablesUpdated(values={"queue.ewt": 30}), 1) == []  # short: no offer
    out = interp.handle(it.VariablesUpdated(values={"queue.ewt": 240}), 2)
    assert out[0] == it.StopPrompt(token=hold.token)
    assert "press 1" in plays(out)[0].prompt.text
    assert interp.handle(it.VariablesUpdated(values={"queue.ewt": 300}), 3) == []  # offered once
    out = interp.handle(it.DigitPressed(digit="1"), 4)
    assert any(isinstance(o, it.RequestCallback) for o in out)


def test_jump_continues_the_call_at_a_node_and_refuses_unknown_ones() -> None:
    text = """
start: wait
entry_points: [sorry]
nodes:
  wait: {type: queue, queue: sales, hold: {text: "Please hold."}}
  sorry: {type: hangup, prompt: {text: "Sorry, nobody is free."}}
"""
    flow, diags = ivr.compile_flow(text, "j.yaml")
    assert flow is not None, diags
    interp = ivr.build_interpreter(flow, "c", "")
    hold = plays(interp.start(0))[0]
    out = interp.jump("sorry", 5)
    assert out[0] == it.StopPrompt(token=hold.token)
    assert plays(out)[0].prompt.text == "Sorry, nobody is free."
    assert finish(interp, out, 7) == [it.HangUp(reason="flow_end")]
    other = ivr.build_interpreter(flow, "d", "")
    other.start(0)
    assert other.jump("nowhere", 1) == [it.HangUp(reason="unknown_node")]


RESUME = """
start: back
nodes:
  back:
    type: resume
    prompt: {text: "Welcome back. Press 1 to continue."}
    next: menu
  menu:
    type: menu
    prompt: {text: "Press 1 for support."}
    options: {"1": support}
    escalate_to: support
  support: {type: queue, queue: support, priority: 2}
"""


def _returning(kind: str, **where: object) -> dict:
    return {"returning": True, "resume": {"kind": kind, **where}}


def test_resume_is_silent_for_callers_who_are_not_returning() -> None:
    flow, diags = ivr.compile_flow(RESUME, "r.yaml")
    assert flow is not None, diags
    out = ivr.build_interpreter(flow, "c", "555").start(0)
    assert plays(out)[0].prompt.text == "Press 1 for support."  # straight to `next`


def test_resume_puts_a_returning_caller_back_in_line_ahead_of_new_callers() -> None:
    flow, _ = ivr.compile_flow(RESUME, "r.yaml")
    assert flow is not None
    caller = _returning("queue", queue="support", priority=2)
    interp = ivr.build_interpreter(flow, "c", "555", variables={"caller": caller})
    offer = plays(interp.start(0))[0]
    assert offer.prompt.text.startswith("Welcome back")
    out = interp.handle(it.DigitPressed(digit="1"), 1)
    assert out[0] == it.StopPrompt(token=offer.token)
    enqueue = next(o for o in out if isinstance(o, it.Enqueue))
    assert enqueue.queue == "support" and enqueue.priority == 3


def test_resume_to_the_last_node_or_decline_by_silence() -> None:
    flow, _ = ivr.compile_flow(RESUME, "r.yaml")
    assert flow is not None
    interp = ivr.build_interpreter(flow, "c", "555", variables={"caller": _returning("node", node="support")})
    out = finish(interp, interp.start(0), 2)
    assert out == [] and interp.next_deadline() == 6
    out = interp.on_timer(6)  # no key: the normal way in
    assert plays(out)[0].prompt.text == "Press 1 for support."
    again = ivr.build_interpreter(flow, "d", "555", variables={"caller": _returning("node", node="support")})
    again.start(0)
    out = again.handle(it.DigitPressed(digit="1"), 1)
    assert any(isinstance(o, it.Enqueue) for o in out)  # resumed at the node `support`


def _profile(**fields: object) -> dict[str, object]:
    base = {"number": "5550142", "known": True, "tier": "gold", "name": "Hana Kim", "assisted": False}
    return {**base, "priority_human": False, "language": "", "recent": [], "contacts_recent": 0, **fields}


@pytest.mark.parametrize(
    ("profile", "rate"),
    [({"assisted": True}, 120), ({"priority_human": True}, 0)],
    ids=["assisted", "priority"],
)
def test_assisted_and_priority_callers_go_straight_to_a_certified_human(
    flow: ivr.Flow, profile: dict[str, object], rate: int
) -> None:
    """The shipped main flow: no menu, raised priority, the `certified` skill; assisted callers
    hear every prompt at 120 words per minute; the screen-pop carries the profile."""
    clock = FakeClock()
    recent = [{"call_id": "old", "minutes_ago": 3, "cause": "abandoned", "queue": "sales", "served": False}]
    caller = _profile(**profile, recent=recent, sentiment="negative")
    interp = ivr.build_interpreter(flow, "c1", "5550142", variables={"caller": caller})
    out = interp.start(clock.now)
    (greeting,) = plays(out)
    assert greeting.prompt.rate == rate
    out = finish(interp, out, clock.advance(2))
    enqueue = next(o for o in out if isinstance(o, it.Enqueue))
    assert (enqueue.queue, enqueue.priority, enqueue.skills) == ("care", 8, ("certified",))
    assert all(p.prompt.rate == rate for p in plays(out))  # the hold prompt too
    assert "main_menu" not in interp.path
    pop = enqueue.data["profile"]
    assert (pop["tier"], pop["name"], pop["language"], pop["last_sentiment"]) == (
        "gold",
        "Hana Kim",
        "",
        "negative",
    )
    assert pop["assisted"] is bool(profile.get("assisted")) and pop["recent"] == recent


def test_a_prompt_rate_is_checked(tmp_path: Path) -> None:
    text = "flow: r\nstart: a\nnodes:\n  a: {type: hangup, prompt: {text: hi, rate: 900}}\n"
    _, diags = ivr.compile_flow(text, "r.yaml")
    assert [(d.code, d.loc.line) for d in diags] == [("flow.bad_value", 4)]
    good, diags = ivr.compile_flow(text.replace("900", "100"), "r.yaml")
    assert not diags and good is not None
    assert good.nodes["a"].prompt.rate == 100
