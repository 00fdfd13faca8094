"""Property tests: random valid flows (from a grammar) never crash the interpreter under
random events, never leak secure digits, and random YAML never crashes the validator."""

from __future__ import annotations

import datetime as dt
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ivr
from ivr import interpreter as it

QUEUES = ["sales", "support", "operator"]
SECRET = "9876543210"
KINDS = [
    "play",
    "menu",
    "collect",
    "set",
    "branch",
    "schedule",
    "lookup",
    "language",
    "survey",
    "queue",
    "transfer",
    "voicemail",
    "hangup",
    "goto",
]
NON_WAITING = {"set", "branch", "schedule", "goto"}


@st.composite
def flows(draw: st.DrawFn) -> str:
    """A flow of n nodes; node i always reaches i+1, and back edges only leave waiting nodes."""
    n = draw(st.integers(2, 9))
    kinds = [draw(st.sampled_from([*KINDS[:10], "goto"])) for _ in range(n - 1)]
    kinds.append(draw(st.sampled_from(["hangup", "transfer", "voicemail", "queue"])))
    names = [f"n{i}" for i in range(n)]

    def anywhere(i: int) -> str:
        lo = i + 1 if kinds[i] in NON_WAITING else 0
        return names[draw(st.integers(lo, n - 1))]

    nodes: dict[str, Any] = {}
    for i, kind in enumerate(kinds):
        nxt = names[min(i + 1, n - 1)]
        p = {"text": draw(st.sampled_from(["hi", "number {queue.position}", "v {v}", "{caller.number}"]))}
        node: dict[str, Any] = {"type": kind}
        if kind == "play":
            node |= {"prompt": p, "next": nxt, "interruptible": draw(st.booleans())}
        elif kind == "menu":
            node |= {
                "prompt": p,
                "options": {"1": nxt, "2": anywhere(i)},
                "escalate_to": anywhere(i),
                "timeout": 2,
            }
        elif kind == "collect":
            node |= {
                "prompt": p,
                "var": "v",
                "next": nxt,
                "escalate_to": anywhere(i),
                "max_digits": 4,
                "secure": draw(st.booleans()),
                "validator": draw(st.sampled_from(["luhn", "mmyy"])),
            }
        elif kind == "set":
            node |= {"assign": {"v": draw(st.sampled_from(["1", "v", "caller.number", "'x'"]))}, "next": nxt}
        elif kind == "branch":
            node |= {"cases": [{"if": "v == '1' or queue.position > 2", "next": anywhere(i)}], "default": nxt}
        elif kind == "schedule":
            node |= {
                "hours": {"mon-fri": "09:00-17:00"},
                "holidays": ["2025-12-25"],
                "open": nxt,
                "closed": anywhere(i),
                "emergency": anywhere(i),
            }
        elif kind == "lookup":
            node |= {
                "url": "https://x/{v}",
                "json": {"a": "v"},
                "result": {"v": "a.b"},
                "timeout": 1,
                "next": nxt,
                "fallback": anywhere(i),
            }
        elif kind == "language":
            node |= {"prompt": p, "options": {"1": "en", "2": "zh"}, "next": nxt, "escalate_to": anywhere(i)}
        elif kind == "survey":
            node |= {"prompt": p, "next": nxt, "var": "v"}
        elif kind == "queue":
            node |= {
                "queue": draw(st.sampled_from(QUEUES)),
                "hold": "music",
                "announce_every": 10,
                "callback_after": 5,
                "callback_next": nxt if i < n - 1 else names[0],
            }
        elif kind == "transfer":
            node |= {"to": "sip:desk@example.org"}
        elif kind == "voicemail":
            node |= {"max_seconds": 5}
        elif kind == "goto":
            node |= {"next": nxt}
        nodes[names[i]] = node
    top: dict[str, Any] = {"start": "n0", "variables": {"v": "0"}, "nodes": nodes}
    if draw(st.booleans()):
        top["interrupts"] = [{"keys": ["0"], "phrases": ["agent"], "target": names[-1], "reason": "operator"}]
    return yaml.safe_dump(top, allow_unicode=True)


EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("finish"), st.integers(0, 3)),
        st.tuples(st.just("digit"), st.sampled_from(list("0123456789*#"))),
        st.tuples(st.just("secret"), st.just(SECRET)),
        st.tuples(st.just("timer"), st.floats(0, 20)),
        st.tuples(
            st.just("lookup_ok"), st.dictionaries(st.sampled_from("ab"), st.integers() | st.text(max_size=3))
        ),
        st.tuples(st.just("lookup_failed"), st.just("timeout")),
        st.tuples(
            st.just("vars"),
            st.fixed_dictionaries({"queue.position": st.integers(0, 9), "queue.ewt": st.integers(0, 600)}),
        ),
        st.tuples(st.just("speech"), st.sampled_from(["agent please", "sales", "hmm"])),
        st.tuples(st.just("agent"), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows(), EVENTS, st.booleans())
