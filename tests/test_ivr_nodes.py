"""Interpreter core for the full language, with a fake clock: every node type and exit."""

from __future__ import annotations

import datetime as dt

import pytest

import ivr
from ivr import interpreter as it

from .helpers import FakeClock

QUEUES = ["sales", "support", "operator"]


def compile_ok(text: str, **kw: object) -> ivr.Flow:
    flow, diags = ivr.compile_flow(text, "t.yaml", known_queues=QUEUES, **kw)  # type: ignore[arg-type]
    assert flow is not None, [str(d) for d in diags]
    return flow


def plays(outputs: list) -> list[it.PlayPrompt]:
    return [o for o in outputs if isinstance(o, it.PlayPrompt)]


def of(outputs: list, kind: type) -> list:
    return [o for o in outputs if isinstance(o, kind)]


def finish(interp: ivr.CallInterpreter, outputs: list, now: float) -> list:
    return interp.handle(it.PromptFinished(token=plays(outputs)[-1].token), now)


def keys(interp: ivr.CallInterpreter, digits: str, now: float) -> list:
    out: list = []
    for d in digits:
        out += interp.handle(it.DigitPressed(digit=d), now)
    return out


COLLECT = """
start: card
interrupts:
  - {keys: ["0"], target: operator, reason: operator}
nodes:
  card:
    type: collect
    prompt: {text: "Card number, then hash."}
    var: card
    min_digits: 12
    max_digits: 19
    validator: luhn
    secure: true
    first_timeout: 6
    inter_timeout: 4
    escalate_to: operator
    next: thanks
  thanks: {type: play, prompt: {text: "Thanks, card {card}."}, next: pin}
  pin:
    type: collect
    prompt: {text: "PIN"}
    var: pin
    min_digits: 4
    max_digits: 4
    regex: "[0-9]{4}"
    terminator: ""
    escalate_to: operator
    next: done
  done: {type: hangup}
  operator: {type: queue, queue: operator}
"""
CARD = "4111111111111111"  # passes Luhn


def test_secure_collect_masks_digits_and_pauses_the_recording() -> None:
    clock = FakeClock()
    interp = ivr.build_interpreter(compile_ok(COLLECT), "c", "555")
    out = interp.start(clock.now)
    assert out[0] == it.PauseRecording(reason="secure_input")
    out = finish(interp, out, clock.advance(2))
    assert interp.next_deadline() == clock.now + 6  # first-digit timeout
    out = keys(interp, CARD, clock.advance(1))
    assert interp.next_deadline() == clock.now + 4  # inter-digit timeout
    out = keys(interp, "#", clock.advance(1))
    assert of(out, it.IvrInput) == [
        it.IvrInput(
            call_id="c", node="card", mode="dtmf", input="****", result="match", attempt=0, masked=True
        )
    ]
    assert of(out, it.ResumeRecording) == [it.ResumeRecording(reason="secure_input")]
    assert plays(out)[0].prompt.text == "Thanks, card ****."
    assert interp.secrets == {"card": CARD}
    everything = repr(out) + repr(interp.inputs) + repr(interp.variables) + repr(interp.path)
    assert CARD not in everything and "1111" not in everything


def test_collect_invalid_input_climbs_the_ladder_and_masks_history() -> None:
    clock = FakeClock()
    interp = ivr.build_interpreter(compile_ok(COLLECT), "c", "555")
    out = finish(interp, interp.start(0), clock.advance(1))
    out = keys(interp, "4111111111111112#", clock.advance(1))  # fails Luhn
    assert of(out, it.IvrInput)[0].result == "no_match" and of(out, it.IvrInput)[0].input == "****"
    assert plays(out)[0].prompt.text == "Card number, then hash."  # level 1: re-prompt
    out = finish(interp, out, clock.advance(1))
    out = interp.on_timer(clock.advance(6))  # no input
    assert (
        plays(out)[0].prompt.text == "Please enter 12 to 19 digits on your keypad, then press the hash key."
    )
    out = finish(interp, out, clock.advance(1))
    out = keys(interp, "123#", clock.advance(1))  # too short: level 3
    esc = of(out, it.IvrEscalated)[0]
    assert [h["result"] for h in esc.history] == ["no_match", "no_input", "no_match"]
    assert "123" not in repr(esc) and "4111" not in repr(out)
    enqueue = of(out, it.Enqueue)[0]
    assert enqueue.queue == "operator" and "4111" not in repr(enqueue.data)
    assert of(out, it.ResumeRecording)  # leaving the secure node resumes the recording


