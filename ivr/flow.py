"""The flow language: YAML in, a compiled, validated :class:`Flow` out.

Every diagnostic carries ``file:line:col``, a stable code and a hint, because a
flow designer reads them, not a programmer. Errors stop a flow from loading;
warnings (``severity="warning"``) do not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from . import expr as ex
from .errors import Diagnostic, FlowInvalid, Location

MAX_FAILURES = 3  # the no-dead-end ladder: re-prompt, re-prompt with choices, human
MAX_YAML_NESTING = 64  # [ ] and { } inside one another; PyYAML's scanner is quadratic in it

# Variables every call has without a `set`: the adapter fills them (see docs/flows.md).
BUILTIN_VARIABLES = frozenset({"caller", "call", "queue", "language", "emergency", "lookup"})
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def luhn(digits: str) -> bool:
    """The Luhn (mod 10) check used by card numbers."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _mmyy(digits: str) -> bool:
    return len(digits) == 4 and digits.isdigit() and 1 <= int(digits[:2]) <= 12


def _not_all_same(digits: str) -> bool:
    return len(set(digits)) > 1


# Named validators for `collect` (`validator: luhn`). Pure functions of the digits.
VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": luhn,
    "mmyy": _mmyy,
    "not_all_same": _not_all_same,
}


MIN_RATE, MAX_RATE = 60, 400  # TTS words per minute a prompt (or a call's `tts_rate`) may ask for


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str | None  # WAV file name (without .wav) looked up in the prompt directories
    text: str | None  # what the TTS fallback says when no WAV exists; may hold {expressions}
    texts: tuple[tuple[str, str], ...] = ()  # (language, text) when the text differs per language
    rate: int = 0  # TTS words per minute for this prompt; 0 = the call's `tts_rate`, else [prompts] tts_rate

    def text_for(self, language: str) -> str | None:
        for lang, text in self.texts:
            if lang == language:
                return text
        return self.text


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    name: str
    loc: Location
    waits: ClassVar[bool] = True  # False: the node passes straight on without waiting for anything

    def edges(self) -> list[tuple[str, str, Location]]:
        """(label, target node, where the target is written), for exits and diagrams."""
        return []

    def exits(self) -> Iterator[tuple[str, Location]]:
        """Target node names, each with where it is written."""
        for _, target, loc in self.edges():
            yield target, loc


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayNode(Node):
    prompt: Prompt
    next: str
    next_loc: Location
    interruptible: bool = False  # a keypress cuts the prompt short

    def edges(self) -> list[tuple[str, str, Location]]:
        return [("", self.next, self.next_loc)]


@dataclass(frozen=True, slots=True, kw_only=True)
class MenuOption:
    next: str
    label: str | None  # spoken when the menu offers its choices explicitly
    loc: Location
    phrases: tuple[str, ...] = ()  # spoken words that choose this option (speech input)


@dataclass(frozen=True, slots=True, kw_only=True)
class MenuNode(Node):
    prompt: Prompt
    reprompt: Prompt | None  # clarifying prompt after the first failure
    timeout: float  # seconds to wait for a key after the prompt ends
    options: dict[str, MenuOption]  # DTMF key -> option
    escalate_to: str  # where the third failure goes: a human
    escalate_loc: Location
    interruptible: bool = True
    dtmf_prompt: Prompt | None = None  # said instead of `prompt` when speech input is off

    @property
    def speech(self) -> bool:
        """Spoken input is taken when at least one option has phrases."""
        return any(o.phrases for o in self.options.values())

    def edges(self) -> list[tuple[str, str, Location]]:
        out = [(key, o.next, o.loc) for key, o in self.options.items()]
        return [*out, ("escalate", self.escalate_to, self.escalate_loc)]


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectNode(Node):
    prompt: Prompt
    var: str  # the variable the digits are stored in
    next: str
    next_loc: Location
    escalate_to: str  # third no-input or invalid entry
    escalate_loc: Location
    reprompt: Prompt | None = None  # after the first failure
    help: Prompt | None = None  # after the second failure (default: says the expected length)
    min_digits: int = 1
    max_digits: int = 16
    terminator: str = "#"  # "" for none; the key ends entry early and is not stored
    first_timeout: float = 5.0  # seconds from the end of the prompt to the first key
    inter_timeout: float = 3.0  # seconds between keys; ends entry when digits are in
    regex: str | None = None  # the digits must match it entirely
    validator: str | None = None  # a name in VALIDATORS
    secure: bool = False  # mask the digits everywhere and pause the call recording
    interruptible: bool = True
    interrupts: bool = True  # flow-level interrupt keys count as the first key
    speech: bool = False  # the digits may also be spoken, one digit word at a time
    dtmf_prompt: Prompt | None = None  # said instead of `prompt` when speech input is off

    def edges(self) -> list[tuple[str, str, Location]]:
        return [("ok", self.next, self.next_loc), ("escalate", self.escalate_to, self.escalate_loc)]


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechNode(Node):
    """Spoken input only: a grammar (value -> phrases) or, without one, free transcription."""

    prompt: Prompt
    var: str  # the matched value (or the transcript) is stored here
    next: str
    next_loc: Location
    escalate_to: str  # third no-match or no-input: a human
    escalate_loc: Location
    grammar: dict[str, tuple[str, ...]] | None = None  # value -> phrases; None = free transcription
    reprompt: Prompt | None = None
    timeout: float = 5.0  # seconds from the end of the prompt to the start of speech
    interruptible: bool = True  # speech (or a key) stops the prompt: barge-in
    secure: bool = False  # mask what was said everywhere and pause the call recording
    dtmf_fallback: str | None = None  # where to go when speech input is off (default: escalate_to)
    dtmf_fallback_loc: Location | None = None

    speech: ClassVar[bool] = True

    def edges(self) -> list[tuple[str, str, Location]]:
        out = [("ok", self.next, self.next_loc), ("escalate", self.escalate_to, self.escalate_loc)]
        if self.dtmf_fallback is not None and self.dtmf_fallback_loc is not None:
            out.append(("dtmf_fallback", self.dtmf_fallback, self.dtmf_fallback_loc))
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class SetNode(Node):
    waits: ClassVar[bool] = False
    assign: tuple[tuple[str, ex.Expr], ...]  # (variable, expression), in order
    next: str
    next_loc: Location

    def edges(self) -> list[tuple[str, str, Location]]:
        return [("", self.next, self.next_loc)]


@dataclass(frozen=True, slots=True, kw_only=True)
class BranchCase:
    condition: ex.Expr
    source: str  # the expression as written, for diagrams
    next: str
    loc: Location


@dataclass(frozen=True, slots=True, kw_only=True)
class BranchNode(Node):
    waits: ClassVar[bool] = False
    cases: tuple[BranchCase, ...]  # the first true condition wins
    default: str
    default_loc: Location

    def edges(self) -> list[tuple[str, str, Location]]:
        out = [(c.source, c.next, c.loc) for c in self.cases]
        return [*out, ("default", self.default, self.default_loc)]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleNode(Node):
    waits: ClassVar[bool] = False
    hours: tuple[tuple[tuple[int, int], ...], ...]  # per weekday (Monday first): (start, end) minutes
    holidays: frozenset[dt.date]
    switch: ex.Expr  # true = emergency closure (default: the `emergency` variable)
    targets: dict[str, tuple[str, Location]]  # "open", "closed", "holiday", "emergency" -> node

    def edges(self) -> list[tuple[str, str, Location]]:
        return [(k, t, loc) for k, (t, loc) in self.targets.items()]


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupNode(Node):
    method: str  # "GET" or "POST"
    url: str  # may hold {expressions}
    json: tuple[tuple[str, ex.Expr], ...]  # request body fields (POST)
    timeout: float  # seconds; the interpreter takes `fallback` after this
    result: tuple[tuple[str, tuple[str, ...]], ...]  # (variable, path in the response JSON)
    next: str
    next_loc: Location
    fallback: str
    fallback_loc: Location

    def edges(self) -> list[tuple[str, str, Location]]:
        return [("ok", self.next, self.next_loc), ("fallback", self.fallback, self.fallback_loc)]


