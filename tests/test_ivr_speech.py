"""Speech input in the interpreter core (no recognizer: the adapter's results are fed by hand).

Covers when a node listens, barge-in, the result kinds, the no-dead-end ladder with spoken
no-matches, masking, and the DTMF-only degradation (no language in ``speech.languages``).
"""

from __future__ import annotations

import ivr
from ivr import interpreter as it

from .helpers import FakeClock

QUEUES = ["sales", "support", "operator"]
SPEECH_ON = {"speech": {"languages": ["ko"]}}

FLOW = """
flow: spoken
language: ko
start: menu
interrupts:
  - {phrases: [상담원], target: operator, reason: operator}
nodes:
  menu:
    type: menu
    prompt: {text: "say or press"}
    dtmf_prompt: {text: "press only"}
    options:
      "1": {next: account, label: accounts, phrases: [이]}
      "2": {next: topic, label: topics, phrases: [아니요]}
    escalate_to: operator
  account:
    type: collect
    prompt: {text: "account number"}
    speech: true
    var: account
    min_digits: 3
    max_digits: 8
    next: pin
    escalate_to: operator
  pin:
    type: speech
    prompt: {text: "say your secret word"}
    var: word
    secure: true
    grammar: {open: [오], close: [넷]}
    next: bye
    escalate_to: operator
  topic:
    type: speech
    prompt: {text: "what is it about"}
    var: topic
    interruptible: false
    next: bye
    escalate_to: operator
    dtmf_fallback: menu2
  menu2:
    type: menu
    prompt: {text: "press 1"}
    options: {"1": bye}
    escalate_to: operator
  bye: {type: hangup}
  operator: {type: queue, queue: operator}
"""


def compile_ok(text: str) -> ivr.Flow:
    flow, diags = ivr.compile_flow(text, "t.yaml", known_queues=QUEUES)
    assert flow is not None, [str(d) for d in diags]
    return flow


def of(outputs: list, kind: type) -> list:
    return [o for o in outputs if isinstance(o, kind)]


def match(listen: it.Listen, option: str, *, text: str, confidence: float = 0.9) -> it.SpeechRecognized:
    return it.SpeechRecognized(
        token=listen.token, status="match", option=option, text=text, confidence=confidence
    )


def start(variables: dict | None = None) -> tuple[ivr.CallInterpreter, list]:
    interp = ivr.CallInterpreter(compile_ok(FLOW), "c1", variables)
    return interp, interp.start(0.0)


def test_a_speech_menu_listens_during_an_interruptible_prompt() -> None:
    interp, out = start(SPEECH_ON)
    play, listen = of(out, it.PlayPrompt)[0], of(out, it.Listen)[0]
    assert play.prompt.text == "say or press" and play.interruptible
    assert listen.barge_in and listen.language == "ko" and not listen.digits
    # the flow's spoken interrupt phrases join the grammar, or a recognizer could never hear them
    assert listen.grammar == {"1": ("이",), "2": ("아니요",), it.INTERRUPT_OPTION: ("상담원",)}
    # barge-in: speech starts while the prompt plays -> the prompt stops, the timer gives way
    out = interp.handle(it.SpeechStarted(token=listen.token), 1.0)
    assert of(out, it.StopPrompt) == [it.StopPrompt(token=play.token)]
    assert interp.next_deadline() == 1.0 + it.MAX_UTTERANCE + it.SPEECH_RESULT_GRACE
    out = interp.handle(match(listen, "1", text="이", confidence=0.93), 2.0)
    (inp,) = of(out, ivr.IvrInput)
    assert (inp.mode, inp.input, inp.result, inp.confidence) == ("speech", "이", "match", 0.93)
    assert interp.node is not None and interp.node.name == "account"
    nxt = of(out, it.Listen)[-1]
    assert nxt.digits and nxt.grammar is None  # collect with speech: digit words


def test_without_speech_the_menu_plays_its_dtmf_prompt_and_never_listens() -> None:
    interp, out = start()  # no speech.languages: no model / overloaded
    assert of(out, it.PlayPrompt)[0].prompt.text == "press only"
    assert of(out, it.Listen) == []
    out = interp.handle(it.PromptFinished(token=of(out, it.PlayPrompt)[0].token), 3.0)
    assert of(out, it.Listen) == [] and interp.next_deadline() == 8.0
    # keys still work
    out = interp.handle(it.DigitPressed(digit="2"), 4.0)
    # the speech node degrades to its dtmf_fallback
    assert interp.node is not None and interp.node.name == "menu2"
    assert interp.inputs[-1] == {"node": "topic", "mode": "speech", "input": "", "result": "unavailable"}


def test_another_language_than_the_loaded_models_is_dtmf_only() -> None:
    _, out = start({"speech": {"languages": ["en"]}})
    assert of(out, it.Listen) == []


def test_a_key_stops_listening() -> None:
    interp, out = start(SPEECH_ON)
    listen = of(out, it.Listen)[0]
    out = interp.handle(it.DigitPressed(digit="1"), 1.0)
    assert it.StopListening(token=listen.token) in out
    # a late result for the stopped Listen is ignored
    late = interp.handle(match(listen, "2", text="아니요"), 1.1)
    assert late == [] and interp.node is not None and interp.node.name == "account"


