"""The call controller's invariants under random event sequences (hypothesis).

Callers arrive, press keys and hang up; agents log in, answer, refuse and hang up; CTI
clients hold, requeue, transfer and hang up; time passes; the server may shut down. After
every step and at the end:

- a call ends exactly once: one `call.ended` per call life, and every call that arrived
  has one once all its legs are gone;
- no effect reaches a finished call (no leg effect, no prompt) after its `call.ended`;
- the controller tracks no leg that has ended.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import acd
import calls
from calls import effects as fx
from calls import inputs as inp

from .callrig import CallRig

LEG_EFFECTS = (
    fx.Answer,
    fx.Dial,
    fx.Bridge,
    fx.PlayFile,
    fx.Record,
    fx.ResolvePrompt,
    fx.Listen,
    fx.Transfer,
)

# weighted towards the paths that reach an agent: press 1 or 2, agents answer
step = st.one_of(
    st.tuples(st.just("connect"), st.sampled_from("12")),  # arrive, press, the rung agent answers
    st.tuples(st.just("connect"), st.sampled_from("12")),
    st.tuples(st.just("outbound")),  # click-to-dial: the agent answers, then the customer
    st.tuples(st.just("arrive")),
    st.tuples(st.just("press"), st.integers(0, 5), st.sampled_from("1111222334#05")),
    st.tuples(st.just("press"), st.integers(0, 5), st.sampled_from("1111222334#05")),
    st.tuples(st.just("caller_hangs_up"), st.integers(0, 5)),
    st.tuples(st.just("agent_answers"), st.integers(0, 9)),
    st.tuples(st.just("agent_answers"), st.integers(0, 9)),
    st.tuples(st.just("agent_answers"), st.integers(0, 9)),
    st.tuples(st.just("agent_fails"), st.integers(0, 9), st.sampled_from([486, 603, 408, 200])),
    st.tuples(st.just("ready"), st.sampled_from(["a1", "a2"])),
    st.tuples(st.just("not_ready"), st.sampled_from(["a1", "a2"])),
    st.tuples(st.just("logout"), st.sampled_from(["a1", "a2"])),
    st.tuples(
        st.just("cti"),
        st.integers(0, 5),
        st.sampled_from(["hold", "requeue", "transfer", "hangup", "assist", "record_stop", "make"]),
    ),
    st.tuples(st.just("wait"), st.sampled_from([0.1, 0.5, 1.0, 3.0, 11.0])),
)


COMMANDS = {"outbound", "ready", "not_ready", "logout", "cti"}


@contextlib.contextmanager
def refusals(refused: tuple[type[Exception], ...]) -> Iterator[None]:
    try:
        yield
    except calls.IllegalCallTransition:
        raise  # never a refusal: the controller tried a move its own table forbids
    except refused:
        pass


class Checker:
    def __init__(self, rig: CallRig) -> None:
        self.rig = rig
        self.seen = 0
        self.ended_at: dict[tuple[str, int], int] = {}  # (call id, life) -> batch index of call.ended
        self.legs_of: dict[str, set[str]] = {}

    def check(self) -> None:
        rig = self.rig
        for index in range(self.seen, len(rig.batches)):
            for e in rig.batches[index]:
                if isinstance(e, fx.Dial):
                    cid = e.headers.get("X-Hotline-Call-Id", "")
                    self.legs_of.setdefault(cid, set()).add(e.leg)
                if isinstance(e, fx.Log) and e.level == "error":
                    raise AssertionError(f"the controller logged an error: {e}")
                if isinstance(e, fx.Publish) and e.event.wire == "call.ended":
                    life = 2 if e.event.summary.get("callback") else 1
                    key = (e.event.call_id, life)
                    assert key not in self.ended_at, f"call.ended twice for {key}"
                    self.ended_at[key] = index
            for (cid, life), at in self.ended_at.items():
                if at >= index or life > 1:
                    continue
                call = rig.ctl.calls.get(cid)
                if call is not None and call.life > 1:
                    continue  # a callback conversation lives on under the same id
                for e in rig.batches[index]:
                    if isinstance(e, LEG_EFFECTS) and getattr(e, "call_id", None) == cid:
                        raise AssertionError(f"{e} for {cid} after its call.ended")
                    if isinstance(e, LEG_EFFECTS) and getattr(e, "leg", None) in self.legs_of.get(cid, ()):
                        raise AssertionError(f"{e} on a leg of {cid} after its call.ended")
        self.seen = len(rig.batches)
        for leg in rig.ctl._by_leg:
            assert leg in rig.up, f"the controller still tracks ended leg {leg}"


def run(rig: CallRig, steps: list[tuple[Any, ...]]) -> Checker:
    checker = Checker(rig)
    rig.ready("a1", "a2")
    arrived: list[str] = []
    legs: list[str] = []
    made = 0
    for s in steps:
        kind = s[0]
        # a command that does not fit is refused (and changes nothing); anything else that
        # raises, e.g. an illegal phase move on a SIP event, fails the test
        refused = (calls.CallUsageError, acd.AcdUsageError) if kind in COMMANDS else ()
        with refusals(refused):
            if kind in ("arrive", "connect"):
                cid = f"c{len(arrived) + 1}"
                legs.append(rig.arrive(cid, caller=f"555{len(arrived)}"))
                arrived.append(cid)
                if kind == "connect":
                    rig.press(legs[-1], s[1], gap=0.05)
                    ringing = [d.leg for d in rig.dials() if d.leg in rig.up and "@agents" in d.uri]
                    if ringing:
                        rig.answer(ringing[-1])
            elif kind == "outbound":
                made += 1
                rig.feed(inp.MakeCall(call_id=f"o{made}", agent_id="a1", to="5550000", purpose="service"))
                rig.answer(rig.dials()[-1].leg)
                rig.advance(0.1)
                if rig.dials()[-1].leg in rig.up:
                    rig.answer(rig.dials()[-1].leg)
            elif kind == "press" and legs:
                rig.press(legs[s[1] % len(legs)], s[2], gap=0.05)
            elif kind == "caller_hangs_up" and legs:
                rig.hang_up(legs[s[1] % len(legs)])
            elif kind in ("agent_answers", "agent_fails"):
                agent_legs = [d.leg for d in rig.dials() if d.leg in rig.up]
                if agent_legs:
                    leg = agent_legs[s[1] % len(agent_legs)]
                    if kind == "agent_answers":
                        rig.answer(leg)
                    else:
                        rig.hang_up(leg, code=s[2])
            elif kind == "ready":
                state = rig.router.agent_state(s[1])
                if state is acd.AgentState.LOGGED_OUT:
                    rig.feed(inp.AgentCommand(event=acd.events.AgentLoggedIn(agent_id=s[1])))
                rig.feed(inp.AgentCommand(event=acd.events.AgentBecameReady(agent_id=s[1])))
            elif kind == "not_ready":
                rig.feed(inp.AgentCommand(event=acd.events.AgentWentNotReady(agent_id=s[1], reason="break")))
            elif kind == "logout":
                rig.feed(inp.AgentCommand(event=acd.events.AgentLoggedOut(agent_id=s[1])))
            elif kind == "cti" and arrived:
                cid = arrived[s[1] % len(arrived)]
                command = {
                    "hold": inp.HoldCall(call_id=cid, hold=True),
                    "requeue": inp.Requeue(call_id=cid, queue="support"),
                    "transfer": inp.BlindTransfer(call_id=cid, to="sip:x@y"),
                    "hangup": inp.HangUpCall(call_id=cid),
                    "assist": inp.Assist(call_id=cid, flow="verify"),
                    "record_stop": inp.ControlRecording(call_id=cid, action="stop"),
                    "make": inp.MakeCall(call_id=f"m{made}", agent_id="a2", to="5550001", purpose="service"),
                }[s[2]]
                made += s[2] == "make"
                rig.feed(command)
            elif kind == "wait":
                rig.advance(s[1])
        rig.advance(0)
        checker.check()
    return checker


def finish(rig: CallRig, checker: Checker) -> None:
    """Everyone hangs up; every call that arrived (and every click-to-dial) ends once."""
    for _ in range(5):
        for leg in sorted(rig.up):
            rig.hang_up(leg)
        rig.advance(15)
        checker.check()
    assert not rig.up
    lives = Counter(cid for cid, _ in checker.ended_at)
    for cid in [c for c in rig.ctl.calls if rig.ctl.calls[c].phase is not calls.CallPhase.CALLBACK_PENDING]:
        raise AssertionError(f"{cid} is still live ({rig.ctl.calls[cid].phase}) with every leg gone")
    arrived = {e.call_id for e in rig.published("call.offered")} | {
        e.call_id for e in rig.published("call.outbound")
    }
    assert arrived <= set(lives), f"never ended: {arrived - set(lives)}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=5, max_size=50))
def test_random_sequences_keep_the_invariants(steps: list[tuple[Any, ...]]) -> None:
    rig = CallRig()
    checker = run(rig, steps)
    finish(rig, checker)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=5, max_size=40))
def test_random_sequences_with_a_shutdown_keep_the_invariants(steps: list[tuple[Any, ...]]) -> None:
    rig = CallRig()
    checker = run(rig, steps)
    undecided = {c.call_id for c in rig.ctl.live_calls() if c.end_cause is None}
    rig.feed(inp.Shutdown())
    finish(rig, checker)
    last = {e.call_id: e.cause for e in rig.ended()}
    assert {cid: last[cid] for cid in undecided} == {cid: "shutdown" for cid in undecided}