@dataclass(frozen=True, slots=True, kw_only=True)
class SubflowNode(Node):
    flow: str  # the called flow's name
    flow_loc: Location
    next: str  # where the caller continues after the subflow's `return`
    next_loc: Location

    def edges(self) -> list[tuple[str, str, Location]]:
        return [("return", self.next, self.next_loc)]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReturnNode(Node):
    """Back to the node after the calling `subflow`; in a top-level flow, hang up."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LanguageNode(Node):
    prompt: Prompt
    reprompt: Prompt | None
    options: dict[str, str]  # DTMF key -> language code
    next: str
    next_loc: Location
    escalate_to: str
    escalate_loc: Location
    timeout: float = 5.0
    interruptible: bool = True

    def edges(self) -> list[tuple[str, str, Location]]:
        return [("", self.next, self.next_loc), ("escalate", self.escalate_to, self.escalate_loc)]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeNode(Node):
    """A caller who dropped a call recently (caller.returning) is offered to continue where
    they were: their last node, or their queue ahead of new callers. Others go to `next`."""

    prompt: Prompt
    key: str  # the key that accepts
    timeout: float  # seconds to wait for it after the prompt
    next: str
    next_loc: Location

    def edges(self) -> list[tuple[str, str, Location]]:
        return [("", self.next, self.next_loc)]


@dataclass(frozen=True, slots=True, kw_only=True)
class SurveyNode(Node):
    prompt: Prompt
    reprompt: Prompt | None
    question: str  # stored with the answer
    var: str | None  # also keep the score in this variable
    next: str
    next_loc: Location
    timeout: float = 5.0
    interruptible: bool = True

    def edges(self) -> list[tuple[str, str, Location]]:
        return [("", self.next, self.next_loc)]


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueNode(Node):
    queue: str
    queue_loc: Location
    priority: int  # higher is served first
    announce: Prompt | None  # played once on entry
    hold: Prompt | None  # played in a loop while waiting
    data: dict[str, str]  # screen-pop fields added to what the IVR learned; may hold {expressions}
    skills: tuple[str, ...] = ()  # extra skills the agent needs for this call
    skills_loc: Location | None = None
    announce_every: float = 0.0  # seconds between position announcements; 0 = never
    position_prompt: Prompt | None = None  # said on entry (once known) and every announce_every
    callback_after: float | None = None  # offer a callback when queue.ewt (seconds) is at least this
    callback_key: str = "1"
    callback_prompt: Prompt | None = None
    callback_next: str | None = None  # where an accepted callback goes (e.g. a goodbye)
    after_agent: str | None = None  # where the caller goes when the agent hangs up first (a survey)
    after_loc: Location | None = None
    callback_loc: Location | None = None

    def edges(self) -> list[tuple[str, str, Location]]:
        out = []
        if self.callback_next is not None and self.callback_loc is not None:
            out.append(("callback", self.callback_next, self.callback_loc))
        if self.after_agent is not None and self.after_loc is not None:
            out.append(("after agent", self.after_agent, self.after_loc))
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferNode(Node):
    to: str  # SIP URI, blind transfer


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicemailNode(Node):
    prompt: Prompt | None  # played before the beep
    max_seconds: float  # the message is cut off after this many seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class HangupNode(Node):
    prompt: Prompt | None  # said before hanging up


@dataclass(frozen=True, slots=True, kw_only=True)
class GotoNode(Node):
    waits: ClassVar[bool] = False
    next: str
    next_loc: Location

    def edges(self) -> list[tuple[str, str, Location]]:
        return [("", self.next, self.next_loc)]


INPUT_NODES = (MenuNode, CollectNode, LanguageNode, SurveyNode, SpeechNode)


@dataclass(frozen=True, slots=True, kw_only=True)
class Interrupt:
    """A flow-level keyword interrupt: at any input node these keys/phrases jump to `target`."""

    keys: tuple[str, ...]  # DTMF keys, e.g. ("0",)
    phrases: tuple[str, ...]  # spoken words, matched case-insensitively within the utterance
    target: str
    target_loc: Location
    reason: str  # attached to the jump, the event and the screen-pop


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    path: str
    version: str  # sha256 of the file's bytes, first 16 hex digits
    start: str
    language: str
    nodes: dict[str, Node] = field(repr=False)
    variables: Mapping[str, Any] = field(default_factory=dict, repr=False)  # declared, with defaults
    interrupts: tuple[Interrupt, ...] = ()
    warnings: tuple[Diagnostic, ...] = ()  # what compile_flow warned about

    def queues(self) -> set[str]:
        return {n.queue for n in self.nodes.values() if isinstance(n, QueueNode)}

    def subflows(self) -> set[str]:
        return {n.flow for n in self.nodes.values() if isinstance(n, SubflowNode)}


# ------------------------------------------------------------------- reading
class _Reader:
    """Walks PyYAML's node tree, so every value keeps its line and column."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.diagnostics: list[Diagnostic] = []
        self.language = "en"
        self.node_name = ""  # the node being compiled
        self.uses: dict[str, list[tuple[ex.Var, Location, bool]]] = {}  # node -> (var, where, in lookup)
        self.prompts: list[tuple[Prompt, Location]] = []
        self.targets: dict[str, list[tuple[str, Location]]] = {}  # node -> nodes it names as exits

    def goes_to(self, target: str, loc: Location) -> None:
        """Note an exit of the node being compiled (kept for nodes that fail to compile)."""
        self.targets.setdefault(self.node_name, []).append((target, loc))

    def loc(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.path, mark.line + 1, mark.column + 1)

    def error(self, node: yaml.Node | Location, code: str, message: str, hint: str) -> None:
        loc = node if isinstance(node, Location) else self.loc(node)
        self.diagnostics.append(Diagnostic(loc, code, message, hint))

    def warn(self, loc: Location, code: str, message: str, hint: str) -> None:
        self.diagnostics.append(Diagnostic(loc, code, message, hint, "warning"))

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """Key -> (key node, value node); reports duplicate and non-string keys."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, "flow.bad_value", f"{what} must be a mapping", "write it as `key: value` lines")
            return None
        result: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(
                    key_node, "flow.bad_value", f"a key in {what} is not a plain word", "use a plain key"
                )
                continue
            key = key_node.value
            if key in result:
                self.error(
                    key_node,
                    "flow.duplicate_key",
                    f"'{key}' appears twice in {what}",
                    "remove or rename one of them; YAML keeps only the last",
                )
                continue
            result[key] = (key_node, value_node)
        return result

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.error(
                node, "flow.bad_value", f"{what} must be a list", "write it as `[a, b]` or `- a` lines"
            )
            return None
        return list(node.value)

    def scalar(self, node: yaml.Node, what: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            self.error(
                node, "flow.bad_value", f"{what} must be a single value", "write one word or a quoted text"
            )
            return None
        return str(node.value)

    def words(self, node: yaml.Node, what: str) -> tuple[str, ...] | None:
        """A list of scalars, or one scalar."""
        if isinstance(node, yaml.ScalarNode):
            return (str(node.value),)
        items = self.sequence(node, what)
        if items is None:
            return None
        out = [self.scalar(i, f"an item of {what}") for i in items]
        return None if None in out else tuple(o for o in out if o is not None)

    def number(self, node: yaml.Node, what: str, *, minimum: float = 0.0) -> float | None:
        text = self.scalar(node, what)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            self.error(
                node, "flow.bad_value", f"{what} must be a number, not '{text}'", "for example `5` or `2.5`"
            )
            return None
        if math.isnan(value) or math.isinf(value):
            self.error(node, "flow.bad_value", f"{what} must be a finite number", "for example `5`")
            return None
        if value < minimum:
            self.error(
                node, "flow.bad_value", f"{what} must be at least {minimum:g}", f"use {minimum:g} or more"
            )
            return None
        return value

    def integer(self, node: yaml.Node, what: str, *, minimum: int = 0) -> int | None:
        value = self.number(node, what, minimum=minimum)
        if value is None:
            return None
        if value != int(value) or abs(value) > 10**6:
            self.error(node, "flow.bad_value", f"{what} must be a whole number", "for example `4`")
            return None
        return int(value)

    def boolean(self, node: yaml.Node, what: str) -> bool | None:
        text = self.scalar(node, what)
        if text is None:
            return None
        if text.lower() in ("true", "yes", "on"):
            return True
        if text.lower() in ("false", "no", "off"):
            return False
        self.error(node, "flow.bad_value", f"{what} must be true or false", "write `true` or `false`")
        return None

    def var_name(self, node: yaml.Node, what: str) -> str | None:
        text = self.scalar(node, what)
        if text is None:
            return None
        if not _NAME.match(text) or text in ex.KEYWORDS or text == "secret":
            self.error(
                node,
                "flow.bad_name",
                f"{what} '{text}' is not a variable name",
                "use letters, digits and _, starting with a letter (not a keyword)",
            )
            return None
        return text

    def _text_col(self, node: yaml.Node, col: int) -> Location:
        """Where column ``col`` of a scalar's text is in the file (exact for one-line scalars)."""
        base = self.loc(node)
        quoted = isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')
        return Location(self.path, base.line, base.col + (1 if quoted else 0) + col - 1)

    def expression(self, node: yaml.Node, what: str, *, in_lookup: bool = False) -> ex.Expr | None:
        text = self.scalar(node, what)
        if text is None:
            return None
        try:
            parsed = ex.parse(text)
        except ex.ExprError as exc:
            self.error(
                self._text_col(node, exc.col),
                "flow.bad_expression",
                f"{what}: {exc.message}",
                "expressions use paths, literals, == != < <= > >=, and/or/not, in",
            )
            return None
        for var in ex.variables(parsed):
            self._use(var, self._text_col(node, var.col), in_lookup)
        return parsed

    def _use(self, var: ex.Var, loc: Location, in_lookup: bool = False) -> None:
        self.uses.setdefault(self.node_name, []).append((var, loc, in_lookup))

    def template(self, node: yaml.Node, what: str) -> str | None:
        text = self.scalar(node, what)
        if text is None:
            return None
        try:
            parts = ex.parse_template(text)
        except ex.ExprError as exc:
            self.error(
                self._text_col(node, exc.col),
                "flow.bad_expression",
                f"{what}: {exc.message}",
                "interpolate with {variable.path}; write {{ and }} for braces",
            )
            return None
        for part in parts:
            if not isinstance(part, str):
                for var in ex.variables(part[0]):
                    self._use(var, self._text_col(node, part[1] + var.col - 1))
        return text

    def prompt(self, node: yaml.Node, what: str) -> Prompt | None:
        """A prompt is a WAV id (`prompt: welcome`) or `{id: ..., text: ...}` or `{text: ...}`.

        `text` may be a mapping of language -> text.
        """
        if isinstance(node, yaml.ScalarNode):
            found = Prompt(id=node.value, text=None)
            self.prompts.append((found, self.loc(node)))
            return found
        fields = self.mapping(node, what)
        if fields is None:
            return None
        unknown = set(fields) - {"id", "text", "rate"}
        for key in sorted(unknown):
            self.error(
                fields[key][0],
                "flow.unknown_field",
                f"{what} has no field '{key}'",
                "a prompt has `id`, `text` and `rate`",
            )
        rate = 0
        if "rate" in fields:
            rnode = fields["rate"][1]
            raw = rnode.value if isinstance(rnode, yaml.ScalarNode) else None
            if raw is None or not str(raw).isdigit() or not MIN_RATE <= int(raw) <= MAX_RATE:
                self.error(
                    rnode,
                    "flow.bad_value",
                    f"{what} rate must be words per minute from {MIN_RATE} to {MAX_RATE}",
                    "e.g. rate: 120 for a slow, clear voice ([prompts] tts_rate is the default)",
                )
            else:
                rate = int(raw)
        pid = self.scalar(fields["id"][1], f"{what} id") if "id" in fields else None
        text: str | None = None
        texts: list[tuple[str, str]] = []
        if "text" in fields:
            value = fields["text"][1]
            if isinstance(value, yaml.MappingNode):
                per = self.mapping(value, f"{what} text") or {}
                for lang, (_, tnode) in per.items():
                    t = self.template(tnode, f"{what} text ({lang})")
                    if t is not None:
                        texts.append((lang, t))
                lookup = dict(texts)
                text = lookup.get(self.language) or (texts[0][1] if texts else None)
            else:
                text = self.template(value, f"{what} text")
        if pid is None and text is None:
            self.error(
                node,
                "flow.empty_prompt",
                f"{what} has neither `id` nor `text`",
                "give a WAV id, a text, or both",
            )
            return None
        found = Prompt(id=pid, text=text, texts=tuple(texts), rate=rate)
        self.prompts.append((found, self.loc(node)))
        return found


