"""Hot reload of the flows directory.

A :class:`FlowWatcher` polls ``<dir>/*.yaml`` every ``interval`` seconds on the
event loop. When the set of files or any file's bytes changed, and the change
has held still for one poll (an editor's half-written save is never compiled),
it recompiles the whole set with the compile function it was given, then:

- **accepts** it and calls ``on_accept(flows, event)``: the server swaps the
  registry it reads for *new* calls. Calls in progress hold their own
  ``Flow`` objects and never see the swap;
- or **rejects** it and calls ``on_reject(diagnostics, event)``: the previous
  set stays live.

The decision (:func:`decide`) is pure. A set is rejected when it has an error
in a file that changed since the last accepted set, or in a flow that was
live, or when a required flow (the main one) is missing. A file that was
already broken and is untouched (a draft) stays left out, as at start-up.

Why polling and not inotify: a handful of small files, hashed every second,
costs microseconds; polling also works on bind mounts, NFS and container
volumes where inotify stays silent, and needs no dependency. ``mtime_ns`` and
size decide whether a file must be re-read; a file whose mtime is within
``RACY_SECONDS`` of the scan is re-hashed anyway (the "racy git" problem: a
second write in the same timestamp tick with the same size).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import structlog

import ivr

log = structlog.get_logger("hotline.reload")

RACY_SECONDS = 2.0  # files modified this recently are re-hashed even if mtime and size match

CompileFn = Callable[[Mapping[str, str]], tuple[Mapping[str, ivr.Flow], Sequence[ivr.Diagnostic]]]


# -------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True, kw_only=True)
class FlowReloaded:
    """A changed flows directory was compiled and is live for new calls."""

    wire: ClassVar[str] = "ivr.flow_reloaded"
    flows: dict[str, str]  # every live flow: name -> version (sha256 of the file, 16 hex digits)
    changed: list[str]  # names of the flows added or changed by this reload, sorted
    removed: list[str]  # names of the flows no longer live, sorted


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowRejected:
    """A change to the flows directory was invalid; the previous flows stay live."""

    wire: ClassVar[str] = "ivr.flow_rejected"
    file: str  # path of the flow file with the first error
    line: int  # 1-based line of the first error
    col: int  # 1-based column of the first error
    code: str  # stable error code, e.g. "flow.unknown_node"
    message: str  # what is wrong, for a flow designer
    hint: str  # how to fix it
    errors: int  # errors found in all, this one included


# ---------------------------------------------------------------- pure core
@dataclass(frozen=True, slots=True)
class FileStamp:
    mtime_ns: int  # modification time, nanoseconds since the epoch
    size: int  # bytes
    sha256: str  # hex digest of the content
    racy: bool  # modified within RACY_SECONDS of the scan: re-hash next time


Snapshot = Mapping[str, FileStamp]  # path -> stamp


def digest(snapshot: Snapshot) -> dict[str, str]:
    """What a change is judged on: path -> content hash."""
    return {path: stamp.sha256 for path, stamp in snapshot.items()}


@dataclass(frozen=True, slots=True)
class Decision:
    accepted: bool
    flows: Mapping[str, ivr.Flow]  # the set to make live (accepted) or the compiled partial set
    errors: list[ivr.Diagnostic]  # the errors that decided a rejection (first one first)
    event: FlowReloaded | FlowRejected


MAX_TEXT = 500  # characters of a diagnostic's message or hint in an ivr.flow_rejected event


def _brief(text: str) -> str:
    """A diagnostic quotes what it found, which in a hostile file can be 100,000 characters:
    the event carries the start of it (file:line:col says where the rest is)."""
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def decide(
    *,
    live: Mapping[str, ivr.Flow],
    live_files: Mapping[str, str],
    new_files: Mapping[str, str],
    flows: Mapping[str, ivr.Flow],
    diagnostics: Sequence[ivr.Diagnostic],
    required: Collection[str] = (),
) -> Decision:
    """Judge a recompiled set.

    ``live`` is the set serving calls now and ``live_files`` the path -> hash it
    was compiled from; ``new_files`` is path -> hash of what was compiled into
    ``flows`` with ``diagnostics``; ``required`` names flows that must exist.
    """
    changed_files = {p for p, h in new_files.items() if live_files.get(p) != h}
    live_paths = {f.path for f in live.values()}
    errors = [
        d
        for d in diagnostics
        if d.severity == "error" and (d.loc.file in changed_files or d.loc.file in live_paths)
    ]
    # a live flow whose file was deleted while other flows still call it shows as
    # flow.unknown_subflow in the caller's (live) file, so it is caught above
    for name in sorted(set(required) - set(flows)):
        file = live[name].path if name in live else f"{name}.yaml"
        errors.append(
            ivr.Diagnostic(
                ivr.Location(file, 1, 1),
                "flow.missing",
                f"the flow '{name}' is required but no valid file defines it",
                "restore the file or fix its errors; the previous version stays live",
            )
        )
    if errors:
        first = errors[0]
        rejected = FlowRejected(
            file=first.loc.file,
            line=first.loc.line,
            col=first.loc.col,
            code=first.code,
            message=_brief(first.message),
            hint=_brief(first.hint),
            errors=len(errors),
        )
        return Decision(False, flows, errors, rejected)
    reloaded = FlowReloaded(
        flows={name: f.version for name, f in sorted(flows.items())},
        changed=sorted(n for n, f in flows.items() if n not in live or live[n].version != f.version),
        removed=sorted(set(live) - set(flows)),
    )
    return Decision(True, flows, [], reloaded)


# ---------------------------------------------------------------- the shell
def scan(directory: Path, previous: Snapshot, now_wall: float) -> dict[str, FileStamp]:
    """Stamp every ``*.yaml`` in ``directory``, re-reading only files that may have changed."""
    stamps: dict[str, FileStamp] = {}
    for path in sorted(directory.glob("*.yaml")):
        key = str(path)
        try:
            st = path.stat()
            old = previous.get(key)
            racy = st.st_mtime_ns >= (now_wall - RACY_SECONDS) * 1e9
            if old is not None and not old.racy and (old.mtime_ns, old.size) == (st.st_mtime_ns, st.st_size):
                stamps[key] = FileStamp(old.mtime_ns, old.size, old.sha256, racy)
                continue
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # deleted between glob and read
        except OSError as exc:
            stamps[key] = FileStamp(0, -1, f"unreadable:{exc.errno}", True)
            continue
        stamps[key] = FileStamp(st.st_mtime_ns, st.st_size, hashlib.sha256(data).hexdigest(), racy)
    return stamps


def read_sources(paths: Collection[str]) -> tuple[dict[str, str], list[ivr.Diagnostic]]:
    """path -> text for the compiler; unreadable files become diagnostics."""
    sources: dict[str, str] = {}
    problems: list[ivr.Diagnostic] = []
    for path in sorted(paths):
        try:
            sources[path] = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(
                ivr.Diagnostic(
                    ivr.Location(path, 1, 1),
                    "flow.unreadable",
                    f"cannot read the flow: {exc}",
                    "check the file exists, is readable and is UTF-8",
                )
            )
    return sources, problems


@dataclass(eq=False)
class FlowWatcher:
    """Polls a flows directory and hands each valid new flow set to ``on_accept``.

    ``compile`` takes path -> YAML text and returns (valid flows by name,
    diagnostics), i.e. ``ivr.compile_flow_set`` with the server's known
    queues, skills and prompts bound.
    """

    directory: Path
    compile: CompileFn
    on_accept: Callable[[Mapping[str, ivr.Flow], FlowReloaded], None]
    on_reject: Callable[[list[ivr.Diagnostic], FlowRejected], None]
    interval: float = 1.0  # seconds between polls
    required: Collection[str] = ()  # flow names that must stay defined (the main flow)
    wall: Callable[[], float] = time.time  # epoch seconds, for the racy-mtime check
    live: Mapping[str, ivr.Flow] = field(default_factory=dict)  # the set serving new calls
    _live_files: dict[str, str] = field(default_factory=dict)  # path -> hash that `live` came from
    _seen: dict[str, FileStamp] = field(default_factory=dict)  # last scan
    _judged: dict[str, str] = field(default_factory=dict)  # path -> hash last compiled (either way)
    _primed: bool = False
    _task: asyncio.Task[None] | None = None

    def _compile(
        self, sources: Mapping[str, str], blame: Collection[str]
    ) -> tuple[Mapping[str, ivr.Flow], Sequence[ivr.Diagnostic]]:
        """The compiler's verdict. Should it crash (a bug: no input may do that), the crash
        becomes an error diagnostic on the first of ``blame`` (the files that changed), so the
        set is rejected with ``ivr.flow_rejected`` like any invalid edit and the previous
        flows stay live; one log line, no traceback."""
        try:
            return self.compile(sources)
        except Exception as exc:
            culprit = min(blame or sources or [str(self.directory)])
            log.error("flow_compiler_failed", file=culprit, error=f"{type(exc).__name__}: {exc}")
            return {}, [
                ivr.Diagnostic(
                    ivr.Location(culprit, 1, 1),
                    "flow.compiler_failed",
                    f"the flow compiler failed on this set ({type(exc).__name__}: {exc})",
                    "simplify the last edit; please report the file as a hotline bug. "
                    "The previous flows stay live",
                )
            ]

    def prime(self) -> tuple[Mapping[str, ivr.Flow], list[ivr.Diagnostic]]:
        """Scan and compile the directory as it is and make that the live set, whatever
        its errors (the server decides at start-up whether it can run with them)."""
        self._seen = scan(self.directory, {}, self.wall())
        files = digest(self._seen)
        sources, problems = read_sources(list(files))
        flows, diagnostics = self._compile(sources, list(files))
        self.live, self._live_files, self._judged = dict(flows), files, dict(files)
        self._primed = True
        return self.live, [*problems, *diagnostics]

    def poll(self) -> Decision | None:
        """One poll: None if nothing (settled) changed, else the decision, already applied."""
        seen = scan(self.directory, self._seen, self.wall())
        settled = digest(seen) == digest(self._seen)
        self._seen = seen
        files = digest(seen)
        if not settled or files == self._judged:
            return None
        return self._judge(files)

    def _judge(self, files: dict[str, str]) -> Decision:
        """Compile ``files`` and make them live, or reject them keeping the live set."""
        self._judged = files
        sources, problems = read_sources(list(files))
        changed = [p for p, h in files.items() if self._live_files.get(p) != h]
        flows, diagnostics = self._compile(sources, changed)
        decision = decide(
            live=self.live,
            live_files=self._live_files,
            new_files=files,
            flows=flows,
            diagnostics=[*problems, *diagnostics],
            required=self.required,
        )
        if isinstance(decision.event, FlowReloaded):
            self.live, self._live_files = dict(decision.flows), files
            log.info("flows_reloaded", flows=decision.event.flows, changed=decision.event.changed)
            self.on_accept(self.live, decision.event)
        else:
            for d in decision.errors:
                where = {"file": d.loc.file, "line": d.loc.line, "col": d.loc.col}
                log.error("flow_rejected", **where, code=d.code, message=d.message)
            self.on_reject(decision.errors, decision.event)
        return decision

    def reload_now(self) -> Decision | None:
        """Compile the directory as it is now (an operator asked): the decision, or None
        when nothing changed since the live set."""
        seen = scan(self.directory, self._seen, self.wall())
        self._seen = seen
        files = digest(seen)
        if files == self._live_files:
            return None
        self._judged = {}  # force poll() to judge it even though the scan just settled it
        self._seen = seen
        return self._judge(files)

    def start(self) -> None:
        """Begin polling on the running loop (call :meth:`prime` first, or it primes itself)."""
        if not self._primed:
            self.prime()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="flow-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                # a scan of a few small files; cheap enough for the loop thread
                self.poll()
            except Exception as exc:  # a callback or the compiler failed: keep watching
                log.exception("flow_watch_failed", error=str(exc))


def compile_with(**known: Any) -> CompileFn:
    """``ivr.compile_flow_set`` with ``known_queues`` / ``known_skills`` / ``known_prompts``
    bound; a value may be a zero-argument callable, called on every compile (so new
    prompt files are seen)."""

    def run(sources: Mapping[str, str]) -> tuple[Mapping[str, ivr.Flow], Sequence[ivr.Diagnostic]]:
        resolved = {k: (v() if callable(v) else v) for k, v in known.items()}
        return ivr.compile_flow_set(sources, **resolved)

    return run
