"""The running edge: Kamailio as a supervised child, and what it reports over JSON-RPC.

- :class:`ProxySupervisor` runs Kamailio as a child (``-DD -E``), restarts it when it dies,
  stops it on shutdown, and turns a failed start into :class:`ProxyStartError` (reason + fix).
- :class:`KamailioRpc` speaks JSON-RPC to Kamailio's ``jsonrpcs`` datagram socket.
- :class:`EdgeWatcher` polls the location table and the guard's tables over it and feeds
  the pure diffing in :mod:`hotline.registrations`.
- :func:`build_edge` is the one wiring point; :class:`Edge` is what the server holds.

Why polling (docs/sip.md): it works the same for a managed and an operator-run Kamailio,
it sees expiries (which no SIP request announces) and it needs no extra module; one
``ul.dump`` a second costs Kamailio well under a millisecond for a few hundred phones.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from telephony.asr import AlertCleared, AlertRaised

from . import credentials
from .config import Config, ProxyConfig
from .proxy import (
    EdgePaths,
    ProxyStartError,
    aor_uri,
    default_paths,
    write_files,
)
from .registrations import (
    Contact,
    GuardChange,
    GuardTable,
    RegistrationEvent,
    RegistrationTable,
    agents_to_park,
)

log = structlog.get_logger("proxy")


class RpcError(Exception):
    """Kamailio's control socket did not answer, or answered with an error."""


class KamailioRpc:
    """JSON-RPC 2.0 over Kamailio's ``jsonrpcs`` unix datagram socket (one call at a time)."""

    def __init__(self, server: Path, reply_dir: Path) -> None:
        self.server = server
        self._reply = reply_dir / f"hotline-rpc-{os.getpid()}.sock"
        self._sock: socket.socket | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    def _open(self) -> socket.socket:
        if self._sock is None:
            with contextlib.suppress(FileNotFoundError):
                self._reply.unlink()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(self._reply))
            sock.setblocking(False)
            self._sock = sock
        return self._sock

    async def call(self, method: str, *params: Any, timeout: float = 1.0) -> Any:
        loop = asyncio.get_running_loop()
        async with self._lock:
            sock = self._open()
            rid = next(self._ids)
            request = {"jsonrpc": "2.0", "method": method, "id": rid}
            if params:
                request["params"] = list(params)
            try:
                sock.sendto(json.dumps(request).encode(), str(self.server))
            except OSError as exc:
                raise RpcError(f"{method}: cannot reach {self.server}: {exc.strerror}") from None
            deadline = loop.time() + timeout
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise RpcError(f"{method}: no answer within {timeout}s")
                try:
                    data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), remaining)
                except TimeoutError:
                    raise RpcError(f"{method}: no answer within {timeout}s") from None
                reply = json.loads(data)
                if reply.get("id") != rid:
                    continue  # a late answer to an earlier call
                if "error" in reply:
                    raise RpcError(f"{method}: {reply['error'].get('message', reply['error'])}")
                return reply.get("result")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self._reply.unlink()


def parse_location(result: Any, now: float) -> dict[str, list[Contact]]:
    """``ul.dump`` -> AOR -> contacts (expiry as epoch seconds)."""
    out: dict[str, list[Contact]] = {}
    for domain in (result or {}).get("Domains", []):
        for aor in domain.get("Domain", {}).get("AoRs", []):
            info = aor.get("Info", {})
            contacts = []
            for item in info.get("Contacts", []):
                c = item.get("Contact", {})
                expires = c.get("Expires")
                if not isinstance(expires, int | float):  # "permanent" or "deleted"
                    if expires == "deleted":
                        continue
                    expires = 10**9
                received = str(c.get("Received", ""))
                socket_ = str(c.get("Socket", ""))
                contacts.append(
                    Contact(
                        uri=str(c.get("Address", "")),
                        expires=now + float(expires),
                        user_agent=str(c.get("User-Agent", "")),
                        received="" if received.startswith("[") else received,
                        transport=socket_.split(":", 1)[0] if ":" in socket_ else "",
                    )
                )
            if contacts:
                out[str(info.get("AoR", ""))] = contacts
    return out


def parse_htable(result: Any) -> dict[str, int]:
    """``htable.dump`` -> key -> integer value."""
    out: dict[str, int] = {}
    for entry in result or []:
        for slot in entry.get("slot", []) if isinstance(entry, dict) else []:
            with contextlib.suppress(TypeError, ValueError):
                out[str(slot["name"])] = int(slot["value"])
    return out


