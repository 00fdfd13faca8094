"""Kamailio in front of hotline: the config it runs, rendered from ``config.toml``.

- :func:`render` fills ``hotline/kamailio.cfg.tmpl`` from ``config.toml`` (pure), and
  :func:`render_dispatcher` lists the workers behind it.
- The addresses and headers the endpoint needs behind it (:func:`outbound_proxy`,
  :func:`aor_uri`, :func:`worker_headers`).
- ``hotline proxy config`` (:func:`print_config`) for an operator who runs their own.

The running edge (the child process, registrations, the guard) is :mod:`hotline.edge`.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import structlog

from . import credentials
from .config import Config

log = structlog.get_logger("proxy")

TEMPLATE = Path(__file__).with_name("kamailio.cfg.tmpl")
MODULE_PATH = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
USRLOC_SCHEMA = Path("/usr/share/kamailio/db_sqlite/usrloc-create.sql")
_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")


class ProxyStartError(Exception):
    """Kamailio could not start; the message says why and what to do."""

    code = "proxy.start_failed"

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason}. Fix: {fix}")
        self.reason = reason
        self.fix = fix


# ------------------------------------------------------------------------------ rendering
@dataclass(frozen=True, slots=True)
class EdgePaths:
    """Where the rendered config puts its files (absolute)."""

    cfg: Path  # the rendered kamailio.cfg
    dispatcher_list: Path  # hotline workers
    location_db: Path  # registrations (SQLite, Kamailio's usrloc schema)
    auth_db: Path  # hotline's database: the sip_subscriber table
    rpc_socket: Path  # Kamailio's JSON-RPC datagram socket


def public_host(config: Config) -> str:
    sip = config.sip
    return sip.public_host or ("127.0.0.1" if sip.host == "0.0.0.0" else sip.host)


def edge_address(config: Config) -> str:
    """host:port where hotline reaches the proxy (on this machine)."""
    host = config.sip.host
    return f"{'127.0.0.1' if host in ('0.0.0.0', '127.0.0.1') else host}:{config.sip.port}"


def aor_uri(config: Config, agent_id: str) -> str:
    """The URI hotline dials to ring an agent wherever its softphone registered."""
    return f"sip:{agent_id}@{edge_address(config)};transport=udp"


def outbound_proxy(config: Config) -> str:
    """The route every request of hotline's takes when it sits behind the proxy."""
    return f"sip:{edge_address(config)};transport=udp;lr"


def backends(config: Config) -> list[str]:
    """hotline workers behind the proxy (one today; the scale-out lists more)."""
    assert config.proxy is not None
    return [f"sip:127.0.0.1:{config.proxy.internal_port};transport=udp"]


WORKER_HEADER = "X-Hotline-Worker"


def worker_token(config: Config) -> str:
    """The secret hotline's own requests carry to the proxy (``X-Hotline-Worker``), kept in
    ``state_dir/worker.secret`` (0600) so an operator-run Kamailio renders the same one."""
    assert config.proxy is not None
    path = config.path(config.proxy.state_dir) / "worker.secret"
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if len(token) < 32:
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
    return token


def worker_headers(config: Config) -> tuple[tuple[str, str], ...]:
    """Headers for every out-of-dialog request hotline sends behind the proxy."""
    return ((WORKER_HEADER, worker_token(config)),) if config.proxy is not None else ()


def default_paths(config: Config, run_dir: Path | None = None) -> EdgePaths:
    assert config.proxy is not None
    p = config.proxy
    state = config.path(p.state_dir).resolve()
    rpc = config.path(p.rpc_socket) if p.rpc_socket else (run_dir or state) / "kamailio_rpc.sock"
    return EdgePaths(
        cfg=state / "kamailio.cfg",
        dispatcher_list=state / "dispatcher.list",
        location_db=state / "location.sqlite",
        auth_db=config.path(config.storage.database).resolve(),
        rpc_socket=rpc,
    )


def _listen_lines(config: Config) -> list[str]:
    assert config.proxy is not None
    sip, p = config.sip, config.proxy
    pub = public_host(config)
    advertise = f" advertise {pub}:{{port}}" if sip.host == "0.0.0.0" or pub != sip.host else ""
    lines = [f"listen={t}:{sip.host}:{sip.port}{advertise.format(port=sip.port)}" for t in sip.transports]
    if p.tls_port:
        lines.append(f"listen=tls:{sip.host}:{p.tls_port}{advertise.format(port=p.tls_port)}")
    return lines


def _alias_lines(config: Config) -> list[str]:
    assert config.proxy is not None
    hosts = dict.fromkeys([public_host(config), "127.0.0.1", "localhost"])
    ports = [config.sip.port] + ([config.proxy.tls_port] if config.proxy.tls_port else [])
    return [f'alias="{h}:{port}"' for h in hosts for port in ports]


