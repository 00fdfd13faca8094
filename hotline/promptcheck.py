"""Which prompts the flows use, and which of them no prompt directory holds.

Checked when the server starts (and when an edited flow set is accepted) and by
`hotline validate --config`, so a prompt that will be synthesized, or replaced by a tone,
is known before the first caller hears it, not when `prompt_missing` shows at call time.
Pure: it reads the directories it is given and returns findings; callers log or print them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ivr


@dataclass(frozen=True, slots=True)
class PromptUse:
    """One prompt written in a flow."""

    prompt: ivr.Prompt
    loc: ivr.Location  # the node that says it
    flow: str  # the flow's name


@dataclass(frozen=True, slots=True)
class Unrecorded:
    """A prompt id (or a text-only prompt) that no prompt directory holds a WAV for."""

    id: str | None  # None: the prompt has only a text
    text: str | None  # what the TTS says instead (the first use's text)
    fallback: str  # "tts": its text is synthesized; "tone": the caller hears the failure tone
    where: tuple[ivr.Location, ...]  # every node that uses it, in flow order

    def describe(self) -> str:
        if self.id is None:
            text = self.text or ""
            return f'prompt "{text[:40]}{"..." if len(text) > 40 else ""}" has no id: the TTS speaks it'
        if self.fallback == "tts":
            return f"prompt '{self.id}' has no WAV in the prompt directories: the TTS speaks its text"
        return f"prompt '{self.id}' has no WAV in the prompt directories and no text: callers hear a tone"


def _prompts_in(value: Any) -> Iterator[ivr.Prompt]:
    if isinstance(value, ivr.Prompt):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _prompts_in(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _prompts_in(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _prompts_in(getattr(value, f.name))


def flow_prompts(flows: Iterable[ivr.Flow]) -> list[PromptUse]:
    """Every prompt each flow's nodes say (prompt, reprompt, hold, announce, ...)."""
    out: list[PromptUse] = []
    for flow in flows:
        for node in sorted(flow.nodes.values(), key=lambda n: (n.loc.line, n.loc.col)):
            out.extend(PromptUse(p, node.loc, flow.name) for p in _prompts_in(node))
    return out


class PromptLibrary:
    """The WAVs the prompt directories hold, as ids: `<dir>/<id>.wav`, `<dir>/<lang>/<id>.wav`
    (a language subdirectory), and ids with a slash such as `silence/1`."""

    def __init__(self, directories: Iterable[Path]) -> None:
        self.directories = list(directories)
        self.missing = [d for d in self.directories if not d.is_dir()]
        self._ids: set[str] = set()
        self._nested: set[str] = set()  # "<sub>/<id>"
        for d in self.directories:
            if d in self.missing:
                continue
            self._ids.update(p.stem for p in d.glob("*.wav"))
            self._nested.update(f"{p.parent.name}/{p.stem}" for p in d.glob("*/*.wav"))
        self._in_sub = {n.split("/", 1)[1] for n in self._nested}

    def holds(self, prompt_id: str) -> bool:
        return prompt_id in self._ids or prompt_id in self._in_sub or prompt_id in self._nested


def unrecorded(uses: Iterable[PromptUse], library: PromptLibrary) -> list[Unrecorded]:
    """Each prompt id no directory holds, once, with every place it is used; then the
    text-only prompts (always synthesized), one entry per place."""
    by_id: dict[str, list[PromptUse]] = {}
    text_only: list[PromptUse] = []
    for use in uses:
        if use.prompt.id is None:
            text_only.append(use)
        elif not library.holds(use.prompt.id):
            by_id.setdefault(use.prompt.id, []).append(use)
    out = [
        Unrecorded(
            id=pid,
            text=next((u.prompt.text for u in found if u.prompt.text), None),
            fallback="tts" if any(u.prompt.text for u in found) else "tone",
            where=tuple(dict.fromkeys(u.loc for u in found)),
        )
        for pid, found in by_id.items()
    ]
    out.extend(Unrecorded(id=None, text=u.prompt.text, fallback="tts", where=(u.loc,)) for u in text_only)
    return out


def startup_findings(
    flows: Iterable[ivr.Flow], directories: Iterable[Path], reported: set[str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """What the server logs (event, fields) when it loads a flow set: each configured prompt
    directory that does not exist, and each prompt id no directory holds (once: ids in
    ``reported`` are skipped, and the ones logged now are added to it)."""
    reported = set() if reported is None else reported
    library = PromptLibrary(directories)
    out: list[tuple[str, dict[str, Any]]] = [
        (
            "prompt_directory_missing",
            {
                "directory": str(d),
                "hint": "create it, or fix [prompts] directories (Debian's recorded prompts: "
                "/usr/share/asterisk/sounds/en_US_f_Allison from asterisk-core-sounds-en-wav)",
            },
        )
        for d in library.missing
        if str(d) not in reported
    ]
    reported.update(str(d) for d in library.missing)
    uses = flow_prompts(flows)
    for item in unrecorded(uses, library):
        if item.id is None or item.id in reported:
            continue
        reported.add(item.id)
        out.append(
            (
                "prompt_not_found",
                {
                    "prompt": item.id,
                    "fallback": item.fallback,
                    "where": [f"{loc.file}:{loc.line}" for loc in item.where],
                },
            )
        )
    return out


def validate_lines(flows: Iterable[ivr.Flow], directories: Iterable[Path]) -> list[str]:
    """What `hotline validate --config` prints about prompts: missing directories, and every
    prompt the TTS will speak because no directory holds a WAV for it (an id without a WAV
    and without a text is already the compiler's `flow.missing_audio` warning)."""
    library = PromptLibrary(directories)
    lines = [f"warning: prompt directory {d} does not exist ([prompts] directories)" for d in library.missing]
    for item in unrecorded(flow_prompts(flows), library):
        if item.fallback == "tts":
            lines.extend(f"{loc}: prompt.synthesized: {item.describe()}" for loc in item.where)
    return lines