def test_collect_max_digits_and_inter_digit_timeout_and_regex() -> None:
    clock = FakeClock()
    interp = ivr.build_interpreter(compile_ok(COLLECT), "c", "555")
    out = finish(interp, interp.start(0), 1)
    out = keys(interp, CARD + "#", 2)
    out = finish(interp, out, 3)  # "thanks" done -> pin prompt
    out = finish(interp, out, 4)
    out = keys(interp, "1234", clock.advance(5))  # max 4 ends entry, no terminator needed
    assert of(out, it.IvrInput)[0].input == "1234" and interp.variables["pin"] == "1234"
    assert of(out, it.HangUp) == [it.HangUp(reason="flow_end")]
    # the inter-digit timeout ends entry when some digits are in
    interp = ivr.build_interpreter(compile_ok(COLLECT.replace("min_digits: 4", "min_digits: 2")), "c", "")
    out = finish(interp, interp.start(0), 1)
    out = finish(interp, keys(interp, CARD + "#", 2), 3)
    out = finish(interp, out, 4)
    keys(interp, "12", 5)
    out = interp.on_timer(5 + 3)
    assert of(out, it.IvrInput)[0].result == "no_match"  # "12" fails the regex [0-9]{4}


def test_interrupt_key_is_honoured_only_as_the_first_key_of_a_collect() -> None:
    interp = ivr.build_interpreter(compile_ok(COLLECT), "c", "")
    prompt = plays(interp.start(0))[0]
    out = interp.handle(it.DigitPressed(digit="0"), 1)  # barges in on the prompt
    assert out[0] == it.StopPrompt(token=prompt.token)
    jumped = of(out, it.IvrInterrupted)[0]
    assert (jumped.node, jumped.input, jumped.reason, jumped.to) == ("card", "0", "operator", "operator")
    assert of(out, it.Enqueue)[0].data["interrupt"] == {"node": "card", "input": "0", "reason": "operator"}
    interp = ivr.build_interpreter(compile_ok(COLLECT), "c", "")
    out = finish(interp, interp.start(0), 1)
    out = keys(interp, "40", 2)  # a 0 inside a number is a digit
    assert not of(out, it.IvrInterrupted)


MENU = """
start: menu
interrupts:
  - {keys: ["0"], target: operator, reason: operator}
  - {phrases: [complaint, 投诉, regulator, 监管], target: complaints, reason: complaint}
  - {phrases: [agent, 人工], target: operator, reason: agent}
nodes:
  menu:
    type: menu
    prompt: {text: "1 sales, 2 support"}
    options:
      "1": {next: sales, label: sales, phrases: [sales, buy]}
      "2": {next: support, label: support}
    escalate_to: operator
  sales: {type: queue, queue: sales}
  support: {type: queue, queue: support}
  operator: {type: queue, queue: operator}
  complaints: {type: queue, queue: operator, priority: 9, data: {topic: complaint}}
"""


@pytest.mark.parametrize(
    ("said", "queue", "reason"),
    [
        ("我要投诉", "operator", "complaint"),
        ("I want an AGENT", "operator", "agent"),
        ("buy stuff", "sales", None),
    ],
)
def test_speech_interrupts_and_menu_phrases(said: str, queue: str, reason: str | None) -> None:
    interp = ivr.build_interpreter(compile_ok(MENU), "c", "")
    interp.start(0)
    out = interp.handle(it.SpeechRecognized(text=said), 1)
    assert of(out, it.Enqueue)[0].queue == queue
    assert [i.reason for i in of(out, it.IvrInterrupted)] == ([reason] if reason else [])


def test_interrupt_key_at_a_menu_and_option_keys_win() -> None:
    interp = ivr.build_interpreter(compile_ok(MENU), "c", "")
    out = finish(interp, interp.start(0), 1)
    out = interp.handle(it.DigitPressed(digit="0"), 2)
    assert of(out, it.IvrInterrupted)[0].to == "operator"
    assert of(out, it.IvrInput)[0].result == "interrupt"
    owned = MENU.replace('"2": {next: support, label: support}', '"0": {next: support, label: support}')
    interp = ivr.build_interpreter(compile_ok(owned), "c", "")
    out = finish(interp, interp.start(0), 1)
    out = interp.handle(it.DigitPressed(digit="0"), 2)
    assert not of(out, it.IvrInterrupted) and of(out, it.Enqueue)[0].queue == "support"