# ----------------------------------------------------------------------------- supervisor
def _explain(lines: list[str], config: Config) -> tuple[str, str]:
    """A reason and a fix from Kamailio's last words."""
    text = "\n".join(lines)
    assert config.proxy is not None
    if "Address already in use" in text:
        ports = f"{config.sip.port}" + (
            f" or TLS port {config.proxy.tls_port}" if config.proxy.tls_port else ""
        )
        return (
            f"SIP port {ports} on {config.sip.host} is in use by another process",
            "stop that process (`ss -lunpt | grep kamailio` shows a leftover Kamailio), "
            "or set [sip] port / [proxy] tls_port",
        )
    if "could not find module" in text or "cannot open shared object" in text or "ERROR: load_module" in text:
        return (
            "a Kamailio module is missing",
            "install kamailio-sqlite-modules, kamailio-tls-modules, kamailio-utils-modules "
            "and kamailio-extra-modules (scripts/setup)",
        )
    if "private_key" in text or ("certificate" in text and "TLS" in text.upper()):
        return ("Kamailio could not load the TLS certificate or key", "check [proxy] tls_cert and tls_key")
    errors = [ln for ln in lines if "ERROR" in ln or "CRITICAL" in ln] or lines[-5:]
    return (
        "Kamailio exited at start-up: " + " | ".join(ln.strip() for ln in errors[-4:]),
        "see the rendered config with `hotline proxy config` and check it with `kamailio -c -f FILE`",
    )


class ProxySupervisor:
    """Runs Kamailio as a child: started with the server, restarted when it dies, stopped last."""

    def __init__(
        self,
        config: Config,
        paths: EdgePaths,
        run_dir: Path,
        on_change: Callable[[bool, str], None] | None = None,
    ) -> None:
        assert config.proxy is not None
        self.config = config
        self._on_change = on_change or (lambda up, message: None)  # (up, what happened) after start
        self.settings: ProxyConfig = config.proxy
        self.paths = paths
        self.run_dir = run_dir
        self.rpc = KamailioRpc(paths.rpc_socket, run_dir)
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0  # times Kamailio was restarted after dying
        self._tail: deque[str] = deque(maxlen=40)
        self._reader: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._up = False

    def is_up(self) -> bool:
        """True while the managed Kamailio runs and has answered its control socket."""
        return self._up and self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _check_prerequisites(self) -> str:
        binary = shutil.which(self.settings.binary)
        if binary is None:
            raise ProxyStartError(
                f"Kamailio is not installed ({self.settings.binary!r} is not on PATH)",
                "run scripts/setup (it installs Debian's kamailio packages), set [proxy] binary, "
                "or remove the [proxy] table to run without a registrar",
            )
        if self.settings.tls_port:
            for key in ("tls_cert", "tls_key"):
                path = self.config.path(getattr(self.settings, key))
                if not path.is_file():
                    raise ProxyStartError(
                        f"the TLS file [proxy] {key} = {str(path)!r} does not exist",
                        "run scripts/setup (it makes a self-signed demo certificate), point "
                        f"[proxy] {key} at your PEM file, or set [proxy] tls_port = 0",
                    )
        return binary

    async def start(self) -> None:
        binary = self._check_prerequisites()
        write_files(self.config, self.paths)
        await self._spawn(binary)
        self._watch = asyncio.create_task(self._supervise(binary))

    async def _spawn(self, binary: str) -> None:
        s = self.settings
        with contextlib.suppress(FileNotFoundError):
            self.paths.rpc_socket.unlink()
        self._tail.clear()
        # setpriv (util-linux) makes the kernel send Kamailio SIGTERM if hotline dies without
        # stopping it (SIGKILL, a crash), so no orphan keeps the SIP ports
        guard = [setpriv, "--pdeathsig", "TERM"] if (setpriv := shutil.which("setpriv")) else []
        self.proc = await asyncio.create_subprocess_exec(
            *guard,
            binary,
            "-f",
            str(self.paths.cfg),
            "-DD",
            "-E",
            "-Y",
            str(self.run_dir),
            "-m",
            str(s.shm_mb),
            "-M",
            str(s.pkg_mb),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches hotline, which stops Kamailio
        )
        self._reader = asyncio.create_task(self._read(self.proc))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.start_timeout
        while True:
            if self.proc.returncode is not None:
                self._kill_group()
                await self._drain_reader()
                reason, fix = _explain(list(self._tail), self.config)
                raise ProxyStartError(reason, fix)
            try:
                await self.rpc.call("core.version", timeout=0.2)
                break
            except RpcError:
                if loop.time() > deadline:
                    await self._kill()
                    raise ProxyStartError(
                        f"Kamailio did not answer on {self.paths.rpc_socket} within {s.start_timeout}s",
                        "see its log lines above; raise [proxy] start_timeout on a slow machine",
                    ) from None
                await asyncio.sleep(0.05)
        self._up = True
        log.info("proxy_started", pid=self.proc.pid, config=str(self.paths.cfg))

    async def _drain_reader(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), 2.0)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            self._tail.append(text)
            if " ALERT:" in text or "GUARD" in text:
                log.warning("kamailio", line=text)
            elif "ERROR" in text or "CRITICAL" in text:
                log.error("kamailio", line=text)
            elif "WARNING" in text or "NOTICE" in text:
                log.info("kamailio", line=text)
            else:
                log.debug("kamailio", line=text)

    async def _supervise(self, binary: str) -> None:
        delay = self.settings.restart_delay
        while not self._stopping:
            assert self.proc is not None
            code = await self.proc.wait()
            self._up = False
            if self._stopping:
                return
            if not isinstance(self.proc, _Exited):  # a real death, not a failed restart
                self._kill_group()  # its children hold the sockets: they go too before a restart
                log.error("proxy_died", exit_code=code, restart_in=delay, last=list(self._tail)[-3:])
                self._on_change(False, f"Kamailio (the SIP edge) died with exit code {code}; restarting it")
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._spawn(binary)
            except ProxyStartError as exc:
                log.error("proxy_restart_failed", reason=exc.reason, fix=exc.fix)
                delay = min(30.0, delay * 2)
                self.proc = _Exited()  # type: ignore[assignment]
                continue
            self.restarts += 1
            delay = self.settings.restart_delay
            log.warning("proxy_restarted", pid=self.proc.pid, restarts=self.restarts)
            self._on_change(True, f"Kamailio (the SIP edge) runs again (restart {self.restarts})")

    def _kill_group(self) -> None:
        """SIGKILL what is left of Kamailio's process group (its own session: pgid = pid)."""
        pid = self.proc.pid if self.proc is not None else None
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    async def _kill(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)  # Kamailio's main process stops its children
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            self._kill_group()
            await proc.wait()

    async def stop(self) -> None:
        self._stopping = True
        self._up = False
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._kill()
        await self._drain_reader()
        self.rpc.close()
        if self.proc is not None and self.proc.returncode is not None:
            log.info("proxy_stopped", exit_code=self.proc.returncode)