_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # type: (required fields, optional fields); `type` itself is implied
    "play": ({"prompt", "next"}, {"interruptible"}),
    "menu": ({"prompt", "options", "escalate_to"}, {"reprompt", "timeout", "interruptible", "dtmf_prompt"}),
    "collect": (
        {"prompt", "var", "next", "escalate_to"},
        {
            "reprompt",
            "help",
            "min_digits",
            "max_digits",
            "terminator",
            "first_timeout",
            "inter_timeout",
            "regex",
            "validator",
            "secure",
            "interruptible",
            "interrupts",
            "speech",
            "dtmf_prompt",
        },
    ),
    "speech": (
        {"prompt", "var", "next", "escalate_to"},
        {"grammar", "reprompt", "timeout", "interruptible", "secure", "dtmf_fallback"},
    ),
    "set": ({"assign", "next"}, set()),
    "branch": ({"cases", "default"}, set()),
    "schedule": ({"hours", "open", "closed"}, {"holidays", "holiday", "emergency", "switch"}),
    "lookup": ({"url", "next", "fallback"}, {"method", "json", "timeout", "result"}),
    "subflow": ({"flow", "next"}, set()),
    "return": (set(), set()),
    "language": ({"prompt", "options", "next", "escalate_to"}, {"reprompt", "timeout", "interruptible"}),
    "survey": ({"prompt", "next"}, {"question", "var", "reprompt", "timeout", "interruptible"}),
    "resume": ({"prompt", "next"}, {"key", "timeout"}),
    "queue": (
        {"queue"},
        {
            "priority",
            "announce",
            "hold",
            "data",
            "skills",
            "announce_every",
            "position_prompt",
            "callback_after",
            "callback_key",
            "callback_prompt",
            "callback_next",
            "after_agent",
        },
    ),
    "transfer": ({"to"}, set()),
    "voicemail": (set(), {"prompt", "max_seconds"}),
    "hangup": (set(), {"prompt"}),
    "goto": ({"next"}, set()),
}
NODE_TYPES = tuple(_FIELDS)
TOP_LEVEL = ("flow", "description", "language", "start", "variables", "interrupts", "entry_points", "nodes")

DEFAULT_POSITION_PROMPT = Prompt(
    id=None,
    text="You are number {queue.position} in line. The wait is about {queue.ewt_minutes} minutes.",
)
DEFAULT_CALLBACK_PROMPT = Prompt(
    id=None, text="To be called back instead of waiting, press {queue.callback_key}."
)


def _closest(word: str, choices: Collection[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, list(choices), n=1)
    return found[0] if found else None


def _hours(r: _Reader, node: yaml.Node, name: str) -> tuple[tuple[tuple[int, int], ...], ...] | None:
    """`hours: {mon-fri: "09:00-17:00", sat: ["10:00-12:00"], sun: closed}` -> per weekday ranges."""
    fields = r.mapping(node, f"`hours` of '{name}'")
    if fields is None:
        return None
    days: list[list[tuple[int, int]]] = [[] for _ in WEEKDAYS]
    ok = True
    for key, (key_node, value) in fields.items():
        lo, _, hi = key.partition("-")
        if lo not in WEEKDAYS or (hi and hi not in WEEKDAYS):
            r.error(
                key_node,
                "flow.bad_hours",
                f"'{key}' is not a weekday or a range of weekdays",
                "use mon, tue, wed, thu, fri, sat, sun or a range like mon-fri",
            )
            ok = False
            continue
        a, b = WEEKDAYS.index(lo), WEEKDAYS.index(hi or lo)
        span = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
        items = r.words(value, f"hours for {key}")
        if items is None:
            ok = False
            continue
        for item in items:
            if item.lower() == "closed":
                continue
            m = re.fullmatch(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})", item.strip())
            start = end = -1
            if m:
                h1, m1, h2, m2 = map(int, m.groups())
                start, end = h1 * 60 + m1, h2 * 60 + m2
            if not m or m1 > 59 or m2 > 59 or not 0 <= start < end <= 24 * 60:
                r.error(
                    value,
                    "flow.bad_hours",
                    f"'{item}' is not an opening time range",
                    'write "HH:MM-HH:MM" (start before end, up to 24:00) or closed',
                )
                ok = False
                continue
            for day in span:
                days[day].append((start, end))
    return tuple(tuple(sorted(d)) for d in days) if ok else None


def _holidays(r: _Reader, node: yaml.Node, name: str) -> frozenset[dt.date] | None:
    items = r.sequence(node, f"`holidays` of '{name}'")
    if items is None:
        return None
    out: set[dt.date] = set()
    for item in items:
        text = r.scalar(item, "a holiday")
        if text is None:
            return None
        try:
            out.add(dt.date.fromisoformat(text.strip()))
        except ValueError:
            r.error(item, "flow.bad_date", f"'{text}' is not a date", "write dates as YYYY-MM-DD")
            return None
    return frozenset(out)


@dataclass(slots=True)
class _NodeCtx:
    """What a node compiler needs: the reader, the node's name and fields, and helpers that
    read a field (or give its default when absent) and report into the reader."""

    r: _Reader
    name: str
    kind: str
    key_node: yaml.Node  # the node's name in the file, for errors about the node as a whole
    loc: Location
    fields: dict[str, tuple[yaml.Node, yaml.Node]]  # field -> (key node, value node); unknown ones left out
    errors_before: int  # len(r.diagnostics) when this node's value checks began

    def has(self, key: str) -> bool:
        return key in self.fields

    def value(self, key: str) -> yaml.Node:
        return self.fields[key][1]

    def get(self, key: str, read: Callable[[yaml.Node, str], Any], default: Any = None) -> Any:
        return read(self.fields[key][1], f"`{key}` of '{self.name}'") if key in self.fields else default

    def target(self, key: str) -> tuple[str, Location] | None:
        text = self.get(key, self.r.scalar)
        if text is None:
            return None
        loc = self.r.loc(self.fields[key][1])
        self.r.goes_to(text, loc)
        return text, loc

    def failed(self) -> bool:
        return any(d.severity == "error" for d in self.r.diagnostics[self.errors_before :])