BRANCHY = """
start: init
variables: {vip_threshold: 2}
nodes:
  init:
    type: set
    assign: {attempts: 0, greeting: "'Hello'"}
    next: route
  route:
    type: branch
    cases:
      - {if: "caller.tier == 'gold' and attempts < vip_threshold", next: vip}
      - {if: "caller.tier in ['silver', 'bronze']", next: std}
    default: std
  vip: {type: play, prompt: {text: "{greeting}, valued {caller.tier} caller {caller.number}"}, next: q}
  std: {type: play, prompt: {text: "{greeting}"}, next: q}
  q: {type: queue, queue: sales, data: {tier: "{caller.tier}"}}
"""


def test_set_and_branch_and_interpolation() -> None:
    flow = compile_ok(BRANCHY)
    interp = ivr.build_interpreter(flow, "c", "555", variables={"caller": {"tier": "gold"}})
    out = interp.start(0)
    assert plays(out)[0].prompt.text == "Hello, valued gold caller 555"
    assert interp.path == ["init", "route", "vip"]
    out = finish(interp, out, 1)
    assert of(out, it.Enqueue)[0].data["tier"] == "gold" and of(out, it.Enqueue)[0].data["caller"] == "555"
    interp = ivr.build_interpreter(flow, "c", "555")
    assert plays(interp.start(0))[0].prompt.text == "Hello"


SCHEDULE = """
start: hours
nodes:
  hours:
    type: schedule
    hours: {mon-fri: "09:00-17:00", sat: ["10:00-12:00", "13:00-14:00"], sun: closed}
    holidays: [2025-12-25]
    open: q
    closed: closed
    holiday: holiday
    emergency: emergency
  q: {type: queue, queue: sales}
  closed: {type: hangup, prompt: {text: closed}}
  holiday: {type: hangup, prompt: {text: holiday}}
  emergency: {type: hangup, prompt: {text: emergency}}
"""


@pytest.mark.parametrize(
    ("when", "exit_"),
    [
        (dt.datetime(2025, 12, 22, 9, 0), "q"),  # Monday 09:00 opens
        (dt.datetime(2025, 12, 22, 17, 0), "closed"),  # 17:00 is closed
        (dt.datetime(2025, 12, 27, 12, 30), "closed"),  # Saturday lunch
        (dt.datetime(2025, 12, 27, 13, 30), "q"),
        (dt.datetime(2025, 12, 28, 11, 0), "closed"),  # Sunday
        (dt.datetime(2025, 12, 25, 11, 0), "holiday"),
        (None, "closed"),  # no wall clock from the adapter: fail closed
    ],
)
def test_schedule_exits(when: dt.datetime | None, exit_: str) -> None:
    interp = ivr.build_interpreter(compile_ok(SCHEDULE), "c", "", wall=when)
    interp.start(100.0)
    assert interp.path == ["hours", exit_]


def test_schedule_emergency_switch_and_wall_clock_follows_monotonic_time() -> None:
    flow = compile_ok(
        SCHEDULE.replace("start: hours", "start: hello").replace(
            "nodes:\n", "nodes:\n  hello: {type: play, prompt: {text: hi}, next: hours}\n"
        )
    )
    interp = ivr.build_interpreter(
        flow, "c", "", variables={"emergency": True}, wall=dt.datetime(2025, 12, 22, 10)
    )
    finish(interp, interp.start(0), 1)
    assert interp.path[-1] == "emergency"
    interp = ivr.build_interpreter(flow, "c", "")
    out = interp.start(50.0, wall=dt.datetime(2025, 12, 22, 16, 59, 30))
    finish(interp, out, 80.0)  # 30 s later on the monotonic clock: 17:00:00, closed
    assert interp.path[-1] == "closed"


LOOKUP = """
start: who
nodes:
  who:
    type: lookup
    method: POST
    url: "https://crm.example/customers/{caller.number}"
    json: {number: caller.number, card: secret.card}
    timeout: 2
    result: {tier: customer.tier, name: customer.name}
    next: known
    fallback: unknown
  known: {type: play, prompt: {text: "Hello {name}, {tier}"}, next: q}
  unknown: {type: play, prompt: {text: "Hello ({lookup.reason})"}, next: q}
  q: {type: queue, queue: sales}
"""


