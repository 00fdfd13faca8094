"""The flow language: YAML in, a compiled, validated :class:`Flow` out.

Every diagnostic carries ``file:line:col``, a stable code and a hint, because a
flow designer reads them, not a programmer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Diagnostic, FlowInvalid, Location

MAX_FAILURES = 3  # the no-dead-end ladder: re-prompt, re-prompt with choices, human


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str | None  # WAV file name (without .wav) looked up in the prompt directories
    text: str | None  # what the TTS fallback says when no WAV exists


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    name: str
    loc: Location

    def exits(self) -> Iterator[tuple[str, Location]]:
        """Target node names, each with where it is written."""
        return iter(())


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayNode(Node):
    prompt: Prompt
    next: str
    next_loc: Location
    interruptible: bool = False  # a keypress cuts the prompt short

    def exits(self) -> Iterator[tuple[str, Location]]:
        yield self.next, self.next_loc


@dataclass(frozen=True, slots=True, kw_only=True)
class MenuOption:
    next: str
    label: str | None  # spoken when the menu offers its choices explicitly
    loc: Location


@dataclass(frozen=True, slots=True, kw_only=True)
class MenuNode(Node):
    prompt: Prompt
    reprompt: Prompt | None  # clarifying prompt after the first failure
    timeout: float  # seconds to wait for a key after the prompt ends
    options: dict[str, MenuOption]  # DTMF key -> option
    escalate_to: str  # where the third failure goes: a human
    escalate_loc: Location
    interruptible: bool = True

    def exits(self) -> Iterator[tuple[str, Location]]:
        for option in self.options.values():
            yield option.next, option.loc
        yield self.escalate_to, self.escalate_loc


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueNode(Node):
    queue: str
    queue_loc: Location
    priority: int  # higher is served first
    announce: Prompt | None  # played once on entry
    hold: Prompt | None  # played in a loop while waiting
    data: dict[str, str]  # static screen-pop fields added to what the IVR learned


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
    next: str
    next_loc: Location

    def exits(self) -> Iterator[tuple[str, Location]]:
        yield self.next, self.next_loc


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    path: str
    version: str  # sha256 of the file's bytes, first 16 hex digits
    start: str
    language: str
    nodes: dict[str, Node] = field(repr=False)

    def queues(self) -> set[str]:
        return {n.queue for n in self.nodes.values() if isinstance(n, QueueNode)}


# ------------------------------------------------------------------- reading
class _Reader:
    """Walks PyYAML's node tree, so every value keeps its line and column."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.diagnostics: list[Diagnostic] = []

    def loc(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.path, mark.line + 1, mark.column + 1)

    def error(self, node: yaml.Node | Location, code: str, message: str, hint: str) -> None:
        loc = node if isinstance(node, Location) else self.loc(node)
        self.diagnostics.append(Diagnostic(loc, code, message, hint))

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

    def scalar(self, node: yaml.Node, what: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            self.error(
                node, "flow.bad_value", f"{what} must be a single value", "write one word or a quoted text"
            )
            return None
        return str(node.value)

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
        if value < minimum:
            self.error(
                node, "flow.bad_value", f"{what} must be at least {minimum:g}", f"use {minimum:g} or more"
            )
            return None
        return value

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

    def prompt(self, node: yaml.Node, what: str) -> Prompt | None:
        """A prompt is a WAV id (`prompt: welcome`) or `{id: ..., text: ...}` or `{text: ...}`."""
        if isinstance(node, yaml.ScalarNode):
            return Prompt(id=node.value, text=None)
        fields = self.mapping(node, what)
        if fields is None:
            return None
        unknown = set(fields) - {"id", "text"}
        for key in sorted(unknown):
            self.error(
                fields[key][0],
                "flow.unknown_field",
                f"{what} has no field '{key}'",
                "a prompt has `id` and `text`",
            )
        pid = self.scalar(fields["id"][1], f"{what} id") if "id" in fields else None
        text = self.scalar(fields["text"][1], f"{what} text") if "text" in fields else None
        if pid is None and text is None:
            self.error(
                node,
                "flow.empty_prompt",
                f"{what} has neither `id` nor `text`",
                "give a WAV id, a text, or both",
            )
            return None
        return Prompt(id=pid, text=text)


_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # type: (required fields, optional fields); `type` itself is implied
    "play": ({"prompt", "next"}, {"interruptible"}),
    "menu": ({"prompt", "options", "escalate_to"}, {"reprompt", "timeout", "interruptible"}),
    "queue": ({"queue"}, {"priority", "announce", "hold", "data"}),
    "transfer": ({"to"}, set()),
    "voicemail": (set(), {"prompt", "max_seconds"}),
    "hangup": (set(), {"prompt"}),
    "goto": ({"next"}, set()),
}


