"""Start-up recovery: finish what a killed run (kill -9, power loss, OOM) left behind.

The server calls :func:`recover` once in ``start()``, before it takes calls. It
looks at what the previous run could not finish and finishes it:

- **Calls left open** (a ``calls`` row without ``ended_at``). If the outbox holds
  the call's ``call.ended`` (the event was durable, the record update was not), the
  record is completed from it and nothing is published again. Otherwise the call is
  closed with cause ``server_lost`` and ``call.ended`` is published. Its end is the
  previous run's last sign of life (its newest event, or the newest recording
  write), and the durations are those the outbox can tell (answered, queued,
  connected times); ``sip_code`` is 0 (no SIP status was ever received).
- **Recordings in progress** (``recordings/.parts/<name>-caller.wav`` and
  ``-agent.wav``): pjsua2's WAV writer leaves the RIFF and data sizes 0 until it
  closes a file. Each part's header is rewritten from its length (every whole
  sample kept), the stereo merge and the sidecar are finished, and
  ``recording.ready`` goes out with ``repaired: true``; a pair that cannot be
  repaired gives ``recording.failed`` with the reason and its files move to
  ``.parts/unrecoverable/`` (kept for an operator, not retried at every start).
- **Voicemails being recorded** by a lost call get their header repaired and a
  ``recording.ready`` (``kind: voicemail``, ``repaired: true``).

The decisions (:func:`trace_calls`, :func:`close_lost_call`, :func:`recording_pairs`)
are pure; :func:`recover` does the I/O.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

import cti_bridge
import telephony
from calls import events as hev

from .store import CallStore

log = structlog.get_logger("hotline.recovery")

LOST = "server_lost"  # the cause of a call that was up when the server died
#: the outbox events that tell how far a call got
TRACED = ("call.offered", "call.answered", "call.queued", "call.connected", "call.ended")


# ------------------------------------------------------------------ pure core
@dataclass(slots=True)
class CallTrace:
    """What the outbox says about one call, in epoch seconds."""

    answered: float | None = None
    queued: float | None = None  # the first call.queued
    queue: str | None = None  # the last queue it waited in
    connected: float | None = None  # the last call.connected
    agent_id: str | None = None
    last: float | None = None  # the call's newest event
    ended: tuple[float, dict[str, Any]] | None = None  # (wall, data) of a durable call.ended


def trace_calls(rows: Iterable[tuple[int, str, float, str]], call_ids: Iterable[str]) -> dict[str, CallTrace]:
    """Fold outbox rows (seq, event, wall, line), oldest first, into a trace per call."""
    traces = {cid: CallTrace() for cid in call_ids}
    for _seq, name, wall, line in rows:
        env = json.loads(line)
        trace = traces.get(env.get("call_id") or "")
        if trace is None:
            continue
        data = env.get("data") or {}
        trace.last = wall
        if name == "call.answered" and trace.answered is None:
            trace.answered = wall
        elif name == "call.queued":
            trace.queued = trace.queued if trace.queued is not None else wall
            trace.queue = data.get("queue") or trace.queue
        elif name == "call.connected":
            trace.connected, trace.agent_id = wall, data.get("agent_id") or trace.agent_id
        elif name == "call.ended":
            trace.ended = (wall, data)
    return traces


def epoch(iso: str) -> float:
    """An ISO 8601 UTC time from a call record (``...Z``) as epoch seconds."""
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class Closing:
    """How to close one open call record."""

    call_id: str
    fields: dict[str, Any]  # for CallStore.update
    event: hev.CallEnded | None  # to publish; None when the outbox already has it


def close_lost_call(
    row: Mapping[str, Any], trace: CallTrace, end_wall: float, mask: Callable[[str], str]
) -> Closing:
    """Close the record ``row`` of a call the previous run left open. ``end_wall`` is that
    run's last sign of life; the call cannot have ended earlier than its own newest event."""
    call_id = str(row["call_id"])
    if trace.ended is not None:  # call.ended is durable: only the record update was lost
        wall, data = trace.ended
        summary = data.get("summary") or {}
        fields: dict[str, Any] = {
            "ended_at": cti_bridge.iso_utc(wall),
            "cause": data.get("cause"),
            "queue": data.get("queue"),
            "agent_id": data.get("agent_id"),
            **{k: data.get(k) for k in ("ivr_seconds", "wait_seconds", "talk_seconds", "total_seconds")},
        }
        if isinstance(summary.get("ivr_path"), list):
            fields["ivr_path"] = summary["ivr_path"]
        if isinstance(summary.get("inputs"), list):
            fields["inputs"] = summary["inputs"]
        return Closing(call_id, fields, None)
    started = epoch(str(row["started_at"]))
    end = max(end_wall, trace.last or started, started)
    queue = trace.queue or row.get("queue")
    agent = trace.agent_id if trace.connected is not None else None
    ivr = ((trace.queued or end) - trace.answered) if trace.answered is not None else 0.0
    wait = ((trace.connected or end) - trace.queued) if trace.queued is not None else 0.0
    talk = (end - trace.connected) if trace.connected is not None else 0.0
    total = end - started
    summary = {
        "caller": mask(str(row.get("caller") or "")),
        "service_code": row.get("service_code") or "",
        "queue": queue,
        "agent_id": agent,
        "wait_seconds": round(wait, 3),
        "talk_seconds": round(talk, 3),
        "disposition": LOST,
        "recovered": True,  # closed at start-up: IVR path and inputs died with the process
    }
    event = hev.CallEnded(
        call_id=call_id,
        cause=LOST,
        sip_code=0,
        queue=queue,
        agent_id=agent,
        total_seconds=total,
        ivr_seconds=ivr,
        wait_seconds=wait,
        talk_seconds=talk,
        summary=summary,
    )
    fields = {
        "ended_at": cti_bridge.iso_utc(end),
        "cause": LOST,
        "queue": queue,
        "agent_id": agent,
        "ivr_seconds": ivr,
        "wait_seconds": wait,
        "talk_seconds": talk,
        "total_seconds": total,
    }
    return Closing(call_id, fields, event)