class _Exited:
    """Stands in for a process that failed to restart: wait() returns at once."""

    returncode = -1
    pid = None

    async def wait(self) -> int:
        return -1


# --------------------------------------------------------------------------------- watcher
class EdgeWatcher:
    """Polls registrations and the guard; hands what changed to ``on_registrations`` and
    ``on_guard``, and the polled state to ``on_poll`` (every poll that got an answer)."""

    def __init__(
        self,
        rpc: KamailioRpc,
        agents: list[str],
        interval: float,
        on_registrations: Callable[[list[RegistrationEvent]], None],
        on_guard: Callable[[list[GuardChange]], None],
        on_poll: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rpc = rpc
        self.registrations = RegistrationTable(agents)
        self.guard = GuardTable()
        self.interval = interval
        self._on_registrations = on_registrations
        self._on_guard = on_guard
        self._on_poll = on_poll
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.polls = 0  # successful polls
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def poll_once(self) -> bool:
        try:
            location = await self.rpc.call("ul.dump")
            blocked = await self.rpc.call("htable.dump", "blocked")
            flooding = await self.rpc.call("htable.dump", "flooding")
        except (RpcError, ValueError) as exc:
            if not self._failing:
                log.warning("proxy_poll_failed", error=str(exc))
            self._failing = True
            return False  # keep the last known state: a restarting proxy is not a mass logout
        if self._failing:
            log.info("proxy_poll_recovered")
        self._failing = False
        now = self._clock()
        self.polls += 1
        events = self.registrations.update(parse_location(location, now), now)
        changes = self.guard.update(parse_htable(blocked), parse_htable(flooding))
        if events:
            self._on_registrations(events)
        if changes:
            self._on_guard(changes)
        self._on_poll()
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:  # a bug here must not stop the watching
                log.exception("proxy_poll_crashed")
            await asyncio.sleep(self.interval)


# ------------------------------------------------------------------------------------ edge
def guard_alert(change: GuardChange, settings: ProxyConfig) -> AlertRaised | AlertCleared:
    """The CTI alert for a guard change (codes sip.blocked and sip.flood)."""
    if change.kind == "blocked":
        code, limit = "sip.blocked", float(settings.auth_fail_limit)
        raised = (
            f"SIP source {change.source} blocked for {settings.block_seconds} s after {change.value} "
            "failed authentications (password guessing?)"
        )
        cleared = f"SIP source {change.source} is no longer blocked"
    else:
        code, limit = "sip.flood", float(min(settings.register_limit, settings.invite_limit))
        raised = (
            f"SIP source {change.source} sends more than its limit of REGISTER/INVITE per "
            f"{settings.rate_window} s; the excess is dropped"
        )
        cleared = f"SIP source {change.source} is back under its rate limit"
    if change.active:
        return AlertRaised(code=code, message=raised, value=float(change.value), limit=limit)
    return AlertCleared(code=code, message=cleared, value=0.0, limit=limit)


class Edge:
    """The proxy as the server sees it: maybe a supervised child, always a watcher.

    ``publish`` gets agent.registered/unregistered and alert.raised/cleared;
    ``agent_states()`` gives agent id -> (state, contact being rung) from the router;
    ``park(agent_id)`` puts an agent not_ready with reason "unregistered"."""

    def __init__(
        self,
        config: Config,
        publish: Callable[[Any], None],
        agent_states: Callable[[], dict[str, tuple[str, str]]],
        park: Callable[[str], None],
    ) -> None:
        assert config.proxy is not None
        self.config = config
        self.settings = config.proxy
        self._publish = publish
        self._agent_states = agent_states
        self._park = park
        self._aors = {a.id: aor_uri(config, a.id) for a in config.acd.agents}
        self._run_dir = Path(tempfile.mkdtemp(prefix="hotline-edge-"))  # short: unix socket paths
        self.paths = default_paths(config, self._run_dir if self.settings.managed else None)
        self.supervisor = (
            ProxySupervisor(config, self.paths, self._run_dir, self._proxy_changed)
            if self.settings.managed
            else None
        )
        self.rpc = (
            self.supervisor.rpc
            if self.supervisor is not None
            else KamailioRpc(self.paths.rpc_socket, self._run_dir)
        )
        self.watcher = EdgeWatcher(
            self.rpc,
            list(self._aors),
            self.settings.poll_interval,
            self._registrations,
            self._guard,
            self._poll,
        )

    def is_up(self) -> bool:
        """For readiness checks: the managed Kamailio runs (always True when not managed)."""
        return self.supervisor.is_up() if self.supervisor is not None else True

    def is_registered(self, agent_id: str) -> bool:
        return self.watcher.registrations.is_registered(agent_id)

    def _proxy_changed(self, up: bool, message: str) -> None:
        """The managed Kamailio died (alert.raised sip.proxy_down) or came back (cleared)."""
        restarts = float(self.supervisor.restarts if self.supervisor is not None else 0)
        if up:
            self._publish(AlertCleared(code="sip.proxy_down", message=message, value=restarts, limit=0.0))
        else:
            self._publish(AlertRaised(code="sip.proxy_down", message=message, value=restarts, limit=0.0))

    def _registrations(self, events: list[RegistrationEvent]) -> None:
        for event in events:
            log.info(event.wire, agent_id=event.agent_id, contact=event.contact, user_agent=event.user_agent)
            self._publish(event)

    def _guard(self, changes: list[GuardChange]) -> None:
        for change in changes:
            alert = guard_alert(change, self.settings)
            (log.warning if change.active else log.info)(
                "sip_guard", kind=change.kind, source=change.source, active=change.active, value=change.value
            )
            self._publish(alert)

    def _poll(self) -> None:
        states = self._agent_states()
        registering = [aid for aid, (_state, contact) in states.items() if contact == self._aors.get(aid)]
        registered = {aid for aid in registering if self.is_registered(aid)}
        for agent_id in agents_to_park({a: s for a, (s, _c) in states.items()}, registering, registered):
            log.info("agent_parked_unregistered", agent_id=agent_id)
            self._park(agent_id)

    async def start(self) -> None:
        """Store the configured HA1s, start Kamailio (managed) and the watcher."""
        configured = [(a.id, a.ha1) for a in self.config.acd.agents if a.ha1]
        store = credentials.CredentialStore(self.paths.auth_db)
        warnings = await asyncio.to_thread(store.sync_config, configured, self.settings.realm, time.time())
        for warning in warnings:
            log.warning("sip_credentials_stale", message=warning)
        if self.supervisor is not None:
            await self.supervisor.start()
        await self.watcher.poll_once()
        self.watcher.start()

    async def stop(self) -> None:
        await self.watcher.stop()
        if self.supervisor is not None:
            await self.supervisor.stop()
        else:
            self.rpc.close()
        shutil.rmtree(self._run_dir, ignore_errors=True)


def build_edge(
    config: Config,
    publish: Callable[[Any], None],
    agent_states: Callable[[], dict[str, tuple[str, str]]],
    park: Callable[[str], None],
) -> Edge | None:
    """The one wiring point: None without a [proxy] table."""
    if config.proxy is None:
        return None
    return Edge(config, publish, agent_states, park)