def test_lookup_success_maps_fields() -> None:
    interp = ivr.build_interpreter(compile_ok(LOOKUP), "c", "555")
    out = interp.start(0)
    req = out[0]
    assert isinstance(req, it.HttpLookup)
    assert (req.method, req.url, req.json, req.timeout) == (
        "POST",
        "https://crm.example/customers/555",
        {"number": "555", "card": None},
        2,
    )
    assert req.sensitive
    body = {"customer": {"tier": "gold", "name": "Ann"}}
    out = interp.handle(it.LookupResult(request_id=req.request_id, status=200, body=body), 0.5)
    assert plays(out)[0].prompt.text == "Hello Ann, gold"


@pytest.mark.parametrize("how", ["failed", "http_500", "timeout"])
def test_lookup_fallback_and_late_answers_are_ignored(how: str) -> None:
    interp = ivr.build_interpreter(compile_ok(LOOKUP), "c", "555")
    req = interp.start(0)[0]
    assert isinstance(req, it.HttpLookup)
    if how == "failed":
        out = interp.handle(it.LookupFailed(request_id=req.request_id, reason="connect"), 1)
    elif how == "http_500":
        out = interp.handle(it.LookupResult(request_id=req.request_id, status=500, body={}), 1)
    else:
        assert interp.next_deadline() == 2
        assert interp.on_timer(1.9) == []
        out = interp.on_timer(2)
    assert interp.path == ["who", "unknown"]
    assert plays(out)[0].prompt.text == {"failed": "Hello (connect)", "http_500": "Hello (http_500)"}.get(
        how, "Hello (timeout)"
    )
    late = interp.handle(it.LookupResult(request_id=req.request_id, status=200, body={}), 3)
    assert late == [] and interp.path == ["who", "unknown"]


MAIN_WITH_SUB = """
flow: top
start: ask
nodes:
  ask: {type: subflow, flow: verify, next: after}
  after: {type: play, prompt: {text: "verified {verified}"}, next: bye}
  bye: {type: hangup}
"""
SUB = """
flow: verify
start: check
variables: {verified: false}
nodes:
  check: {type: play, prompt: {text: checking}, next: mark}
  mark: {type: set, assign: {verified: "true"}, next: done}
  done: {type: return}
"""


def test_subflow_and_return_resolved_against_a_flow_set() -> None:
    flows, diags = ivr.compile_flow_set({"top.yaml": MAIN_WITH_SUB, "verify.yaml": SUB})
    assert not diags and set(flows) == {"top", "verify"}
    interp = ivr.build_interpreter(flows["top"], "c", "", flows=flows)
    out = interp.start(0)
    assert plays(out)[0].prompt.text == "checking"
    out = finish(interp, out, 1)
    assert plays(out)[0].prompt.text == "verified yes"
    assert interp.path == ["ask", "verify/check", "verify/mark", "verify/done", "after"]
    assert finish(interp, out, 2) == [it.HangUp(reason="flow_end")]
    # unresolved at run time (the adapter passed no flow set): hang up, never crash
    assert ivr.build_interpreter(flows["top"], "c", "").start(0) == [it.HangUp(reason="unknown_subflow")]
    _, diags = ivr.compile_flow_set({"top.yaml": MAIN_WITH_SUB})
    assert [(d.code, d.loc.line) for d in diags] == [
        ("flow.unknown_subflow", 5),
        ("flow.undefined_variable", 6),
    ]


LANGUAGE = """
start: pick
language: en
nodes:
  pick:
    type: language
    prompt: {text: "For English press 1. 中文请按2。"}
    options: {"1": en, "2": zh}
    next: hello
    escalate_to: hello
  hello:
    type: play
    prompt: {id: hello, text: {en: "Hello", zh: "您好"}}
    next: bye
  bye: {type: hangup}
"""


def test_language_choice_resolves_prompts_per_language() -> None:
    interp = ivr.build_interpreter(compile_ok(LANGUAGE), "c", "")
    out = interp.start(0)
    assert plays(out)[0].language == "en"
    out = interp.handle(it.DigitPressed(digit="2"), 1)
    hello = plays(out)[0]
    assert (hello.prompt.id, hello.prompt.text, hello.language) == ("hello", "您好", "zh")
    assert interp.variables["language"] == "zh"
    interp = ivr.build_interpreter(compile_ok(LANGUAGE), "c", "")
    out = finish(interp, interp.start(0), 1)
    for n in range(3):  # the ladder applies: three timeouts go to escalate_to
        out = interp.on_timer(interp.next_deadline() or 0)
        if n < 2:
            out = finish(interp, out, (interp.next_deadline() or 0) + 1)
    assert plays(out)[0].prompt.text == "Hello" and of(out, it.IvrEscalated)