@dataclass(frozen=True, slots=True)
class PartPair:
    name: str  # <call_id> or <call_id>-<segment>
    call_id: str
    caller: Path | None
    agent: Path | None


def recording_pairs(paths: Iterable[Path]) -> list[PartPair]:
    """Group ``.parts`` files (``<name>-caller.wav``, ``<name>-agent.wav``) by recording."""
    found: dict[str, dict[str, Path]] = {}
    for path in paths:
        stem = path.name.removesuffix(".wav")
        for side in ("caller", "agent"):
            if path.suffix == ".wav" and stem.endswith(f"-{side}"):
                found.setdefault(stem.removesuffix(f"-{side}"), {})[side] = path
    pairs = []
    for name, sides in sorted(found.items()):
        base, _, segment = name.rpartition("-")
        call_id = base if segment.isdigit() and base else name
        pairs.append(PartPair(name, call_id, sides.get("caller"), sides.get("agent")))
    return pairs


# ---------------------------------------------------------------------- shell
@dataclass(slots=True)
class Report:
    calls_closed: int = 0  # closed as server_lost, call.ended published
    calls_completed: int = 0  # records completed from a durable call.ended
    recordings_repaired: int = 0
    recordings_failed: int = 0
    voicemails_repaired: int = 0
    errors: list[str] = field(default_factory=list)


def _sign_of_life(outbox: cti_bridge.Outbox | None, paths: Iterable[Path]) -> float | None:
    """When the previous run was last seen alive: its newest event or recording write."""
    walls = [outbox.last_wall() if outbox is not None else None]
    for p in paths:
        try:
            walls.append(p.stat().st_mtime)
        except OSError:
            continue
    known = [w for w in walls if w is not None]
    return max(known) if known else None


def _finish_pair(pair: PartPair, final: Path, sidecar: dict[str, Any]) -> tuple[telephony.StereoResult, Path]:
    """Repair both parts, merge them, checksum, write the sidecar (runs in a thread)."""
    if pair.caller is None or pair.agent is None:
        missing = "caller" if pair.caller is None else "agent"
        raise ValueError(f"the {missing} part of {pair.name} is missing")
    telephony.repair_wav_header(pair.caller)
    telephony.repair_wav_header(pair.agent)
    result = telephony.merge_stereo(pair.caller, pair.agent, final)
    sidecar.update(seconds=round(result.seconds, 3), sha256=result.sha256, file=final.name)
    side = final.with_suffix(".json")
    tmp = side.with_suffix(".json.partial")
    tmp.write_text(json.dumps(sidecar, indent=2, ensure_ascii=False))
    tmp.replace(side)
    pair.caller.unlink()
    pair.agent.unlink()
    return result, side


def _set_aside(pair: PartPair, parts: Path) -> None:
    """Keep an unrecoverable pair for an operator, out of the way of the next start."""
    aside = parts / "unrecoverable"
    aside.mkdir(exist_ok=True)
    for p in (pair.caller, pair.agent):
        if p is not None and p.exists():
            shutil.move(str(p), aside / p.name)


