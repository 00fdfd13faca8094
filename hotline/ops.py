"""Operations: metrics, health, readiness and alerts for a running server (an adapter).

:class:`Operations` reads the server's parts (calls, router, statistics, endpoint, speech,
MQTT, outbox) into a :class:`~hotline.metrics.Snapshot` at scrape time, steps the alert engine
(the pure `alerts` core) every few seconds and publishes what it returns, and answers the
HTTP port's ``/metrics``, ``/health`` and ``/ready``. It decides nothing the cores decide.

The server object is read duck-typed (``calls``, ``router``, ``stats``, ``endpoint``,
``speech``, ``mqtt``, ``bus``, ``flow``, ``config``): the few attributes are listed in
:meth:`Operations.snapshot` and the checks, so the call controller can provide the same.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from typing import Any, Protocol

import structlog

import acd
import alerts

from .metrics import CONTENT_TYPE, HotlineMetrics, Snapshot, alert_samples

log = structlog.get_logger("ops")

HEARTBEAT = 0.5  # seconds between loop heartbeats
LOOP_STALL = 2.0  # seconds without a heartbeat: the loop is not turning (health fails)
PUMP_STALL = 1.0  # seconds without a pjsua2 pump: SIP is not being served (health fails)
ALERT_EVERY = 2.0  # seconds between alert evaluations (and at each pending deadline)
DB_PROBE_TIMEOUT = 1.0  # seconds the readiness write may wait for the database lock


class ProxySupervisor(Protocol):
    """What /ready needs of a managed SIP proxy (the Kamailio supervisor)."""

    def is_up(self) -> bool: ...


Check = dict[str, Any]  # {"ok": bool, "detail": str}


def _check(ok: bool, detail: str) -> Check:
    return {"ok": bool(ok), "detail": detail}


def rules_from_config(config: Any) -> list[alerts.Rule]:
    """[[alerts]] as rules, or the built-in ones when the table is absent."""
    if config.alerts is None:
        return alerts.default_rules(
            service_level_target=config.stats.service_level_target, mqtt=config.mqtt is not None
        )
    return [
        alerts.Rule(
            metric=r.metric,
            threshold=r.threshold,
            for_seconds=r.for_seconds,
            severity=r.severity,
            queue=r.queue,
        )
        for r in config.alerts
    ]


class Operations:
    def __init__(self, server: Any, *, supervisor: ProxySupervisor | None = None) -> None:
        self.server = server
        self.supervisor = supervisor  # a managed SIP proxy: /ready checks it is up
        self.metrics = HotlineMetrics(self.snapshot)
        self.engine = alerts.build_alerts(rules_from_config(server.config))
        self.metrics_public = bool(server.config.http.metrics_public)
        self.content_type = CONTENT_TYPE
        self._active: dict[tuple[str, str, str], None] = {}  # alerts raised, any origin (speech too)
        self._last_beat: float | None = None
        self._beat: asyncio.TimerHandle | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._mqtt_down_since: float | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._heartbeat()
        self._tick = asyncio.get_running_loop().call_later(ALERT_EVERY, self.evaluate_alerts)

    def stop(self) -> None:
        for handle in (self._beat, self._tick):
            if handle is not None:
                handle.cancel()
        self._beat = self._tick = None

    def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_beat = loop.time()
        self._beat = loop.call_later(HEARTBEAT, self._heartbeat)

    # -------------------------------------------------------------- alerts
    def observe_event(self, envelope: dict[str, Any]) -> None:
        """A bus sink: counters, and the set of active alerts (ours and the speech governor's)."""
        self.metrics.observe_event(envelope)
        name = envelope.get("event")
        if name in ("alert.raised", "alert.cleared"):
            d = envelope.get("data") or {}
            key = (str(d.get("code", "")), str(d.get("severity", "warning")), str(d.get("queue") or ""))
            if name == "alert.raised":
                self._active[key] = None
            else:
                self._active.pop(key, None)

    def evaluate_alerts(self) -> list[alerts.Alert]:
        """Step the rules on the current figures; publish each transition."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        found = self.engine.evaluate(alert_samples(self.snapshot()), now)
        for alert in found:
            level = log.error if alert.severity == "critical" else log.warning
            level("alert", wire=alert.wire, code=alert.code, queue=alert.queue, message=alert.message)
            self.server.bus.publish(alert)
        deadline = self.engine.next_deadline()
        delay = ALERT_EVERY if deadline is None else min(ALERT_EVERY, max(0.05, deadline - now))
        if self._tick is not None:
            self._tick.cancel()
        self._tick = loop.call_later(delay, self.evaluate_alerts)
        return found

    # ------------------------------------------------------------- figures
    def snapshot(self) -> Snapshot:
        s = self.server
        wall = time.time()
        phases = s.controller.phase_counts()  # every phase, zeros included
        waiting: dict[str, int] = {}
        longest: dict[str, float] = {}
        agents: dict[tuple[str, str], int] = {}
        sl: dict[str, float | None] = {}
        asa: dict[str, float | None] = {}
        abandon: dict[str, float | None] = {}
        for queue in s.router.queues:
            f = s.controller.stats.queue_figures(queue, wall)
            waiting[queue], longest[queue] = int(f["waiting"]), float(f["longest_wait"] or 0.0)
            for state, n in f["agents"].items():
                agents[(queue, state)] = int(n)
            interval = f["interval"]
            sl[queue], asa[queue], abandon[queue] = (
                interval["sl_offered"],
                interval["asa"],
                interval["abandon_rate"],
            )
        backlog = lag = disconnected = None
        connected: bool | None = None
        mqtt = s.mqtt
        if mqtt is not None:
            connected = bool(mqtt.connected)
            backlog = max(0, s.bus.seq - mqtt.cursor)
            lag = 0.0
            if backlog:
                rows = s.bus.outbox.read_after(mqtt.cursor, 1)
                if rows:
                    from .queuelog import epoch

                    lag = max(0.0, wall - epoch(_time_of(rows[0][2])))
            if connected:
                self._mqtt_down_since = None
            elif self._mqtt_down_since is None:
                self._mqtt_down_since = wall
            disconnected = 0.0 if connected else wall - (self._mqtt_down_since or wall)
        try:
            usage = shutil.disk_usage(s.recordings)
            disk: float | None = usage.free / usage.total if usage.total else None
        except OSError:
            disk = None
        return Snapshot(
            calls_by_phase=dict(phases),
            waiting=waiting,
            longest_wait=longest,
            agents=agents,
            service_level=sl,
            asa=asa,
            abandon_rate=abandon,
            sip_legs=int(s.endpoint.active_legs),
            speech_streams=int(s.speech.governor.live) if s.speech is not None else 0,
            outbox_backlog=backlog,
            mqtt_lag_seconds=lag,
            mqtt_connected=connected,
            mqtt_disconnected_seconds=disconnected,
            disk_free=disk,
            alerts_active=list(self._active),
        )

    def render_metrics(self) -> bytes:
        return self.metrics.render()

    # -------------------------------------------------- health and readiness
    async def health(self) -> tuple[bool, dict[str, Check]]:
        """Live: the event loop turns and pjsua2 is being pumped."""
        now = asyncio.get_running_loop().time()
        beat = self._last_beat
        loop_ok = beat is not None and now - beat < LOOP_STALL
        checks = {
            "loop": _check(loop_ok, "turning" if loop_ok else "no heartbeat: the event loop was stalled")
        }
        pumped = getattr(self.server.endpoint, "last_pump", None)
        pump_ok = pumped is not None and now - pumped < PUMP_STALL
        checks["sip_pump"] = _check(
            pump_ok,
            f"pumped {1000 * (now - pumped):.0f} ms ago"
            if pumped is not None
            else "pjsua2 is not being pumped (SIP not started)",
        )
        return all(c["ok"] for c in checks.values()), checks

    async def ready(self) -> tuple[bool, dict[str, Check]]:
        """Ready for calls: SIP bound, flows loaded, database writable, proxy up when managed."""
        s = self.server
        bound = bool(getattr(s.endpoint, "bound", False))
        checks = {
            "sip": _check(bound, f"listening on port {s.config.sip.port}" if bound else "SIP is not bound"),
        }
        flow = s.controller.flow if s.controller.flows else None
        checks["flows"] = _check(
            flow is not None,
            f"main flow {flow.name} version {flow.version}" if flow is not None else "no main flow loaded",
        )
        database = s.config.path(s.config.storage.database)
        error = await asyncio.to_thread(_probe_write, str(database))
        checks["database"] = _check(error is None, "writable" if error is None else f"{database}: {error}")
        if self.supervisor is not None:
            try:
                up = bool(self.supervisor.is_up())
                detail = "up" if up else "the managed SIP proxy is down"
            except Exception as exc:  # a broken probe is a failing check, not a 500
                up, detail = False, f"cannot ask the proxy supervisor: {type(exc).__name__}: {exc}"
            checks["proxy"] = _check(up, detail)
        return all(c["ok"] for c in checks.values()), checks


def _time_of(line: str) -> str:
    import json

    return str(json.loads(line)["time"])


def _probe_write(path: str) -> str | None:
    """None when the database can be written, else why not. First access(2) on the file and
    its directory, which sees permissions, a read-only mount and the immutable flag even for
    root (SQLite would reuse this process's open read-write descriptor and not notice; and
    opening and closing the file ourselves would drop SQLite's POSIX locks). Then one row
    written in a new connection: a locked or broken database."""
    import os

    for target in (path, os.path.dirname(path) or "."):
        if os.path.exists(target) and not os.access(target, os.W_OK):
            return f"{target} is read-only (permissions, a read-only mount, or the immutable flag)"
    try:
        con = sqlite3.connect(path, timeout=DB_PROBE_TIMEOUT)
        try:
            con.execute("CREATE TABLE IF NOT EXISTS ops_ready (id INTEGER PRIMARY KEY, at REAL NOT NULL)")
            con.execute("INSERT OR REPLACE INTO ops_ready (id, at) VALUES (1, ?)", (time.time(),))
            con.commit()
        finally:
            con.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None


class TimedRouter(acd.Router):
    """The ACD router as the call controller drives it, timed for /metrics: every step's
    latency and decisions (offers, overflows, callback dials). Measuring is the adapter's
    part; the router and the controller stay clock-free."""

    metrics: HotlineMetrics | None = None

    def handle(self, event: acd.events.Input, now: float) -> list[acd.events.Output]:
        started = time.perf_counter()
        outputs = super().handle(event, now)
        if self.metrics is not None:
            self.metrics.routed(time.perf_counter() - started, outputs)
        return outputs

    def on_timer(self, now: float) -> list[acd.events.Output]:
        started = time.perf_counter()
        outputs = super().on_timer(now)
        if self.metrics is not None and outputs:
            self.metrics.routed(time.perf_counter() - started, outputs)
        return outputs