def _compile_node(r: _Reader, name: str, key_node: yaml.Node, value: yaml.Node) -> Node | None:
    """Check what every node has (a name, a known `type`, its required fields and no unknown
    ones), then hand the node to its type's compiler from ``_COMPILERS``. The compiler runs
    even when fields are missing or unknown, so one run reports every mistake in the node."""
    r.node_name = name
    fields = r.mapping(value, f"node '{name}'")
    if fields is None:
        return None
    loc = r.loc(key_node)
    if not _NAME.match(name):
        r.error(
            key_node,
            "flow.bad_name",
            f"node name '{name}' is not a plain name",
            "use letters, digits and _, starting with a letter",
        )
        return None
    if "type" not in fields:
        r.error(
            key_node,
            "flow.missing_field",
            f"node '{name}' has no `type`",
            f"add `type:` (one of {', '.join(_FIELDS)})",
        )
        return None
    kind = r.scalar(fields["type"][1], "type")
    if kind not in _FIELDS:
        guess = _closest(kind or "", _FIELDS)
        r.error(
            fields["type"][1],
            "flow.unknown_node_type",
            f"node '{name}' has unknown type '{kind}'",
            f"did you mean '{guess}'?" if guess else f"use one of {', '.join(_FIELDS)}",
        )
        return None
    required, optional = _FIELDS[kind]
    ok = True
    for missing in sorted(required - set(fields)):
        r.error(
            key_node,
            "flow.missing_field",
            f"{kind} node '{name}' needs `{missing}`",
            f"add `{missing}:` to '{name}'",
        )
        ok = False
    for extra in sorted(set(fields) - required - optional - {"type"}):
        guess = _closest(extra, required | optional)
        r.error(
            fields[extra][0],
            "flow.unknown_field",
            f"{kind} node '{name}' has no field '{extra}'",
            f"did you mean '{guess}'?" if guess else f"{kind} takes {', '.join(sorted(required | optional))}",
        )
        ok = False
    known = {k: v for k, v in fields.items() if k in required or k in optional}
    c = _NodeCtx(r, name, kind, key_node, loc, known, len(r.diagnostics))
    node = _COMPILERS[kind](c)
    return node if ok else None


def _compile_play(c: _NodeCtx) -> Node | None:
    r = c.r
    prompt, nxt = c.get("prompt", r.prompt), c.target("next")
    interruptible = c.get("interruptible", r.boolean, False)
    if prompt is None or nxt is None or interruptible is None:
        return None
    return PlayNode(
        name=c.name, loc=c.loc, prompt=prompt, next=nxt[0], next_loc=nxt[1], interruptible=interruptible
    )


def _compile_menu(c: _NodeCtx) -> Node | None:
    r = c.r
    prompt = c.get("prompt", r.prompt)
    reprompt = c.get("reprompt", r.prompt)
    timeout = c.get("timeout", r.number, 5.0)
    esc = c.target("escalate_to")
    interruptible = c.get("interruptible", r.boolean, True)
    options = c.get("options", lambda n, _w: _menu_options(r, c.name, n))
    dtmf_prompt = c.get("dtmf_prompt", r.prompt)
    if None in (prompt, timeout, esc, interruptible, options):
        return None
    assert esc is not None and options is not None
    return MenuNode(
        name=c.name,
        loc=c.loc,
        prompt=prompt,
        reprompt=reprompt,
        timeout=timeout,
        options=options,
        escalate_to=esc[0],
        escalate_loc=esc[1],
        interruptible=interruptible,
        dtmf_prompt=dtmf_prompt,
    )


def _compile_speech(c: _NodeCtx) -> Node | None:
    r = c.r
    prompt, nxt, esc = c.get("prompt", r.prompt), c.target("next"), c.target("escalate_to")
    var = c.get("var", r.var_name)
    grammar = c.get("grammar", lambda n, _w: _grammar(r, c.name, n))
    fallback = c.target("dtmf_fallback")
    reprompt = c.get("reprompt", r.prompt)
    values = dict(
        timeout=c.get("timeout", r.number, 5.0),
        interruptible=c.get("interruptible", r.boolean, True),
        secure=c.get("secure", r.boolean, False),
    )
    if c.failed() or None in (prompt, nxt, esc, var, *values.values()):
        return None
    if c.has("grammar") and grammar is None:
        return None
    assert nxt is not None and esc is not None
    return SpeechNode(
        name=c.name,
        loc=c.loc,
        prompt=prompt,
        var=var,
        next=nxt[0],
        next_loc=nxt[1],
        escalate_to=esc[0],
        escalate_loc=esc[1],
        grammar=grammar,
        reprompt=reprompt,
        dtmf_fallback=fallback[0] if fallback else None,
        dtmf_fallback_loc=fallback[1] if fallback else None,
        **values,
    )


def _compile_collect(c: _NodeCtx) -> Node | None:
    r, name = c.r, c.name
    prompt, nxt, esc = c.get("prompt", r.prompt), c.target("next"), c.target("escalate_to")
    var = c.get("var", r.var_name)
    min_d = c.get("min_digits", r.integer, 1)
    max_d = c.get("max_digits", r.integer, 16)
    terminator = c.get("terminator", r.scalar, "#")
    if terminator is not None and terminator not in ("", *_KEYS):
        r.error(c.value("terminator"), "flow.bad_key", f"'{terminator}' is not a phone key", "use # or *")
    regex = c.get("regex", r.scalar)
    if regex is not None:
        try:
            re.compile(regex)
        except (re.error, RecursionError, OverflowError) as exc:
            r.error(
                c.value("regex"),
                "flow.bad_regex",
                f"`regex` of '{name}' does not compile: {exc}",
                r"for example ^\d{8}$",
            )
    validator = c.get("validator", r.scalar)
    if validator is not None and validator not in VALIDATORS:
        guess = _closest(validator, VALIDATORS)
        r.error(
            c.value("validator"),
            "flow.unknown_validator",
            f"there is no validator '{validator}'",
            f"did you mean '{guess}'?" if guess else f"use one of {', '.join(VALIDATORS)}",
        )
    if min_d is not None and max_d is not None and (min_d < 1 or max_d < min_d):
        r.error(
            c.fields.get("max_digits", c.fields.get("min_digits", (c.key_node, c.key_node)))[1],
            "flow.bad_value",
            f"'{name}' needs 1 <= min_digits <= max_digits (got {min_d} and {max_d})",
            "set min_digits to at least 1 and max_digits to at least min_digits",
        )
    reprompt, help_ = c.get("reprompt", r.prompt), c.get("help", r.prompt)
    values = dict(
        first_timeout=c.get("first_timeout", r.number, 5.0),
        inter_timeout=c.get("inter_timeout", r.number, 3.0),
        secure=c.get("secure", r.boolean, False),
        interruptible=c.get("interruptible", r.boolean, True),
        interrupts=c.get("interrupts", r.boolean, True),
        speech=c.get("speech", r.boolean, False),
    )
    dtmf_prompt = c.get("dtmf_prompt", r.prompt)
    if c.failed() or None in (prompt, nxt, esc, var, min_d, max_d, terminator, *values.values()):
        return None
    assert nxt is not None and esc is not None
    return CollectNode(
        reprompt=reprompt,
        help=help_,
        name=name,
        loc=c.loc,
        prompt=prompt,
        var=var,
        next=nxt[0],
        next_loc=nxt[1],
        escalate_to=esc[0],
        escalate_loc=esc[1],
        min_digits=min_d,
        max_digits=max_d,
        terminator=terminator,
        regex=regex,
        validator=validator,
        dtmf_prompt=dtmf_prompt,
        **values,
    )


def _compile_set(c: _NodeCtx) -> Node | None:
    r, name = c.r, c.name
    nxt = c.target("next")
    assign_fields = r.mapping(c.value("assign"), f"`assign` of '{name}'") if c.has("assign") else None
    assign: list[tuple[str, ex.Expr]] = []
    for var_text, (var_node, expr_node) in (assign_fields or {}).items():
        var = r.var_name(var_node, "a variable")
        parsed = r.expression(expr_node, f"`{var_text}` in '{name}'")
        if var is not None and parsed is not None:
            assign.append((var, parsed))
    if assign_fields is not None and not assign_fields:
        r.error(c.value("assign"), "flow.bad_value", f"'{name}' assigns nothing", "add `name: value`")
    if c.failed() or nxt is None or assign_fields is None:
        return None
    return SetNode(name=name, loc=c.loc, assign=tuple(assign), next=nxt[0], next_loc=nxt[1])


