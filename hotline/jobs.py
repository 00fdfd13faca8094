"""The call controller's slow effects, run off its turn: each job does its I/O and hands
its result back as a new input (``submit``), never calling into the controller itself.

Prompt lookup (and TTS), the caller's profile, a flow's HTTP lookup, the contact
history, and the stereo merge, checksum and sidecar of a recording.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import structlog

import ivr
import telephony
from calls import effects as fx
from calls import inputs as inp

from . import profiles, untrusted
from .config import ProfilesConfig
from .prompts import PromptResolver

log = structlog.get_logger("hotline")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON file atomically (a reader never sees half of it)."""
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    tmp.replace(path)


def merge_recording(effect: fx.MergeRecording) -> inp.RecordingMerged:
    """In a thread: merge the two mono parts to stereo, checksum, write the sidecar."""
    result = telephony.merge_stereo(effect.caller_part, effect.agent_part, effect.final)
    sidecar = {**effect.sidecar, "seconds": round(result.seconds, 3), "sha256": result.sha256}
    sidecar["file"] = effect.final.name
    side = effect.final.with_suffix(".json")
    write_json(side, sidecar)
    effect.caller_part.unlink(missing_ok=True)
    effect.agent_part.unlink(missing_ok=True)
    return inp.RecordingMerged(
        call_id=effect.call_id,
        kind="call",
        path=str(effect.final.resolve()),
        seconds=result.seconds,
        channels=result.channels,
        sha256=result.sha256,
        sidecar=str(side.resolve()),
    )


def measure_voicemail(effect: fx.MeasureVoicemail) -> inp.RecordingMerged:
    """In a thread: a finished voicemail's length and checksum."""
    return inp.RecordingMerged(
        call_id=effect.call_id,
        kind=effect.kind,
        path=str(effect.path.resolve()),
        seconds=telephony.wav_seconds(effect.path),
        channels=1,
        sha256=telephony.sha256_file(effect.path),
    )


class Jobs:
    """The async jobs of the wiring. ``spawn`` keeps a task alive until it ends (and lets the
    server wait for it at shutdown); ``submit`` is the controller's one door."""

    def __init__(
        self,
        *,
        submit: Callable[[inp.Input], None],
        spawn: Callable[[Any], None],
        prompts: PromptResolver,
        failure_tone: Path,
        profiles_store: profiles.ProfileStore,
        profiles_config: ProfilesConfig,
        resume_policy: profiles.ResumePolicy,
    ) -> None:
        self.submit, self.spawn = submit, spawn
        self.prompts, self.failure_tone = prompts, failure_tone
        self.profiles, self.profiles_config, self.resume_policy = (
            profiles_store,
            profiles_config,
            resume_policy,
        )
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def run(self, effect: fx.Effect) -> None:
        match effect:
            case fx.ResolvePrompt():
                self.spawn(self.resolve(effect))
            case fx.MergeRecording():
                self.spawn(self.in_thread(effect.call_id, "call", merge_recording, effect))
            case fx.MeasureVoicemail():
                self.spawn(self.in_thread(effect.call_id, effect.kind, measure_voicemail, effect))
            case fx.LoadCaller():
                self.spawn(self.load_caller(effect))
            case fx.HttpRequest(call_id=cid, request=request):
                self.spawn(self.lookup(cid, request))
            case fx.RecordContact():
                self.spawn(self.record_contact(effect))
            case fx.RecordSentiment():
                e = effect
                self.spawn(self.profiles.record_sentiment(e.number, e.call_id, e.wall, e.score, e.label))
            case _:
                raise TypeError(f"not a job: {effect!r}")

    async def resolve(self, effect: fx.ResolvePrompt) -> None:
        try:
            wav, source = await self.prompts.resolve(effect.prompt, effect.language)
        except Exception as exc:  # the TTS broke: the caller hears the failure tone, the flow goes on
            log.error("prompt_failed", call_id=effect.call_id, error=f"{type(exc).__name__}: {exc}")
            wav, source = self.failure_tone, "tone"
        self.submit(inp.PromptResolved(call_id=effect.call_id, token=effect.token, wav=wav, source=source))

    async def in_thread(self, call_id: str, kind: str, fn: Any, effect: Any) -> None:
        try:
            result = await asyncio.to_thread(fn, effect)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("recording_failed", call_id=call_id, kind=kind, error=error)
            result = inp.RecordingMerged(call_id=call_id, kind=kind, error=error)
        self.submit(result)

    async def record_contact(self, e: fx.RecordContact) -> None:
        await self.profiles.record_contact(
            e.number,
            e.call_id,
            e.ended_wall,
            e.last_node,
            e.queue,
            e.agent_id,
            e.cause,
            flow=e.flow,
            flow_version=e.flow_version,
            priority=e.priority,
            waited_seconds=e.waited_seconds,
            agent_connected=e.agent_connected,
        )

    async def load_caller(self, effect: fx.LoadCaller) -> None:
        """The caller's profile and recent contacts, before the IVR says a word; a slow
        or broken lookup only costs its deadline and the call goes on without it."""
        pc = self.profiles_config
        flows = effect.flows
        caller: dict[str, Any]
        try:
            caller, _offer = await asyncio.wait_for(
                self.profiles.caller_for_call(
                    effect.number,
                    effect.wall,
                    self.resume_policy,
                    recent_within=pc.recent_window,
                    node_exists=lambda f, n: f in flows and n in flows[f].nodes,
                ),
                pc.http_timeout + 1.0,
            )
        except Exception as exc:
            log.warning("profile_lookup_failed", call_id=effect.call_id, error=f"{type(exc).__name__}: {exc}")
            caller = profiles.caller_variables(effect.number, None, now_wall=effect.wall)
        self.submit(inp.CallerLoaded(call_id=effect.call_id, caller=caller))

    async def lookup(self, call_id: str, req: ivr.HttpLookup) -> None:
        """Run a flow's HTTP lookup; the interpreter times out on its own as well."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        reply: ivr.LookupResult | ivr.LookupFailed
        try:
            async with self._http.request(
                req.method, req.url, json=req.json, timeout=aiohttp.ClientTimeout(total=req.timeout)
            ) as resp:
                body = await untrusted.read_json(resp)  # bounded, and safe for every sink
                reply = ivr.LookupResult(request_id=req.request_id, status=resp.status, body=body)
        except Exception as exc:  # timeout, refused, not JSON ...: the flow takes its fallback exit
            reason = type(exc).__name__
            log.warning(
                "lookup_failed",
                call_id=call_id,
                url=req.url,
                reason=reason,
                **({} if req.sensitive else {"error": str(exc)}),
            )
            reply = ivr.LookupFailed(request_id=req.request_id, reason=reason)
        self.submit(inp.LookupDone(call_id=call_id, reply=reply))
