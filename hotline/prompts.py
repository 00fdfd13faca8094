"""Where a prompt's audio comes from: a recorded WAV, else the TTS, else a tone.

One resolver serves the calls and `hotline prompts build`, so both find a prompt the same
way. It counts where each prompt came from (recorded, tts, tone): a prompt that falls back
is visible in the logs and in the figures, never silent.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Protocol

import structlog

import ivr

log = structlog.get_logger("hotline")


class Speaker(Protocol):
    failure_tone: Path

    async def speak(self, text: str, language: str = "", rate: int = 0) -> Path: ...


class PromptResolver:
    """`<dir>/<language>/<id>.wav`, then `<dir>/<id>.wav`, in each prompt directory in order;
    else the prompt's text through the TTS; else the failure tone."""

    def __init__(self, directories: list[Path], tts: Speaker | None) -> None:
        self.directories = directories
        self.tts = tts
        self._paths: dict[tuple[str, str], Path | None] = {}
        self.sources: Counter[str] = Counter()  # "recorded", "tts", "tone": prompts resolved so far

    def recorded(self, prompt: ivr.Prompt, language: str = "") -> Path | None:
        """The recorded WAV for the prompt's id, or None."""
        if prompt.id is None:
            return None
        key = (prompt.id, language)
        if key not in self._paths:
            names = ([f"{language}/{prompt.id}.wav"] if language else []) + [f"{prompt.id}.wav"]
            candidates = (d / name for d in self.directories for name in names)
            self._paths[key] = next((c for c in candidates if c.is_file()), None)
        return self._paths[key]

    async def resolve(self, prompt: ivr.Prompt, language: str = "") -> tuple[Path, str]:
        """The WAV to play and where it came from: "recorded", "tts" or "tone". A prompt with a
        ``rate`` (slower speech for assisted callers) and a text is spoken at that rate even when
        a recording exists: a recording cannot be slowed down without distorting it."""
        path = None if prompt.rate and prompt.text else self.recorded(prompt, language)
        if path is not None:
            self.sources["recorded"] += 1
            return path, "recorded"
        assert self.tts is not None, "a resolver without a TTS only looks up recorded prompts"
        if prompt.text:
            wav = await self.tts.speak(prompt.text, language, prompt.rate)
            source = "tone" if wav == self.tts.failure_tone else "tts"
            self.sources[source] += 1
            return wav, source
        log.error("prompt_missing", prompt=prompt.id, language=language)
        self.sources["tone"] += 1
        return self.tts.failure_tone, "tone"