async def recover(
    *,
    store: CallStore,
    outbox: cti_bridge.Outbox | None,
    publish: Callable[[object], Any],
    recordings: Path,
    mask: Callable[[str], str],
) -> Report:
    """Close the calls, and finish the recordings, a killed run left (see the module doc)."""
    report = Report()
    parts_dir = recordings / ".parts"
    part_files = sorted(parts_dir.glob("*.wav")) if parts_dir.is_dir() else []
    open_rows = await store.open_calls()
    if not open_rows and not part_files:
        return report
    voicemails = {str(r["call_id"]): recordings / f"{r['call_id']}-voicemail.wav" for r in open_rows}
    voicemails = {cid: p for cid, p in voicemails.items() if p.is_file()}
    end_wall = _sign_of_life(outbox, [*part_files, *voicemails.values()])
    oldest = min((epoch(str(r["started_at"])) for r in open_rows), default=end_wall or 0.0)
    rows = outbox.recent(oldest - 1.0, TRACED) if outbox is not None and open_rows else []
    traces = trace_calls(rows, [str(r["call_id"]) for r in open_rows])
    by_id = {str(r["call_id"]): r for r in open_rows}
    for row in open_rows:
        closing = close_lost_call(row, traces[str(row["call_id"])], end_wall or 0.0, mask)
        store.update(closing.call_id, **closing.fields)
        if closing.event is None:
            report.calls_completed += 1
        else:
            publish(closing.event)
            report.calls_closed += 1
    for pair in recording_pairs(part_files):
        row = by_id.get(pair.call_id) or await store.get(pair.call_id) or {}
        trace = traces.get(pair.call_id) or CallTrace()
        final = recordings / f"{pair.name}.wav"
        sidecar: dict[str, Any] = {
            "call_id": pair.call_id,
            "service_code": row.get("service_code") or "",
            "caller": mask(str(row.get("caller") or "")),
            "queue": trace.queue or row.get("queue"),
            "agent_id": trace.agent_id or row.get("agent_id"),
            "started": cti_bridge.iso_utc(trace.connected) if trace.connected else None,
            "flow": row.get("flow"),
            "flow_version": row.get("flow_version"),
            "ivr_inputs": [],  # died with the process
            "channels": {"left": "caller", "right": "agent"},
            "gaps": [],
            "repaired": True,
        }
        try:
            result, side = await asyncio.to_thread(_finish_pair, pair, final, sidecar)
        except Exception as exc:  # not a WAV, cut inside its header, a part missing ...
            error = f"repair failed: {type(exc).__name__}: {exc}"
            log.error("recording_repair_failed", call_id=pair.call_id, recording=pair.name, error=error)
            await asyncio.to_thread(_set_aside, pair, parts_dir)
            publish(hev.RecordingFailed(call_id=pair.call_id, kind="call", error=error))
            report.recordings_failed += 1
            report.errors.append(error)
            continue
        store.update(pair.call_id, recording_path=str(final.resolve()), recording_sha256=result.sha256)
        publish(
            hev.RecordingReady(
                call_id=pair.call_id,
                kind="call",
                path=str(final.resolve()),
                seconds=result.seconds,
                channels=result.channels,
                sha256=result.sha256,
                sidecar=str(side.resolve()),
                repaired=True,
            )
        )
        report.recordings_repaired += 1
    for call_id, path in voicemails.items():
        try:
            await asyncio.to_thread(telephony.repair_wav_header, path)
            seconds = await asyncio.to_thread(telephony.wav_seconds, path)
            digest = await asyncio.to_thread(telephony.sha256_file, path)
        except Exception as exc:
            error = f"repair failed: {type(exc).__name__}: {exc}"
            publish(hev.RecordingFailed(call_id=call_id, kind="voicemail", error=error))
            report.recordings_failed += 1
            report.errors.append(error)
            continue
        publish(
            hev.RecordingReady(
                call_id=call_id,
                kind="voicemail",
                path=str(path.resolve()),
                seconds=seconds,
                channels=1,
                sha256=digest,
                repaired=True,
            )
        )
        report.voicemails_repaired += 1
    await store.flush()
    log.warning(
        "recovered_previous_run",
        calls_closed=report.calls_closed,
        calls_completed=report.calls_completed,
        recordings_repaired=report.recordings_repaired,
        voicemails_repaired=report.voicemails_repaired,
        recordings_failed=report.recordings_failed,
        lost_at=cti_bridge.iso_utc(end_wall) if end_wall else None,
    )
    return report
