"""What a config names, turned into the cores' terms: queue and agent specs, the flow set.

Shared by the server and the commands that check a config offline (validate, prompts build).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

import acd
import ivr

from . import proxy
from .config import Config, SipConfig

if TYPE_CHECKING:
    from telephony.admission import AdmissionLimits

log = structlog.get_logger("hotline")


def queue_specs(config: Config) -> list[acd.QueueSpec]:
    def overflow(o: Any) -> acd.Overflow | None:
        return None if o is None else acd.Overflow(kind=acd.OverflowKind(o.kind), target=o.target)

    return [
        acd.QueueSpec(
            name=q.name,
            skills=q.skills,
            strategy=q.strategy,
            ring_timeout=q.ring_timeout,
            wrap_up=q.wrap_up,
            max_no_answer=q.max_no_answer,
            retry_delay=q.retry_delay,
            aging_seconds=q.aging_seconds,
            relax=tuple(
                acd.RelaxStep(after=r.after, min_level=r.min_level or None, drop=r.drop) for r in q.relax
            ),
            max_wait=q.max_wait or None,
            max_waiting=q.max_waiting or None,
            on_max_wait=overflow(q.on_max_wait),
            on_full=overflow(q.on_full),
            on_no_agents=overflow(q.on_no_agents),
            callback_retry_delay=q.callback_retry_delay,
            callback_max_attempts=q.callback_max_attempts,
            default_aht=q.default_aht,
        )
        for q in config.acd.queues
    ]


def agent_specs(config: Config) -> list[acd.AgentSpec]:
    return [
        acd.AgentSpec(
            id=a.id,
            name=a.name or a.id,
            skills=a.skills,
            contact=a.contact or proxy.aor_uri(config, a.id),  # "" only with [proxy]
            queues=a.queues,
            wrap_up=a.wrap_up if a.wrap_up >= 0 else None,
        )
        for a in config.acd.agents
    ]


def admission_limits(sip: SipConfig) -> AdmissionLimits:
    """[sip] per-source limits for the endpoint's admission control (telephony/admission.py)."""
    from telephony.admission import AdmissionLimits

    return AdmissionLimits(
        calls=sip.per_source_calls or max(1, sip.max_calls * 3 // 4),
        unconfirmed=sip.per_source_unconfirmed,
        rate=sip.per_source_rate,
        burst=sip.per_source_burst,
        handshake_timeout=sip.handshake_timeout,
    )


def known_skills(config: Config) -> set[str]:
    return {k for q in config.acd.queues for k in q.skills} | {k for a in config.acd.agents for k in a.skills}


def prompt_ids(directories: list[Path]) -> set[str]:
    """WAV ids available in the prompt directories: `<id>.wav`, `<language>/<id>.wav`, and
    `<sub>/<name>.wav` as the id `<sub>/<name>` (e.g. `silence/1` of the stock set)."""
    nested = [p for d in directories if d.is_dir() for p in d.glob("*/*.wav")]
    top = [p for d in directories if d.is_dir() for p in d.glob("*.wav")]
    return {p.stem for p in [*top, *nested]} | {f"{p.parent.name}/{p.stem}" for p in nested}


def load_flows(config: Config, prompt_dirs: list[Path]) -> tuple[dict[str, ivr.Flow], ivr.Flow]:
    """Every flow in the flows directory; the main one must be valid. Other flows with
    errors are logged and left out, so a broken draft never stops the hotline."""
    directory = config.path(config.flows.directory)
    paths = sorted(directory.glob("*.yaml"))
    sources = {}
    for path in paths:
        try:
            sources[str(path)] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            log.error("flow_unreadable", path=str(path), error=str(exc))
    flows, diagnostics = ivr.compile_flow_set(
        sources,
        known_queues=[q.name for q in config.acd.queues],
        known_skills=known_skills(config),
        known_prompts=prompt_ids(prompt_dirs),
    )
    main_path = str(directory / f"{config.flows.main}.yaml")
    main = flows.get(config.flows.main)
    if main is None:
        mine = [d for d in diagnostics if d.loc.file == main_path and d.severity == "error"]
        if not mine:
            mine = [
                ivr.Diagnostic(
                    ivr.Location(main_path, 1, 1),
                    "flow.missing",
                    f"the main flow {main_path} is missing",
                    "set [flows] main to a flow file name in [flows] directory",
                )
            ]
        raise ivr.FlowInvalid(mine)
    for d in diagnostics:
        (log.warning if d.severity != "error" else log.error)(
            "flow_diagnostic", file=d.loc.file, line=d.loc.line, code=d.code, message=d.message
        )
    check_overflow_targets(config, main)
    return flows, main


def check_overflow_targets(config: Config, main: ivr.Flow) -> None:
    """A queue overflowing to a flow node needs that node in the main flow."""
    for q in config.acd.queues:
        for o in (q.on_max_wait, q.on_full, q.on_no_agents):
            if o is not None and o.kind == "flow_node" and o.target not in main.nodes:
                raise ivr.FlowInvalid(
                    [
                        ivr.Diagnostic(
                            ivr.Location(main.path, 1, 1),
                            "flow.unknown_node",
                            f"queue {q.name} overflows to node '{o.target}', which the main flow lacks",
                            "add the node to the main flow or change the queue's overflow target",
                        )
                    ]
                )
