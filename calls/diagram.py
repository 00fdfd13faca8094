"""The call phase diagram, generated from :data:`calls.phases.TRANSITIONS` (never drawn by hand)."""

from __future__ import annotations

from .phases import TRANSITIONS


def call_phase_mermaid() -> str:
    lines = [
        "stateDiagram-v2",
        "    [*] --> offered",
        "    [*] --> callback_pending",
        "    [*] --> outbound_agent",
    ]
    for phase, moves in TRANSITIONS.items():
        for trigger, target in moves.items():
            lines.append(f"    {phase.value} --> {target.value}: {trigger.value}")
    lines.append("    ended --> [*]")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(call_phase_mermaid(), end="")