def _closest(word: str, choices: Collection[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, list(choices), n=1)
    return found[0] if found else None


def _compile_node(r: _Reader, name: str, key_node: yaml.Node, value: yaml.Node) -> Node | None:
    fields = r.mapping(value, f"node '{name}'")
    if fields is None:
        return None
    loc = r.loc(key_node)
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
    if not ok:
        return None

    def get(key: str, read: Callable[[yaml.Node, str], Any], default: Any = None) -> Any:
        return read(fields[key][1], f"`{key}` of '{name}'") if key in fields else default

    def target(key: str) -> tuple[str, Location] | None:
        text = get(key, r.scalar)
        return None if text is None else (text, r.loc(fields[key][1]))

    if kind == "play":
        prompt, nxt = get("prompt", r.prompt), target("next")
        interruptible = get("interruptible", r.boolean, False)
        if prompt is None or nxt is None or interruptible is None:
            return None
        return PlayNode(
            name=name, loc=loc, prompt=prompt, next=nxt[0], next_loc=nxt[1], interruptible=interruptible
        )
    if kind == "menu":
        prompt = get("prompt", r.prompt)
        reprompt = get("reprompt", r.prompt)
        timeout = get("timeout", r.number, 5.0)
        esc = target("escalate_to")
        interruptible = get("interruptible", r.boolean, True)
        options = _menu_options(r, name, fields["options"][1])
        if None in (prompt, timeout, esc, interruptible, options):
            return None
        assert esc is not None and options is not None
        return MenuNode(
            name=name,
            loc=loc,
            prompt=prompt,
            reprompt=reprompt,
            timeout=timeout,
            options=options,
            escalate_to=esc[0],
            escalate_loc=esc[1],
            interruptible=interruptible,
        )
    if kind == "queue":
        queue = target("queue")
        priority = get("priority", r.number, 0.0)
        data_fields = r.mapping(fields["data"][1], f"`data` of '{name}'") if "data" in fields else {}
        if queue is None or priority is None or data_fields is None:
            return None
        data = {k: r.scalar(v, f"data '{k}'") or "" for k, (_, v) in data_fields.items()}
        return QueueNode(
            name=name,
            loc=loc,
            queue=queue[0],
            queue_loc=queue[1],
            priority=int(priority),
            announce=get("announce", r.prompt),
            hold=get("hold", r.prompt),
            data=data,
        )
    if kind == "transfer":
        to = get("to", r.scalar)
        if to is None:
            return None
        if not to.startswith(("sip:", "sips:")):
            r.error(
                fields["to"][1],
                "flow.bad_uri",
                f"transfer target '{to}' is not a SIP URI",
                "write it as sip:user@host",
            )
            return None
        return TransferNode(name=name, loc=loc, to=to)
    if kind == "voicemail":
        max_seconds = get("max_seconds", r.number, 120.0)
        if max_seconds is None:
            return None
        return VoicemailNode(name=name, loc=loc, prompt=get("prompt", r.prompt), max_seconds=max_seconds)
    if kind == "hangup":
        return HangupNode(name=name, loc=loc, prompt=get("prompt", r.prompt))
    nxt = target("next")
    return None if nxt is None else GotoNode(name=name, loc=loc, next=nxt[0], next_loc=nxt[1])


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
        for extra in sorted(set(option) - {"next", "label"}):
            r.error(
                option[extra][0],
                "flow.unknown_field",
                f"option '{key}' has no field '{extra}'",
                "an option has `next` and `label`",
            )
        label = r.scalar(option["label"][1], "label") if "label" in option else None
        options[key] = MenuOption(next=option["next"][1].value, label=label, loc=r.loc(option["next"][1]))
    if not options:
        r.error(
            node,
            "flow.empty_menu",
            f"menu '{name}' has no options",
            'add at least one key, e.g. `"1": next_node`',
        )
        return None
    return options


def compile_flow(
    text: str, path: str, *, known_queues: Collection[str] | None = None
) -> tuple[Flow | None, list[Diagnostic]]:
    """Compile flow source. Returns the flow (None if any error) and every diagnostic."""
    r = _Reader(path)
    version = hashlib.sha256(text.encode()).hexdigest()[:16]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        r.error(
            Location(path, line, col),
            "flow.yaml_syntax",
            f"YAML syntax: {problem}",
            "check indentation and quoting on this line",
        )
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
    for key in sorted(set(top) - {"flow", "start", "language", "nodes", "description"}):
        r.error(
            top[key][0],
            "flow.unknown_field",
            f"unknown top-level field '{key}'",
            "a flow has flow, description, language, start and nodes",
        )
    for key in ("start", "nodes"):
        if key not in top:
            r.error(root, "flow.missing_field", f"the flow has no `{key}`", f"add `{key}:` at the top level")
    name = (r.scalar(top["flow"][1], "flow") if "flow" in top else None) or Path(path).stem
    language = (r.scalar(top["language"][1], "language") if "language" in top else None) or "en"
    if "nodes" not in top or "start" not in top:
        return None, r.diagnostics
    node_fields = r.mapping(top["nodes"][1], "nodes")
    nodes: dict[str, Node] = {}
    broken: set[str] = set()
    for node_name, (key_node, value) in (node_fields or {}).items():
        node = _compile_node(r, node_name, key_node, value)
        if node is None:
            broken.add(node_name)
        else:
            nodes[node_name] = node
    defined = set(nodes) | broken
    start = r.scalar(top["start"][1], "start")
    if start is not None and start not in defined:
        guess = _closest(start, defined)
        r.error(
            top["start"][1],
            "flow.unknown_node",
            f"start node '{start}' does not exist",
            f"did you mean '{guess}'?" if guess else "name a node under `nodes:`",
        )
    for node in nodes.values():
        for target, loc in node.exits():
            if target not in defined:
                guess = _closest(target, defined)
                r.error(
                    loc,
                    "flow.unknown_node",
                    f"'{node.name}' goes to '{target}', which does not exist",
                    f"did you mean '{guess}'?" if guess else "name a node under `nodes:`",
                )
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
    if start is not None and start in nodes and not broken:
        seen, todo = {start}, [start]
        while todo:
            for target, _ in nodes[todo.pop()].exits():
                if target in nodes and target not in seen:
                    seen.add(target)
                    todo.append(target)
        for node_name in nodes.keys() - seen:
            r.error(
                nodes[node_name].loc,
                "flow.unreachable_node",
                f"node '{node_name}' can never be reached",
                "link it from another node or delete it",
            )
    if r.diagnostics or start is None:
        return None, r.diagnostics
    return Flow(name=name, path=path, version=version, start=start, language=language, nodes=nodes), []


def load_flow(path: str | Path, *, known_queues: Collection[str] | None = None) -> Flow:
    """Read and compile one flow file; raises :class:`FlowInvalid` listing every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
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
    flow, diagnostics = compile_flow(text, str(p), known_queues=known_queues)
    if flow is None:
        raise FlowInvalid(diagnostics)
    return flow
