"""Agents' SIP credentials: HA1 digests in hotline's database, read by Kamailio's auth_db.

Only ``HA1 = md5(username:realm:password)`` is ever stored (RFC 2617/7616 MD5 digest,
what every softphone speaks). Kamailio reads the ``sip_subscriber`` table of the same
SQLite file directly (``auth_db`` over ``db_sqlite``), so a password set with
``hotline agents passwd ID`` counts from the next REGISTER, without a restart.

- :func:`ha1` is the pure part.
- :class:`CredentialStore` is the adapter (stdlib ``sqlite3``: a few rows, written at
  start-up and by the CLI; the server calls it through ``asyncio.to_thread``).
- :func:`cli_main` is ``hotline agents ...``.
"""

from __future__ import annotations

import argparse
import getpass
import sqlite3
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .config import ha1

TABLE = "sip_subscriber"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id          INTEGER PRIMARY KEY,
    username    TEXT NOT NULL UNIQUE,   -- the agent id; the softphone's SIP user
    domain      TEXT NOT NULL DEFAULT '',
    ha1         TEXT NOT NULL,          -- md5(username:realm:password), hex
    realm       TEXT NOT NULL,          -- the realm the HA1 was made for
    source      TEXT NOT NULL,          -- 'passwd' (CLI) or 'config' (config.toml, hashed at load)
    updated_at  REAL NOT NULL           -- epoch seconds
);
-- Kamailio's db API checks table versions here (auth_db wants 7 for its subscriber shape)
CREATE TABLE IF NOT EXISTS version (
    table_name    TEXT NOT NULL PRIMARY KEY,
    table_version INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO version (table_name, table_version) VALUES ('{TABLE}', 7);
"""


@dataclass(frozen=True, slots=True)
class Credential:
    username: str  # the agent id
    ha1: str  # hex digest
    realm: str  # realm of the digest
    source: str  # "passwd" or "config"


class CredentialStore:
    """The ``sip_subscriber`` table of hotline's SQLite database."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        return conn

    def set(self, username: str, digest: str, realm: str, source: str, now: float) -> None:
        conn = self._connect()
        try:
            conn.execute(
                f"INSERT INTO {TABLE} (username, ha1, realm, source, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(username) DO UPDATE SET ha1 = excluded.ha1, realm = excluded.realm, "
                "source = excluded.source, updated_at = excluded.updated_at",
                (username, digest, realm, source, now),
            )
        finally:
            conn.close()

    def remove(self, username: str) -> bool:
        conn = self._connect()
        try:
            return conn.execute(f"DELETE FROM {TABLE} WHERE username = ?", (username,)).rowcount > 0
        finally:
            conn.close()

    def all(self) -> dict[str, Credential]:
        conn = self._connect()
        try:
            rows = conn.execute(f"SELECT username, ha1, realm, source FROM {TABLE}").fetchall()
        finally:
            conn.close()
        return {r[0]: Credential(username=r[0], ha1=r[1], realm=r[2], source=r[3]) for r in rows}

    def sync_config(self, configured: Iterable[tuple[str, str]], realm: str, now: float) -> list[str]:
        """Write the HA1s given in config.toml (agent id, HA1); return warnings for stored
        credentials made for another realm (those phones cannot register any more)."""
        for username, digest in configured:
            self.set(username, digest, realm, "config", now)
        return [
            f"agent {c.username}: its SIP password was set for realm {c.realm!r}, not {realm!r}; "
            f"set it again with `hotline agents passwd {c.username}`"
            for c in self.all().values()
            if c.realm != realm
        ]


def cli_main(argv: list[str]) -> int:
    """``hotline agents passwd ID [--config FILE] [--password-stdin]`` and ``agents list``."""
    from .config import ProxyConfig, load_config_or_report

    ap = argparse.ArgumentParser(prog="hotline agents", description="agents' SIP credentials")
    sub = ap.add_subparsers(dest="action", required=True)
    pw = sub.add_parser("passwd", help="set an agent's SIP password (stored as HA1 only)")
    pw.add_argument("agent", help="the agent id (its softphone's SIP username)")
    pw.add_argument("--config", default="config.toml")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    ls = sub.add_parser("list", help="agents, and whether each has SIP credentials")
    ls.add_argument("--config", default="config.toml")
    args = ap.parse_args(argv)
    config = load_config_or_report(args.config)
    if config is None:
        return 2
    realm = (config.proxy or ProxyConfig()).realm
    store = CredentialStore(config.path(config.storage.database))
    agents = {a.id: a for a in config.acd.agents}
    if args.action == "list":
        stored = store.all()
        for agent_id in agents:
            c = stored.get(agent_id)
            state = "no SIP password" if c is None else f"HA1 from {c.source}, realm {c.realm}"
            print(f"{agent_id}\t{state}")
        return 0
    if args.agent not in agents:
        print(
            f"hotline: no agent {args.agent!r} in {args.config}; add an [[acd.agents]] entry first",
            file=sys.stderr,
        )
        return 2
    if agents[args.agent].ha1:
        print(
            f"hotline: warning: {args.config} sets agent {args.agent}'s password; it wins at the next "
            "start. Remove password/ha1 there to keep this one.",
            file=sys.stderr,
        )
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"SIP password for agent {args.agent}: ")
        if getpass.getpass("again: ") != password:
            print("hotline: the passwords differ; nothing changed", file=sys.stderr)
            return 1
    if len(password) < 8:
        print("hotline: a SIP password needs at least 8 characters; nothing changed", file=sys.stderr)
        return 1
    store.set(args.agent, ha1(args.agent, realm, password), realm, "passwd", time.time())
    print(f"agent {args.agent}: SIP password set (HA1 for realm {realm}); it counts from the next REGISTER")
    return 0
