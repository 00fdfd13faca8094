"""The agent state diagram, generated from :data:`acd.model.TRANSITIONS` (never drawn by hand)."""

from __future__ import annotations

from .model import TRANSITIONS


def agent_state_mermaid() -> str:
    lines = ["stateDiagram-v2", "    [*] --> logged_out"]
    for state, moves in TRANSITIONS.items():
        for trigger, target in moves.items():
            lines.append(f"    {state.value} --> {target.value}: {trigger.value}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(agent_state_mermaid(), end="")