def test_three_unintelligible_answers_reach_a_human_with_the_history() -> None:
    interp, out = start(SPEECH_ON)
    texts = []
    for attempt, heard in enumerate(["가", "나 다", ""], 1):
        listen = of(out, it.Listen)[-1]
        status = "no_match" if heard else "no_input"
        out = interp.handle(
            it.SpeechRecognized(token=listen.token, status=status, text=heard, confidence=0.4), attempt
        )
        texts.append(heard)
        if attempt < 3:
            assert of(out, it.PlayPrompt) and of(out, it.Listen)  # reprompt, listening again
    (esc,) = of(out, ivr.IvrEscalated)
    assert [h["input"] for h in esc.history] == texts
    assert [h["mode"] for h in esc.history] == ["speech"] * 3
    assert [h["result"] for h in esc.history] == ["no_match", "no_match", "no_input"]
    (enq,) = of(out, it.Enqueue)
    assert enq.queue == "operator" and enq.data["escalation"]["history"][0]["input"] == "가"
    # the second reprompt said the choices from the labels
    assert interp.phase is it.Phase.QUEUED


def test_spoken_digits_fill_a_collect_and_are_validated() -> None:
    interp, out = start(SPEECH_ON)
    out = interp.handle(it.DigitPressed(digit="1"), 1.0)
    listen = of(out, it.Listen)[-1]
    out = interp.handle(match(listen, "12", text="일 이"), 2.0)
    assert of(out, ivr.IvrInput)[0].result == "no_match"  # too short: min_digits 3
    listen = of(out, it.Listen)[-1]
    out = interp.handle(match(listen, "1234", text="일 이 삼 사"), 3.0)
    assert interp.variables["account"] == "1234"
    assert of(out, ivr.IvrInput)[0].mode == "speech"


def test_a_secure_speech_node_masks_what_was_said_and_pauses_the_recording() -> None:
    interp, out = start(SPEECH_ON)
    interp.handle(it.DigitPressed(digit="1"), 1.0)
    out = interp.handle(it.DigitPressed(digit="1"), 1.1)
    out += interp.handle(it.DigitPressed(digit="2"), 1.2)
    out += interp.handle(it.DigitPressed(digit="3"), 1.3)
    out += interp.handle(it.DigitPressed(digit="#"), 1.4)
    assert of(out, it.PauseRecording)
    listen = of(out, it.Listen)[-1]
    assert listen.secure and listen.grammar == {"open": ("오",), "close": ("넷",)}
    out = interp.handle(match(listen, "open", text="오"), 2.0)
    (inp,) = of(out, ivr.IvrInput)
    assert inp.input == "****" and inp.masked
    assert interp.variables["word"] == "****" and interp.secrets["word"] == "open"
    assert "오" not in repr(out) and "오" not in repr(interp.inputs)
    assert of(out, it.ResumeRecording)


def test_a_keyword_interrupt_can_be_spoken() -> None:
    interp, out = start(SPEECH_ON)
    listen = of(out, it.Listen)[0]
    out = interp.handle(match(listen, it.INTERRUPT_OPTION, text="상담원"), 1.0)
    (hit,) = of(out, ivr.IvrInterrupted)
    assert hit.to == "operator" and interp.phase is it.Phase.QUEUED


def test_a_non_interruptible_speech_node_listens_only_after_its_prompt() -> None:
    interp, out = start(SPEECH_ON)
    listen = of(out, it.Listen)[0]
    out = interp.handle(match(listen, "2", text="아니요"), 1.0)
    assert of(out, it.Listen) == []  # `topic` is not interruptible
    play = of(out, it.PlayPrompt)[-1]
    assert not play.interruptible
    out = interp.handle(it.PromptFinished(token=play.token), 4.0)
    (listen,) = of(out, it.Listen)
    assert listen.grammar is None and not listen.barge_in  # free transcription
    out = interp.handle(
        it.SpeechRecognized(token=listen.token, status="transcript", text="카드 분실", confidence=0.8), 5.0
    )
    assert interp.variables["topic"] == "카드 분실"


def test_every_listen_has_a_deadline_even_if_the_recognizer_never_answers() -> None:
    clock = FakeClock()
    interp, out = start(SPEECH_ON)
    listen = of(out, it.Listen)[0]
    interp.handle(it.SpeechStarted(token=listen.token), clock.now)
    deadline = interp.next_deadline()
    assert deadline is not None
    clock.advance(deadline - clock.now)
    out = interp.on_timer(clock.now)
    (inp,) = of(out, ivr.IvrInput)
    assert (inp.mode, inp.result) == ("speech", "no_input")
    assert of(out, it.Listen)  # the reprompt listens again


def test_an_unavailable_recognizer_leaves_keys_and_the_timer() -> None:
    interp, out = start(SPEECH_ON)
    play, listen = of(out, it.PlayPrompt)[0], of(out, it.Listen)[0]
    out = interp.handle(it.SpeechRecognized(token=listen.token, status="unavailable", text=""), 0.5)
    assert out == []
    out = interp.handle(it.PromptFinished(token=play.token), 2.0)
    assert interp.next_deadline() == 7.0 and of(out, it.Listen) == []  # no second try this turn