def _compile_branch(c: _NodeCtx) -> Node | None:
    r, name = c.r, c.name
    default = c.target("default")
    items = r.sequence(c.value("cases"), f"`cases` of '{name}'") if c.has("cases") else None
    cases: list[BranchCase] = []
    for item in items or []:
        case = r.mapping(item, f"a case of '{name}'")
        if case is None:
            continue
        for extra in sorted(set(case) - {"if", "next"}):
            r.error(case[extra][0], "flow.unknown_field", f"a case has no field '{extra}'", "use if, next")
        if "if" not in case or "next" not in case:
            r.error(item, "flow.missing_field", "a case needs `if` and `next`", "add `if:` and `next:`")
            continue
        cond = r.expression(case["if"][1], f"a condition of '{name}'")
        nxt_text = r.scalar(case["next"][1], "next")
        if nxt_text is not None:
            r.goes_to(nxt_text, r.loc(case["next"][1]))
        if cond is not None and nxt_text is not None:
            source = str(case["if"][1].value)
            cases.append(BranchCase(condition=cond, source=source, next=nxt_text, loc=r.loc(case["next"][1])))
    if items is not None and not items:
        r.error(c.value("cases"), "flow.bad_value", f"'{name}' has no cases", "add `- {if: ..., next: ...}`")
    if c.failed() or default is None or items is None:
        return None
    return BranchNode(name=name, loc=c.loc, cases=tuple(cases), default=default[0], default_loc=default[1])


def _compile_schedule(c: _NodeCtx) -> Node | None:
    r, name = c.r, c.name
    hours = c.get("hours", lambda n, _w: _hours(r, n, name))
    holidays = c.get("holidays", lambda n, _w: _holidays(r, n, name), frozenset())
    switch = c.get("switch", r.expression, ex.parse("emergency"))
    open_, closed = c.target("open"), c.target("closed")
    holiday = c.target("holiday") if c.has("holiday") else closed
    emergency = c.target("emergency") if c.has("emergency") else closed
    if c.failed() or None in (hours, holidays, switch, open_, closed, holiday, emergency):
        return None
    assert hours is not None and open_ and closed and holiday and emergency
    return ScheduleNode(
        name=name,
        loc=c.loc,
        hours=hours,
        holidays=holidays,
        switch=switch,
        targets={"open": open_, "closed": closed, "holiday": holiday, "emergency": emergency},
    )


def _compile_lookup(c: _NodeCtx) -> Node | None:
    r, name = c.r, c.name
    url = c.get("url", r.template)
    method = (c.get("method", r.scalar, "GET") or "").upper()
    if method not in ("GET", "POST"):
        r.error(
            c.value("method"), "flow.bad_value", f"method '{method}' is not GET or POST", "use GET or POST"
        )
    timeout = c.get("timeout", r.number, 3.0)
    body: list[tuple[str, ex.Expr]] = []
    if c.has("json"):
        for key, (_, vnode) in (r.mapping(c.value("json"), f"`json` of '{name}'") or {}).items():
            parsed = r.expression(vnode, f"json field '{key}'", in_lookup=True)
            if parsed is not None:
                body.append((key, parsed))
    result: list[tuple[str, tuple[str, ...]]] = []
    if c.has("result"):
        paths = r.mapping(c.value("result"), f"`result` of '{name}'") or {}
        for var_text, (var_node, pnode) in paths.items():
            var = r.var_name(var_node, "a variable")
            ptext = r.scalar(pnode, f"the response path for '{var_text}'")
            if ptext is not None and not re.fullmatch(r"[^.\s]+(\.[^.\s]+)*", ptext):
                r.error(pnode, "flow.bad_value", f"'{ptext}' is not a response path", "write a.b.c")
            elif var is not None and ptext is not None:
                result.append((var, tuple(ptext.split("."))))
    nxt, fallback = c.target("next"), c.target("fallback")
    if url is not None and not url.startswith(("http://", "https://", "{")):
        r.error(
            c.value("url"), "flow.bad_uri", f"lookup url '{url}' is not http(s)", "write https://host/path"
        )
    if c.failed() or None in (url, timeout, nxt, fallback):
        return None
    assert nxt is not None and fallback is not None
    return LookupNode(
        name=name,
        loc=c.loc,
        method=method,
        url=url,
        json=tuple(body),
        timeout=timeout,
        result=tuple(result),
        next=nxt[0],
        next_loc=nxt[1],
        fallback=fallback[0],
        fallback_loc=fallback[1],
    )


def _compile_subflow(c: _NodeCtx) -> Node | None:
    sub, nxt = c.target("flow"), c.target("next")
    if sub is None or nxt is None:
        return None
    return SubflowNode(name=c.name, loc=c.loc, flow=sub[0], flow_loc=sub[1], next=nxt[0], next_loc=nxt[1])


def _compile_return(c: _NodeCtx) -> Node | None:
    return ReturnNode(name=c.name, loc=c.loc)


def _compile_language(c: _NodeCtx) -> Node | None:
    r, name = c.r, c.name
    prompt, nxt, esc = c.get("prompt", r.prompt), c.target("next"), c.target("escalate_to")
    langs = r.mapping(c.value("options"), f"options of '{name}'") if c.has("options") else None
    lang_options: dict[str, str] = {}
    for key, (knode, lnode) in (langs or {}).items():
        lang = r.scalar(lnode, f"language for key {key}")
        if key not in _KEYS:
            r.error(knode, "flow.bad_key", f"'{key}' is not a phone key", "use one of 0-9, * or #")
        elif lang is not None:
            lang_options[key] = lang
    if langs is not None and not langs:
        r.error(c.value("options"), "flow.empty_menu", f"'{name}' offers no language", 'add `"1": en`')
    reprompt = c.get("reprompt", r.prompt)
    timeout = c.get("timeout", r.number, 5.0)
    interruptible = c.get("interruptible", r.boolean, True)
    if c.failed() or None in (prompt, nxt, esc, timeout, interruptible, langs):
        return None
    assert nxt is not None and esc is not None
    return LanguageNode(
        name=name,
        loc=c.loc,
        prompt=prompt,
        reprompt=reprompt,
        options=lang_options,
        next=nxt[0],
        next_loc=nxt[1],
        escalate_to=esc[0],
        escalate_loc=esc[1],
        timeout=timeout,
        interruptible=interruptible,
    )


def _compile_resume(c: _NodeCtx) -> Node | None:
    r = c.r
    prompt, nxt = c.get("prompt", r.prompt), c.target("next")
    key = c.get("key", r.scalar, "1")
    timeout = c.get("timeout", r.number, 4.0)
    if key is not None and (len(key) != 1 or key not in "0123456789*#"):
        r.error(c.value("key"), "flow.bad_key", f"'{key}' is not a phone key", "use one of 0-9, * or #")
        return None
    if c.failed() or None in (prompt, nxt, key, timeout):
        return None
    assert nxt is not None
    return ResumeNode(
        name=c.name, loc=c.loc, prompt=prompt, key=key, timeout=timeout, next=nxt[0], next_loc=nxt[1]
    )


def _compile_survey(c: _NodeCtx) -> Node | None:
    r = c.r
    prompt, nxt = c.get("prompt", r.prompt), c.target("next")
    question = c.get("question", r.scalar, c.name)
    var = c.get("var", r.var_name)
    reprompt = c.get("reprompt", r.prompt)
    timeout = c.get("timeout", r.number, 5.0)
    interruptible = c.get("interruptible", r.boolean, True)
    if c.failed() or None in (prompt, nxt, question, timeout, interruptible):
        return None
    assert nxt is not None
    return SurveyNode(
        name=c.name,
        loc=c.loc,
        prompt=prompt,
        reprompt=reprompt,
        question=question,
        var=var,
        next=nxt[0],
        next_loc=nxt[1],
        timeout=timeout,
        interruptible=interruptible,
    )


def _compile_queue(c: _NodeCtx) -> Node | None:
    r, name = c.r, c.name
    queue = c.target("queue")
    priority = c.get("priority", r.number, 0.0)
    data_fields = r.mapping(c.value("data"), f"`data` of '{name}'") if c.has("data") else {}
    skills = c.get("skills", r.words, ())
    every = c.get("announce_every", r.number, 0.0)
    if every is not None and 0 < every < 10:
        r.error(
            c.value("announce_every"),
            "flow.bad_value",
            "announcing the position more often than every 10 seconds drowns the hold music",
            "use 0 (never) or 10 seconds or more",
        )
    callback_after = c.get("callback_after", r.number)
    callback_key = c.get("callback_key", r.scalar, "1")
    if callback_key is not None and callback_key not in _KEYS:
        r.error(c.value("callback_key"), "flow.bad_key", f"'{callback_key}' is not a phone key", "use 0-9")
    callback_next = c.target("callback_next") if c.has("callback_next") else None
    if c.has("callback_after") != c.has("callback_next"):
        r.error(
            c.key_node,
            "flow.missing_field",
            f"queue '{name}' needs both `callback_after` and `callback_next` to offer a callback",
            "add the missing one, or remove both",
        )
    data: dict[str, str] = {}
    for k, (_, v) in (data_fields or {}).items():
        data[k] = r.template(v, f"data '{k}'") or ""
    announce, hold = c.get("announce", r.prompt), c.get("hold", r.prompt)
    position_prompt = c.get("position_prompt", r.prompt)
    callback_prompt = c.get("callback_prompt", r.prompt)
    after = c.target("after_agent") if c.has("after_agent") else None
    if c.failed() or queue is None or priority is None or data_fields is None or skills is None:
        return None
    return QueueNode(
        name=name,
        loc=c.loc,
        queue=queue[0],
        queue_loc=queue[1],
        priority=int(priority),
        announce=announce,
        hold=hold,
        data=data,
        skills=tuple(skills),
        skills_loc=r.loc(c.value("skills")) if c.has("skills") else None,
        announce_every=every or 0.0,
        position_prompt=position_prompt,
        callback_after=callback_after,
        callback_key=callback_key or "1",
        callback_prompt=callback_prompt,
        callback_next=callback_next[0] if callback_next else None,
        callback_loc=callback_next[1] if callback_next else None,
        after_agent=after[0] if after else None,
        after_loc=after[1] if after else None,
    )


