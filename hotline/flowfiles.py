"""Reading flow files for the commands (validate, prompts build)."""

from __future__ import annotations

from pathlib import Path


def read_flow_sources(files: list[Path]) -> tuple[dict[str, str], int]:
    """Path -> text of each flow file; an unreadable one is printed as a diagnostic and counted."""
    sources: dict[str, str] = {}
    unreadable = 0
    for f in files:
        try:
            sources[str(f)] = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{f}:1:1: flow.unreadable: cannot read the flow: {exc}")
            unreadable += 1
    return sources, unreadable