def test_random_valid_flows_never_crash_and_never_leak_secure_digits(
    source: str, events: list, wall: bool
) -> None:
    flow, diags = ivr.compile_flow(source, "p.yaml", known_queues=QUEUES)
    assert flow is not None, [str(d) for d in diags]
    interp = ivr.build_interpreter(flow, "c", "555", wall=dt.datetime(2025, 12, 22, 10) if wall else None)
    now = 0.0
    outputs: list[Any] = interp.start(now)
    last_lookup = 0
    for kind, arg in events:
        now += 0.5
        if kind == "finish":
            played = [o.token for o in outputs if isinstance(o, it.PlayPrompt)]
            token = played[-1 - arg] if arg < len(played) else 0
            outputs += interp.handle(it.PromptFinished(token=token), now)
        elif kind == "digit":
            outputs += interp.handle(it.DigitPressed(digit=arg), now)
        elif kind == "secret":
            for d in arg:
                outputs += interp.handle(it.DigitPressed(digit=d), now)
        elif kind == "timer":
            deadline = interp.next_deadline()
            now = max(now, deadline if deadline is not None else now + arg)
            outputs += interp.on_timer(now)
        elif kind == "lookup_ok":
            outputs += interp.handle(
                it.LookupResult(request_id=last_lookup, status=200, body={"a": arg}), now
            )
        elif kind == "lookup_failed":
            outputs += interp.handle(it.LookupFailed(request_id=last_lookup, reason=arg), now)
        elif kind == "vars":
            outputs += interp.handle(it.VariablesUpdated(values=arg), now)
        elif kind == "speech":
            outputs += interp.handle(it.SpeechRecognized(text=arg), now)
        else:
            outputs += interp.handle(it.AgentConnected(), now)
        lookups = [o.request_id for o in outputs if isinstance(o, it.HttpLookup)]
        last_lookup = lookups[-1] if lookups else 0
        deadline = interp.next_deadline()
        assert deadline is None or deadline >= now - 20
    # invariants: the recording is never left paused, and no secure digits escaped
    pauses = sum(isinstance(o, it.PauseRecording) for o in outputs)
    resumes = sum(isinstance(o, it.ResumeRecording) for o in outputs)
    assert resumes in (pauses, pauses - 1)
    if interp.phase is ivr.Phase.DONE:
        assert resumes == pauses
    secure_vars = {n.var for n in flow.nodes.values() if getattr(n, "secure", False)}
    if secure_vars and any(getattr(n, "secure", False) for n in flow.nodes.values()):
        published = [o for o in outputs if not isinstance(o, it.HttpLookup)]
        for o in published:
            if isinstance(o, it.IvrInput) and o.masked:
                assert o.input == "****"
        for key, value in interp.secrets.items():
            assert value not in repr([o for o in published if not isinstance(o, it.PlayPrompt)])
            # masked; a later set/survey node may reuse the variable, but never with the digits
            assert interp.variables[key] == "****" or str(interp.variables[key]) != value


YAMLISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 30)
    | st.sampled_from(
        [
            "play",
            "menu",
            "collect",
            "set",
            "branch",
            "schedule",
            "lookup",
            "queue",
            "hangup",
            "speech",
            "goto",
            "a",
            "b",
            "x == 1",
            "{v}",
            "09:00-17:00",
            "mon-fri",
            "sip:x@y",
            "https://x",
            "luhn",
            "[",
            "a and",
            "#",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "start",
                    "nodes",
                    "type",
                    "next",
                    "prompt",
                    "text",
                    "options",
                    "escalate_to",
                    "var",
                    "assign",
                    "cases",
                    "if",
                    "default",
                    "hours",
                    "open",
                    "closed",
                    "url",
                    "fallback",
                    "a",
                    "b",
                    "1",
                    "queue",
                    "interrupts",
                    "keys",
                    "target",
                    "variables",
                    "json",
                    "result",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(YAMLISH)
def test_random_yaml_never_crashes_the_validator(data: Any) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    flow, diags = ivr.compile_flow(
        text, "r.yaml", known_queues=QUEUES, known_skills=[], known_flows=[], known_prompts=[]
    )
    assert (flow is None) == any(d.severity == "error" for d in diags)
    for d in diags:
        assert d.code.startswith("flow.") and d.loc.line >= 1 and d.hint