def _compile_transfer(c: _NodeCtx) -> Node | None:
    to = c.get("to", c.r.scalar)
    if to is None:
        return None
    if not to.startswith(("sip:", "sips:")):
        c.r.error(
            c.value("to"),
            "flow.bad_uri",
            f"transfer target '{to}' is not a SIP URI",
            "write it as sip:user@host",
        )
        return None
    return TransferNode(name=c.name, loc=c.loc, to=to)


def _compile_voicemail(c: _NodeCtx) -> Node | None:
    max_seconds = c.get("max_seconds", c.r.number, 120.0)
    prompt = c.get("prompt", c.r.prompt)
    if max_seconds is None or c.failed():
        return None
    return VoicemailNode(name=c.name, loc=c.loc, prompt=prompt, max_seconds=max_seconds)


def _compile_hangup(c: _NodeCtx) -> Node | None:
    prompt = c.get("prompt", c.r.prompt)
    return None if c.failed() else HangupNode(name=c.name, loc=c.loc, prompt=prompt)


def _compile_goto(c: _NodeCtx) -> Node | None:
    nxt = c.target("next")
    return None if nxt is None else GotoNode(name=c.name, loc=c.loc, next=nxt[0], next_loc=nxt[1])


#: One compiler per node type: it reads the type's fields, reports what is wrong with their
#: values, and returns the node (None when anything was wrong).
_COMPILERS: dict[str, Callable[[_NodeCtx], Node | None]] = {
    "play": _compile_play,
    "menu": _compile_menu,
    "collect": _compile_collect,
    "speech": _compile_speech,
    "set": _compile_set,
    "branch": _compile_branch,
    "schedule": _compile_schedule,
    "lookup": _compile_lookup,
    "subflow": _compile_subflow,
    "return": _compile_return,
    "language": _compile_language,
    "survey": _compile_survey,
    "resume": _compile_resume,
    "queue": _compile_queue,
    "transfer": _compile_transfer,
    "voicemail": _compile_voicemail,
    "hangup": _compile_hangup,
    "goto": _compile_goto,
}
assert _COMPILERS.keys() == _FIELDS.keys(), "every node type in _FIELDS needs a compiler"


_KEYS = set("0123456789*#")


def _menu_options(r: _Reader, name: str, node: yaml.Node) -> dict[str, MenuOption] | None:
    fields = r.mapping(node, f"options of '{name}'")
    if fields is None:
        return None
    options: dict[str, MenuOption] = {}
    for key, (key_node, value) in fields.items():
        if key not in _KEYS:
            r.error(key_node, "flow.bad_key", f"'{key}' is not a phone key", "use one of 0-9, * or #")
            continue
        if isinstance(value, yaml.ScalarNode):  # `"1": sales_queue`
            options[key] = MenuOption(next=value.value, label=None, loc=r.loc(value))
            r.goes_to(value.value, r.loc(value))
            continue
        option = r.mapping(value, f"option '{key}' of '{name}'")
        if option is None:
            continue
        if "next" not in option:
            r.error(
                key_node,
                "flow.missing_field",
                f"option '{key}' of '{name}' has no `next`",
                "add `next: <node>`",
            )
            continue
        for extra in sorted(set(option) - {"next", "label", "phrases"}):
            r.error(
                option[extra][0],
                "flow.unknown_field",
                f"option '{key}' has no field '{extra}'",
                "an option has `next`, `label` and `phrases`",
            )
        label = r.scalar(option["label"][1], "label") if "label" in option else None
        phrases = r.words(option["phrases"][1], "phrases") if "phrases" in option else ()
        nxt = r.scalar(option["next"][1], f"`next` of option '{key}'")
        if nxt is None:
            continue
        r.goes_to(nxt, r.loc(option["next"][1]))
        options[key] = MenuOption(next=nxt, label=label, loc=r.loc(option["next"][1]), phrases=phrases or ())
    if not options:
        r.error(
            node,
            "flow.empty_menu",
            f"menu '{name}' has no options",
            'add at least one key, e.g. `"1": next_node`',
        )
        return None
    return options


def _grammar(r: _Reader, name: str, node: yaml.Node) -> dict[str, tuple[str, ...]] | None:
    """`grammar:` of a speech node: value -> a list of phrases that mean it."""
    fields = r.mapping(node, f"`grammar` of '{name}'")
    if fields is None:
        return None
    out: dict[str, tuple[str, ...]] = {}
    for value, (_key_node, phrases_node) in fields.items():
        phrases = r.words(phrases_node, f"phrases of '{value}' in '{name}'")
        if phrases is None:
            return None
        if not phrases:
            r.error(
                phrases_node,
                "flow.bad_value",
                f"'{value}' in the grammar of '{name}' has no phrases",
                'list what a caller says for it, e.g. `yes: ["네", "예"]`',
            )
            return None
        out[value] = phrases
    if not out:
        r.error(node, "flow.bad_value", f"the grammar of '{name}' is empty", "add `value: [phrases]`")
        return None
    return out


def _interrupts(r: _Reader, node: yaml.Node) -> list[Interrupt]:
    items = r.sequence(node, "`interrupts`")
    out: list[Interrupt] = []
    for item in items or []:
        fields = r.mapping(item, "an interrupt")
        if fields is None:
            continue
        for extra in sorted(set(fields) - {"keys", "phrases", "target", "reason"}):
            r.error(
                fields[extra][0],
                "flow.unknown_field",
                f"an interrupt has no field '{extra}'",
                "an interrupt has keys, phrases, target and reason",
            )
        if "target" not in fields:
            r.error(item, "flow.missing_field", "an interrupt has no `target`", "add `target: <node>`")
            continue
        keys = r.words(fields["keys"][1], "keys") if "keys" in fields else ()
        phrases = r.words(fields["phrases"][1], "phrases") if "phrases" in fields else ()
        for k in keys or ():
            if k not in _KEYS:
                r.error(fields["keys"][1], "flow.bad_key", f"'{k}' is not a phone key", "use 0-9, * or #")
        if not keys and not phrases:
            r.error(item, "flow.missing_field", "an interrupt needs `keys` or `phrases`", 'add `keys: ["0"]`')
        target = r.scalar(fields["target"][1], "target")
        reason = r.scalar(fields["reason"][1], "reason") if "reason" in fields else "interrupt"
        if target is None or reason is None or keys is None or phrases is None:
            continue
        out.append(
            Interrupt(
                keys=keys,
                phrases=tuple(p.casefold() for p in phrases),
                target=target,
                target_loc=r.loc(fields["target"][1]),
                reason=reason,
            )
        )
    return out


def _declared(r: _Reader, node: yaml.Node) -> dict[str, Any]:
    """`variables: {name: default}`: variables the adapter or a calling flow supplies."""
    fields = r.mapping(node, "`variables`")
    out: dict[str, Any] = {}
    for key, (knode, vnode) in (fields or {}).items():
        if r.var_name(knode, "a declared variable") is None:
            continue
        if isinstance(vnode, yaml.ScalarNode):
            try:
                out[key] = yaml.safe_load(yaml.serialize(vnode))
            except (yaml.YAMLError, ValueError):  # ValueError: an int of 4300+ digits
                out[key] = vnode.value
            if not isinstance(out[key], str | int | float | bool | type(None)):
                out[key] = str(vnode.value)
        else:
            r.error(
                vnode, "flow.bad_value", f"the default of '{key}' must be one value", "e.g. `tier: standard`"
            )
    return out