def render(config: Config, paths: EdgePaths, template: str | None = None) -> str:
    """kamailio.cfg for this config. Every @@NAME@@ of the template must be filled."""
    assert config.proxy is not None
    p = config.proxy
    values = {
        "FEATURES": "#!define WITH_TLS" if p.tls_port else "# no TLS: [proxy] tls_port = 0",
        "DEBUG": str(p.log_level),
        "CHILDREN": str(p.children),
        "TCP_LIFETIME": str(p.max_expires + 60),
        "TCP_MAX_CONNECTIONS": "4096",
        "LISTEN": "\n".join(_listen_lines(config)),
        "ALIASES": "\n".join(_alias_lines(config)),
        "MODULE_PATH": MODULE_PATH,
        "RPC_SOCKET": str(paths.rpc_socket),
        "LOCATION_DB_URL": f"sqlite://{paths.location_db}",
        "AUTH_DB_URL": f"sqlite://{paths.auth_db}",
        "USRLOC_TIMER": "5",
        "MIN_EXPIRES": str(p.min_expires),
        "MAX_EXPIRES": str(p.max_expires),
        "DEFAULT_EXPIRES": str(p.default_expires),
        "MAX_CONTACTS": str(p.max_contacts),
        "RATE_WINDOW": str(p.rate_window),
        "RATE_EXPIRE": str(2 * p.rate_window),
        "REGISTER_LIMIT": str(p.register_limit),
        "INVITE_LIMIT": str(p.invite_limit),
        "FLOOD_HOLD": str(max(10, 2 * p.rate_window)),
        "AUTH_FAIL_LIMIT": str(p.auth_fail_limit),
        "AUTH_FAIL_WINDOW": str(p.auth_fail_window),
        "BLOCK_SECONDS": str(p.block_seconds),
        "MAX_MESSAGE_SIZE": str(p.max_message_size),
        "REALM": p.realm,
        "SUBSCRIBER_TABLE": credentials.TABLE,
        "WORKER_TOKEN": worker_token(config),
        "DISPATCHER_LIST": str(paths.dispatcher_list),
        "TLS_CERT": str(config.path(p.tls_cert).resolve()),
        "TLS_KEY": str(config.path(p.tls_key).resolve()),
    }
    text = template if template is not None else TEMPLATE.read_text(encoding="utf-8")
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise ValueError(f"kamailio template: no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m[1]], text)


def render_dispatcher(workers: list[str]) -> str:
    """dispatcher.list: set 1 holds the hotline workers."""
    header = "# set destination flags priority attrs (rendered by hotline; set 1 = hotline workers)\n"
    return header + "".join(f"1 {uri} 0 {len(workers) - i}\n" for i, uri in enumerate(workers))


def write_files(config: Config, paths: EdgePaths) -> None:
    """The rendered config, the worker list and an empty registrations database."""
    paths.cfg.parent.mkdir(parents=True, exist_ok=True)
    _write(paths.cfg, render(config, paths))
    _write(paths.dispatcher_list, render_dispatcher(backends(config)))
    init_location_db(paths.location_db)
    credentials.CredentialStore(paths.auth_db).all()  # creates sip_subscriber and version


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def init_location_db(path: Path) -> None:
    """Kamailio's usrloc tables, from the schema its SQLite package installs."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "location" in have:
            return
        if not USRLOC_SCHEMA.is_file():
            raise ProxyStartError(
                f"{USRLOC_SCHEMA} is missing (Kamailio's SQLite schemas)",
                "install kamailio-sqlite-modules: run scripts/setup",
            )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS version (table_name TEXT NOT NULL PRIMARY KEY, "
            "table_version INTEGER NOT NULL DEFAULT 0)"
        )
        conn.executescript(USRLOC_SCHEMA.read_text())
    finally:
        conn.close()


# ------------------------------------------------------------------------------- JSON-RPC
def print_config(argv: list[str]) -> int:
    """``hotline proxy config [--config FILE] [--write]``: the rendered kamailio.cfg."""
    import argparse
    import sys

    from .config import load_config_or_report

    ap = argparse.ArgumentParser(prog="hotline proxy", description="the Kamailio in front of hotline")
    sub = ap.add_subparsers(dest="action", required=True)
    cfg = sub.add_parser("config", help="print the kamailio.cfg rendered from config.toml")
    cfg.add_argument("--config", default="config.toml")
    cfg.add_argument(
        "--write",
        action="store_true",
        help="also write it, dispatcher.list and the databases to [proxy] state_dir",
    )
    args = ap.parse_args(argv)
    config = load_config_or_report(args.config)
    if config is None:
        return 2
    if config.proxy is None:
        print(f"hotline: {args.config} has no [proxy] table; add one (docs/sip.md)", file=sys.stderr)
        return 2
    paths = default_paths(config)
    if args.write:
        write_files(config, paths)
        print(f"hotline: wrote {paths.cfg}, {paths.dispatcher_list} and {paths.location_db}", file=sys.stderr)
    sys.stdout.write(render(config, paths))
    return 0
