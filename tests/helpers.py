"""Shared test helpers: a fake clock, a CTI client, a poll-until with a deadline, a broken TTS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class FakeClock:
    now: float = 0.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@dataclass
class CtiClient:
    """An NDJSON client of the CTI socket, as an integrator would write one."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    events: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[Any, dict[str, Any]] = field(default_factory=dict)
    other: list[dict[str, Any]] = field(default_factory=list)
    _next_id: int = 0
    _task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> CtiClient:
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        client._task = asyncio.create_task(client._read())
        return client

    @classmethod
    async def session(cls, server: Any, events: list[str] | None = None) -> CtiClient:
        """Connected to a HotlineProcess, authenticated, and subscribed to ``events`` (default all)."""
        client = await cls.connect(server.cti_port)
        assert (await client.request("auth", token=server.token))["ok"]
        assert (await client.request("subscribe", events=events or ["*"]))["ok"]
        return client

    async def _read(self) -> None:
        while line := await self.reader.readline():
            msg = json.loads(line)
            if "seq" in msg and "event" in msg:
                self.events.append(msg)
            elif "id" in msg and msg.get("id") is not None and "ok" in msg:
                self.replies[msg["id"]] = msg
            else:
                self.other.append(msg)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, cmd: str, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
        self._next_id += 1
        rid = self._next_id
        await self.send_raw((json.dumps({"id": rid, "cmd": cmd, **args}) + "\n").encode())
        return await self.wait_for(lambda: self.replies.get(rid), timeout, f"reply to {cmd}")

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                seen = "\n".join(json.dumps(e) for e in self.events[-40:])
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; the last events:\n{seen}"
                )
            await asyncio.sleep(0.02)

    async def wait_event(self, name: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for e in self.events:
                if e["event"] == name and all(
                    e.get(k) == v or e["data"].get(k) == v for k, v in match.items()
                ):
                    return e
            return None

        return await self.wait_for(find, timeout, f"{name} {match}")

    async def close(self) -> None:
        self.writer.close()
        if self._task is not None:
            self._task.cancel()


ROOT = Path(__file__).resolve().parent.parent
STOCK_PROMPTS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")  # asterisk-core-sounds-en-wav
DEFAULT_PROMPT_DIRS = (ROOT / "flows" / "prompts", STOCK_PROMPTS)  # as the shipped config.toml has them


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (SIP listens on both)."""
    from .peers import free_sip_port

    return free_sip_port()


@dataclass
class HotlineProcess:
    """The real server (`python -m hotline run`) on free ports, with its own config."""

    workdir: Path
    agents: list[dict[str, Any]]
    queues: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"name": "sales", "skills": ["sales"], "ring_timeout": 6, "wrap_up": 1},
            {"name": "support", "skills": ["support"], "ring_timeout": 6, "wrap_up": 1},
            {"name": "operator", "skills": [], "ring_timeout": 6, "wrap_up": 1},
            # the shipped main flow sends assisted and priority callers here
            {"name": "care", "skills": ["certified"], "ring_timeout": 6, "wrap_up": 1},
        ]
    )
    flows_dir: Any = None  # default: the shipped flows/
    main_flow: str = "main"
    token: str = "test-token"
    log_level: str = "debug"
    extra_toml: str = ""  # appended to the generated config
    auto_answer: bool = True  # [sip] auto_answer
    prompt_dirs: list[Path] | None = None  # [prompts] directories; default: flows/prompts, the stock set
    whole_call: bool = False  # [recordings] whole_call
    launcher: list[str] | None = None  # runs instead of [python, -m, hotline] (bench/memory.py traces it)
    sip_options: dict[str, Any] = field(default_factory=dict)  # more [sip] keys, e.g. {"max_calls": 200}
    sip_port: int = 0  # the public SIP port (Kamailio's with proxy=True)
    cti_port: int = 0
    http_port: int = 0
    proxy: bool = False  # run behind the managed Kamailio ([proxy] table): registrar, TLS, guard
    proxy_toml: str = ""  # extra [proxy] keys, one per line
    tls_port: int = 0  # with proxy: SIP over TLS
    internal_port: int = 0  # with proxy: hotline's own SIP port on loopback
    proc: Any = None

    def config_text(self) -> str:
        def toml_value(v: Any) -> str:
            if isinstance(v, bool):
                return str(v).lower()
            if isinstance(v, dict):
                return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
            if isinstance(v, list):
                return "[" + ", ".join(toml_value(x) for x in v) + "]"
            return json.dumps(v)

        lines = [
            "[server]",
            'log_format = "json"',
            f'log_level = "{self.log_level}"',
            "[sip]",
            'host = "127.0.0.1"',
            f"port = {self.sip_port}",
            f"rtp_port = {free_port()}",
            f"auto_answer = {str(self.auto_answer).lower()}",
            *(f"{k} = {toml_value(v)}" for k, v in self.sip_options.items()),
            "[cti]",
            'host = "127.0.0.1"',
            f"port = {self.cti_port}",
            f"http_port = {self.http_port}",
            "[[cti.tokens]]",
            'name = "tests"',
            f'secret = "{self.token}"',
            'scopes = ["admin"]',
            "[storage]",
            'database = "hotline.db"',
            "[recordings]",
            'directory = "recordings"',
            f"whole_call = {str(self.whole_call).lower()}",
            "[flows]",
            f'directory = "{self.flows_dir or ROOT / "flows"}"',
            f'main = "{self.main_flow}"',
            "[prompts]",
            f"directories = {toml_value([str(d) for d in self.prompt_dirs or DEFAULT_PROMPT_DIRS])}",
            'tts_cache = "tts"',
        ]
        if self.proxy:
            cert, key = demo_certificate()
            lines += [
                "[proxy]",
                f"internal_port = {self.internal_port}",
                f"tls_port = {self.tls_port}",
                f'tls_cert = "{cert}"',
                f'tls_key = "{key}"',
                "poll_interval = 0.25",
                "restart_delay = 0.5",
                self.proxy_toml,
            ]
        for table, rows in (("acd.queues", self.queues), ("acd.agents", self.agents)):
            for row in rows:
                lines.append(f"[[{table}]]")
                lines.extend(f"{k} = {toml_value(v)}" for k, v in row.items())
        return "\n".join(lines) + "\n" + self.extra_toml

    def start(self, timeout: float = 20.0) -> HotlineProcess:
        self.sip_port = self.sip_port or free_port()
        self.cti_port = self.cti_port or free_port()
        self.http_port = self.http_port or free_port()
        if self.proxy:
            self.tls_port = self.tls_port or free_port()
            self.internal_port = self.internal_port or free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.toml"
        config.write_text(self.config_text())
        self.log_path = self.workdir / "hotline.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*(self.launcher or [sys.executable, "-m", "hotline"]), "run", "--config", str(config)],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"hotline exited with {self.proc.returncode}:\n{self.log()}")
            return b'"hotline_started"' in self.log_path.read_bytes()

        until(ready, timeout, what="hotline to start")
        with socket.create_connection(("127.0.0.1", self.cti_port), timeout=2):
            pass
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-20000:]

    def log_events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, and the exit code: 0 means the shutdown order held (no abort)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code

    def kill(self) -> None:
        """SIGKILL: the crash case (nothing gets to clean up)."""
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    @property
    def db(self) -> Path:
        return self.workdir / "hotline.db"

    @property
    def recordings(self) -> Path:
        return self.workdir / "recordings"


_CERT_DIR = Path(tempfile.gettempdir()) / "hotline-test-certs"


def demo_certificate() -> tuple[Path, Path]:
    """A self-signed certificate and key for SIP over TLS in tests (made once per machine)."""
    cert, key = _CERT_DIR / "sip.crt", _CERT_DIR / "sip.key"
    if not (cert.exists() and key.exists()):
        _CERT_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
             "-subj", "/CN=hotline-test", "-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return cert, key


def broken_render(text: str, voice: str, rate: int, clock_rate: int, out: str) -> str:
    """Stands in for ``telephony.tts._render`` (monkeypatched): the TTS worker process imports
    it from here by name and raises, as a crashing espeak-ng would."""
    raise RuntimeError(f"espeak-ng exploded on {voice}")