# ----------------------------------------------------------- static analysis
def _check_loops(r: _Reader, nodes: Mapping[str, Node]) -> None:
    """A cycle of nodes that never wait (goto, set, branch, schedule) spins without the caller."""
    graph = {
        n: [t for t, _ in node.exits() if t in nodes and not nodes[t].waits]
        for n, node in nodes.items()
        if not node.waits
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            succ = graph[v]
            if i < len(succ):
                work.append((v, i + 1))
                w = succ[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if work:  # propagate low-link to the parent
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                scc: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    scc.append(w)
                    if w == v:
                        break
                if len(scc) > 1 or v in graph[v]:
                    first = min(scc, key=lambda n: (nodes[n].loc.line, nodes[n].loc.col))
                    cycle = " -> ".join(sorted(scc, key=lambda n: nodes[n].loc.line))
                    r.error(
                        nodes[first].loc,
                        "flow.loop_without_input",
                        f"nodes {cycle} can loop forever without waiting for the caller",
                        "put a play, menu or collect node in the loop, or break the cycle",
                    )


def _node_defs(node: Node, exports: Mapping[str, Collection[str]]) -> set[str]:
    """The variables a node sets."""
    match node:
        case SetNode(assign=assign):
            return {v for v, _ in assign}
        case CollectNode(var=var) | SpeechNode(var=var):
            return {var}
        case LookupNode(result=result):
            return {v for v, _ in result}
        case SurveyNode(var=var) if var:
            return {var}
        case SubflowNode(flow=sub):
            return set(exports.get(sub, ()))
    return set()


def _raw_defs(value: yaml.Node, exports: Mapping[str, Collection[str]]) -> set[str]:
    """The variables a node that did not compile would set, read from its YAML as written."""
    out: set[str] = set()
    if not isinstance(value, yaml.MappingNode):
        return out
    for k, v in value.value:
        key = getattr(k, "value", None)
        if key in ("assign", "result") and isinstance(v, yaml.MappingNode):
            out |= {str(kk.value) for kk, _ in v.value if isinstance(kk, yaml.ScalarNode)}
        elif key == "var" and isinstance(v, yaml.ScalarNode):
            out.add(str(v.value))
        elif key == "flow" and isinstance(v, yaml.ScalarNode):
            out |= set(exports.get(str(v.value), ()))
    return out


def _raw_targets(value: yaml.Node, names: Collection[str]) -> list[str]:
    """Every scalar in a node that did not compile which names a node: where it may go. Used
    so that one broken node does not hide (or fake) the graph checks of the others."""
    out: list[str] = []
    todo = [value]
    while todo:
        n = todo.pop()
        if isinstance(n, yaml.ScalarNode):
            if n.value in names:
                out.append(str(n.value))
        elif isinstance(n, yaml.SequenceNode):
            todo.extend(n.value)
        elif isinstance(n, yaml.MappingNode):
            todo.extend(v for _, v in n.value)
    return out


def _check_variables(
    r: _Reader,
    graph: Mapping[str, tuple[set[str], list[str]]],
    checked: Collection[str],
    start: str,
    declared: Collection[str],
    interrupts: list[Interrupt],
) -> None:
    """A variable read where no path from `start` has set it (may-analysis over the graph).

    ``graph``: node -> (variables it sets, nodes it may go to); ``checked``: the nodes whose
    reads are checked (those that compiled)."""
    base = set(BUILTIN_VARIABLES) | set(declared)
    inn: dict[str, set[str]] = {n: set() for n in graph}
    inn[start] = set(base)
    roots = [start, *(i.target for i in interrupts if i.target in graph)]
    changed = True
    while changed:
        changed = False
        everything = set().union(*(inn[n] | graph[n][0] for n in graph))
        for root in roots[1:]:  # an interrupt can fire from any input node
            if not everything <= inn[root] | base:
                inn[root] |= everything | base
                changed = True
        for n, (defs, targets) in graph.items():
            out = inn[n] | defs
            for t in targets:
                if t in inn and not out <= inn[t]:
                    inn[t] |= out
                    changed = True
    for n, uses in r.uses.items():
        if n not in checked:
            continue
        for var, loc, in_lookup in uses:
            root = var.path[0]
            if root == "secret" and in_lookup:
                continue
            if root not in inn[n]:
                known = sorted(inn[n] | base)
                guess = _closest(root, known)
                hint = (
                    f"did you mean '{guess}'?" if guess else "set it first, or declare it under `variables:`"
                )
                if root == "secret":
                    hint = "secret.<var> (secure digits) may only be read in a lookup's `json`"
                r.error(loc, "flow.undefined_variable", f"'{root}' is used before anything sets it", hint)


_OPENERS = {
    "while parsing a flow mapping": ("{", "}"),
    "while parsing a flow sequence": ("[", "]"),
    "while scanning a quoted scalar": ("quote", "closing quote"),
}


def _yaml_syntax(path: str, exc: yaml.MarkedYAMLError) -> tuple[Location, str, str, str]:
    """A YAML syntax error as (where, code, message, hint). An unclosed bracket or quote is
    reported where it was opened, which is where the mistake is; the parser only notices it
    later, where it gives up (named in the message)."""
    problem = exc.problem or "invalid YAML"
    gave_up = exc.problem_mark or exc.context_mark
    line, col = (gave_up.line + 1, gave_up.column + 1) if gave_up else (1, 1)
    opener = _OPENERS.get(exc.context or "")
    if opener is not None and exc.context_mark is not None:
        at = Location(path, exc.context_mark.line + 1, exc.context_mark.column + 1)
        what, closer = opener
        return (
            at,
            "flow.yaml_syntax",
            f"YAML syntax: the {what} opened here is never closed "
            f"(the parser gave up at line {line}, column {col}: {problem})",
            f"add the missing {closer} on this line, or turn the value into indented lines",
        )
    return (
        Location(path, line, col),
        "flow.yaml_syntax",
        f"YAML syntax: {problem}",
        "check indentation and quoting on this line",
    )
def yaml_nesting(text: str) -> int:
    """How deeply ``[``/``{`` collections nest in ``text`` (brackets in quotes count too, so this
    may overstate; it is only scanned when the file holds more brackets than the limit)."""
    if text.count("[") + text.count("{") <= MAX_YAML_NESTING:
        return 0
    depth = deepest = 0
    for m in re.finditer(r"[\[\]{}]", text):
        depth = depth + 1 if m.group() in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest


def compile_flow(
    text: str,
    path: str,
    *,
    known_queues: Collection[str] | None = None,
    known_skills: Collection[str] | None = None,
    known_flows: Collection[str] | None = None,
    known_prompts: Collection[str] | None = None,
    subflow_exports: Mapping[str, Collection[str]] | None = None,
) -> tuple[Flow | None, list[Diagnostic]]:
    """Compile flow source.

    Returns the flow (None if any diagnostic is an error) and every diagnostic,
    errors and warnings. ``None`` for a ``known_*`` argument skips that check;
    ``known_prompts`` is the set of WAV ids found in the prompt directories.
    ``subflow_exports`` maps a flow name to the variables it sets, which count as
    set after a `subflow` node calling it (compile_flow_set fills it in).
    """
    r = _Reader(path)
    version = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    if yaml_nesting(text) > MAX_YAML_NESTING:  # refused before PyYAML spends seconds on it
        r.error(
            Location(path, 1, 1),
            "flow.yaml_syntax",
            f"YAML nested more than {MAX_YAML_NESTING} levels deep ([ and {{ inside one another)",
            "flatten the file",
        )
        return None, r.diagnostics
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        r.error(*_yaml_syntax(path, exc))
        return None, r.diagnostics
    except yaml.YAMLError as exc:  # e.g. ReaderError: a control character in the file
        line = text.count("\n", 0, getattr(exc, "position", 0)) + 1
        r.error(
            Location(path, line, 1),
            "flow.yaml_syntax",
            f"YAML syntax: {exc}",
            "remove control characters; save the file as UTF-8 text",
        )
        return None, r.diagnostics
    except RecursionError:
        r.error(Location(path, 1, 1), "flow.yaml_syntax", "YAML nested too deeply", "flatten the file")
        return None, r.diagnostics
    if root is None:
        r.error(
            Location(path, 1, 1),
            "flow.empty",
            "the flow file is empty",
            "start with `flow:`, `start:` and `nodes:`",
        )
        return None, r.diagnostics
    top = r.mapping(root, "the flow")
    if top is None:
        return None, r.diagnostics
    for key in sorted(set(top) - set(TOP_LEVEL)):
        r.error(
            top[key][0],
            "flow.unknown_field",
            f"unknown top-level field '{key}'",
            "a flow has " + ", ".join(TOP_LEVEL),
        )
    for key in ("start", "nodes"):
        if key not in top:
            r.error(root, "flow.missing_field", f"the flow has no `{key}`", f"add `{key}:` at the top level")
    name = (r.scalar(top["flow"][1], "flow") if "flow" in top else None) or Path(path).stem
    language = (r.scalar(top["language"][1], "language") if "language" in top else None) or "en"
    r.language = language
    if "nodes" not in top or "start" not in top:
        return None, r.diagnostics
    declared = _declared(r, top["variables"][1]) if "variables" in top else {}
    r.node_name = ""
    interrupts = _interrupts(r, top["interrupts"][1]) if "interrupts" in top else []
    # nodes the ACD (overflow to a flow node) or an operator may send a caller to directly
    entry_points: list[tuple[str, Location]] = []
    if "entry_points" in top:
        entry_node = top["entry_points"][1]
        if isinstance(entry_node, yaml.SequenceNode):
            entry_points = [
                (str(item.value), r.loc(item))
                for item in entry_node.value
                if isinstance(item, yaml.ScalarNode)
            ]
        else:
            r.error(
                entry_node,
                "flow.bad_value",
                "`entry_points` must be a list of node names",
                "write [node_a, node_b]",
            )
    node_fields = r.mapping(top["nodes"][1], "nodes")
    nodes: dict[str, Node] = {}
    broken: dict[str, yaml.Node] = {}  # nodes that did not compile -> their YAML
    for node_name, (key_node, value) in (node_fields or {}).items():
        errors_before = sum(d.severity == "error" for d in r.diagnostics)
        node = _compile_node(r, node_name, key_node, value)
        if node is None:
            broken[node_name] = value
            if sum(d.severity == "error" for d in r.diagnostics) == errors_before:  # never drop silently
                r.error(key_node, "flow.bad_value", f"node '{node_name}' is not valid", "check its fields")
        else:
            nodes[node_name] = node
    defined = set(nodes) | set(broken)
    start = r.scalar(top["start"][1], "start")
    if start is not None and start not in defined:
        guess = _closest(start, defined)
        r.error(
            top["start"][1],
            "flow.unknown_node",
            f"start node '{start}' does not exist",
            f"did you mean '{guess}'?" if guess else "name a node under `nodes:`",
        )
    # node -> where it may go; an unknown target counts as the node it is most like (the
    # typo fixed), so the checks below report what will still be wrong once it is fixed
    targets: dict[str, list[str]] = {n: _raw_targets(v, defined) for n, v in broken.items()}
    exits: list[tuple[str, str, Location]] = [("an interrupt", i.target, i.target_loc) for i in interrupts]
    named = [(n, list(node.exits())) for n, node in nodes.items()]
    named += [(n, r.targets.get(n, [])) for n in broken]  # what a broken node's compiler read
    for name_, node_exits in named:
        targets.setdefault(name_, [])
        for t, loc in node_exits:
            exits.append((f"'{name_}'", t, loc))
            fixed = t if t in defined else _closest(t, defined)
            if fixed is not None:
                targets[name_].append(fixed)
    for who, target, loc in exits:
        if target not in defined:
            guess = _closest(target, defined)
            r.error(
                loc,
                "flow.unknown_node",
                f"{who} goes to '{target}', which does not exist",
                f"did you mean '{guess}'?" if guess else "name a node under `nodes:`",
            )
    for node in nodes.values():
        if isinstance(node, QueueNode) and known_queues is not None and node.queue not in known_queues:
            guess = _closest(node.queue, known_queues)
            r.error(
                node.queue_loc,
                "flow.unknown_queue",
                f"queue '{node.queue}' is not configured",
                f"did you mean '{guess}'?"
                if guess
                else f"configured queues: {', '.join(sorted(known_queues)) or 'none'}",
            )
        if isinstance(node, QueueNode) and known_skills is not None and node.skills_loc is not None:
            for skill in node.skills:
                if skill not in known_skills:
                    guess = _closest(skill, known_skills)
                    r.error(
                        node.skills_loc,
                        "flow.unknown_skill",
                        f"no agent or queue has the skill '{skill}'",
                        f"did you mean '{guess}'?"
                        if guess
                        else f"known skills: {', '.join(sorted(known_skills)) or 'none'}",
                    )
        if isinstance(node, SubflowNode) and known_flows is not None and node.flow not in known_flows:
            guess = _closest(node.flow, known_flows)
            r.error(
                node.flow_loc,
                "flow.unknown_subflow",
                f"there is no flow named '{node.flow}'",
                f"did you mean '{guess}'?" if guess else "add flows/<name>.yaml or fix the name",
            )
    for name_, loc in entry_points:
        if name_ not in nodes and name_ not in broken:
            r.error(
                loc,
                "flow.unknown_node",
                f"entry point '{name_}' does not exist",
                "name a node under `nodes:`",
            )
    if known_prompts is not None:
        for prompt, loc in r.prompts:
            if prompt.id is not None and prompt.text is None and prompt.id not in known_prompts:
                r.warn(
                    loc,
                    "flow.missing_audio",
                    f"no WAV '{prompt.id}' in the prompt directories and no TTS text",
                    f"add {prompt.id}.wav or give the prompt a `text:`; callers hear a tone",
                )
    if start is not None and start in defined:
        roots = [start, *(i.target for i in interrupts), *(e for e, _ in entry_points)]
        seen = {t for t in roots if t in defined}
        todo = list(seen)
        while todo:
            for target in targets[todo.pop()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        for node_name in sorted(nodes.keys() - seen, key=lambda n: nodes[n].loc.line):
            r.error(
                nodes[node_name].loc,
                "flow.unreachable_node",
                f"node '{node_name}' can never be reached",
                "link it from another node or delete it",
            )
        _check_loops(r, nodes)
        exports = subflow_exports or {}
        graph = {n: (_node_defs(node, exports), targets[n]) for n, node in nodes.items()}
        graph.update({n: (_raw_defs(v, exports), targets[n]) for n, v in broken.items()})
        _check_variables(r, graph, nodes.keys(), start, declared, interrupts)
    errors = [d for d in r.diagnostics if d.severity == "error"]
    if errors or start is None:
        return None, r.diagnostics
    flow = Flow(
        name=name,
        path=path,
        version=version,
        start=start,
        language=language,
        nodes=nodes,
        variables=declared,
        interrupts=tuple(interrupts),
        warnings=tuple(r.diagnostics),
    )
    return flow, r.diagnostics


def compile_flow_set(
    sources: Mapping[str, str],
    *,
    known_queues: Collection[str] | None = None,
    known_skills: Collection[str] | None = None,
    known_prompts: Collection[str] | None = None,
) -> tuple[dict[str, Flow], list[Diagnostic]]:
    """Compile several flows (path -> text) that may call each other by name.

    Returns the valid flows by name and every diagnostic; a `subflow` naming a
    flow outside the set is ``flow.unknown_subflow``.
    """
    names: dict[str, str] = {}
    exports: dict[str, set[str]] = {}
    for path, text in sources.items():
        name = Path(path).stem
        sets: set[str] = set()
        try:
            top = yaml.safe_load(text) if yaml_nesting(text) <= MAX_YAML_NESTING else None
        except (yaml.YAMLError, RecursionError, ValueError):  # ValueError: an int of 4300+ digits
            top = None
        if isinstance(top, dict):
            if isinstance(top.get("flow"), str):
                name = top["flow"]
            sets |= (
                {str(k) for k in top.get("variables") or {}}
                if isinstance(top.get("variables"), dict)
                else set()
            )
            for node in (top.get("nodes") or {}).values() if isinstance(top.get("nodes"), dict) else ():
                if not isinstance(node, dict):
                    continue
                for key in ("assign", "result"):
                    if isinstance(node.get(key), dict):
                        sets |= {str(k) for k in node[key]}
                if isinstance(node.get("var"), str):
                    sets.add(node["var"])
        names[path] = name
        exports.setdefault(name, set()).update(sets)
    flows: dict[str, Flow] = {}
    diagnostics: list[Diagnostic] = []
    for path, text in sources.items():
        flow, diags = compile_flow(
            text,
            path,
            known_queues=known_queues,
            known_skills=known_skills,
            known_flows=set(names.values()),
            known_prompts=known_prompts,
            subflow_exports=exports,
        )
        diagnostics.extend(diags)
        if flow is None:
            continue
        if flow.name in flows:
            diagnostics.append(
                Diagnostic(
                    Location(path, 1, 1),
                    "flow.duplicate_flow",
                    f"two files define the flow '{flow.name}'",
                    f"rename one of them (the other is {flows[flow.name].path})",
                )
            )
            continue
        flows[flow.name] = flow
    return flows, diagnostics


def _read(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowInvalid(
            [
                Diagnostic(
                    Location(str(p), 1, 1),
                    "flow.unreadable",
                    f"cannot read the flow: {exc}",
                    "check the file exists and is UTF-8",
                )
            ]
        ) from exc


def load_flow(
    path: str | Path,
    *,
    known_queues: Collection[str] | None = None,
    known_skills: Collection[str] | None = None,
    known_flows: Collection[str] | None = None,
    known_prompts: Collection[str] | None = None,
) -> Flow:
    """Read and compile one flow file; raises :class:`FlowInvalid` listing every problem.

    Warnings do not raise; they are in ``Flow.warnings``.
    """
    p = Path(path)
    flow, diagnostics = compile_flow(
        _read(p),
        str(p),
        known_queues=known_queues,
        known_skills=known_skills,
        known_flows=known_flows,
        known_prompts=known_prompts,
    )
    if flow is None:
        raise FlowInvalid(diagnostics)
    return flow


def load_flow_set(
    paths: Iterable[str | Path],
    *,
    known_queues: Collection[str] | None = None,
    known_skills: Collection[str] | None = None,
    known_prompts: Collection[str] | None = None,
) -> dict[str, Flow]:
    """Read and compile flows that call each other; raises :class:`FlowInvalid` on any error."""
    sources = {str(p): _read(Path(p)) for p in paths}
    flows, diagnostics = compile_flow_set(
        sources, known_queues=known_queues, known_skills=known_skills, known_prompts=known_prompts
    )
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise FlowInvalid(errors)
    return flows