SURVEY = """
start: rate
nodes:
  rate:
    type: survey
    prompt: {text: "Rate us 1 to 5"}
    question: satisfaction
    var: score
    next: bye
  bye: {type: hangup, prompt: {text: "You gave {score}"}}
"""


def test_survey_stores_the_answer_and_never_escalates() -> None:
    interp = ivr.build_interpreter(compile_ok(SURVEY), "c", "")
    out = finish(interp, interp.start(0), 1)
    out = interp.handle(it.DigitPressed(digit="4"), 2)
    assert of(out, it.SurveyAnswered) == [
        it.SurveyAnswered(call_id="c", node="rate", question="satisfaction", score=4)
    ]
    assert plays(out)[0].prompt.text == "You gave 4" and interp.survey == {"satisfaction": 4}
    interp = ivr.build_interpreter(compile_ok(SURVEY), "c", "")
    out = finish(interp, interp.start(0), 1)
    for t in (2, 4, 6):
        out = interp.handle(it.DigitPressed(digit="9"), t)
        if t < 6:
            out = finish(interp, out, t + 1)
    assert interp.path == ["rate", "bye"] and not of(out, it.IvrEscalated) and not interp.survey


QUEUE = """
start: q
nodes:
  q:
    type: queue
    queue: support
    skills: [support]
    announce: {text: "Please hold."}
    hold: music
    announce_every: 30
    position_prompt: {text: "You are number {queue.position}."}
    callback_after: 120
    callback_key: "1"
    callback_next: callback_bye
  callback_bye: {type: hangup, prompt: {text: "We will call you back."}}
"""


def test_queue_announces_position_every_n_seconds_and_offers_a_callback() -> None:
    clock = FakeClock()
    interp = ivr.build_interpreter(compile_ok(QUEUE, known_skills=["support"]), "c", "555")
    out = interp.start(clock.now)
    enqueue = of(out, it.Enqueue)[0]
    assert enqueue.skills == ("support",) and plays(out)[0].prompt.text == "Please hold."
    assert interp.next_deadline() == 30
    interp.handle(it.VariablesUpdated(values={"queue.position": 4, "queue.ewt": 60}), clock.advance(0.1))
    out = finish(interp, out, clock.advance(1))
    assert plays(out)[0].prompt.text == "You are number 4."  # on entry, once known
    out = finish(interp, out, clock.advance(2))
    assert plays(out)[0].prompt.id == "music"
    assert interp.handle(it.DigitPressed(digit="1"), clock.advance(1)) == []  # no offer made yet
    hold = plays(out)[0]
    # the wait becomes known to be long: the offer comes at once, cutting the hold music
    out = interp.handle(it.VariablesUpdated(values={"queue": {"position": 2, "ewt": 300}}), clock.now)
    assert out[0] == it.StopPrompt(token=hold.token)
    assert plays(out)[0].prompt.text == "To be called back instead of waiting, press 1."
    out = finish(interp, out, clock.advance(3))
    hold = plays(out)[0]
    assert hold.prompt.id == "music"
    out = interp.on_timer(30)
    assert out[0] == it.StopPrompt(token=hold.token)  # the hold music stops for the announcement
    assert plays(out)[0].prompt.text == "You are number 2."
    assert interp.next_deadline() == 60
    out = finish(interp, out, 31)
    assert plays(out)[0].prompt.text == "To be called back instead of waiting, press 1."  # reminded
    out = interp.handle(it.DigitPressed(digit="1"), 32)
    cb = of(out, it.RequestCallback)[0]
    assert (cb.queue, cb.number) == ("support", "555")
    assert plays(out)[0].prompt.text == "We will call you back."


def test_reloading_mid_call_keeps_the_version_the_call_started_with() -> None:
    old = compile_ok(SURVEY)
    new = compile_ok(SURVEY.replace("Rate us", "Please rate us"))
    interp = ivr.build_interpreter(old, "c", "")
    out = interp.start(0)
    assert old.version != new.version  # the adapter swaps its flow; this call keeps `old`
    out = interp.handle(it.DigitPressed(digit="7"), 1)
    assert plays(out)[0].prompt.text == "Rate us 1 to 5" and interp.flow is old
