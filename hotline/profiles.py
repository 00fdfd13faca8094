"""Caller profiles, recent contacts and returning callers.

- **Pure core** (no I/O, time is an argument): number normalization, CSV row
  validation, :func:`resume_offer` (should a returning caller be offered to
  resume?) and :func:`caller_variables` (what the flow sees as ``caller``).
- **Adapters**: :func:`import_csv` (sync ``sqlite3``, for the CLI),
  :class:`ProfileStore` (``aiosqlite`` and an optional HTTP lookup via
  ``aiohttp``, for the server), and :func:`cli_main` (``hotline profiles``).

The tables live in the server's SQLite file next to ``calls`` (WAL mode, so
the CLI can import while the server runs). See docs/profiles.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import re
import sqlite3
import sys
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
import aiosqlite
import structlog

from . import untrusted
from .csvimport import ImportReport, RowError, csv_rows, open_csv, open_sync, upsert_all
from .numbers import mask_number, normalize_number

log = structlog.get_logger("hotline.profiles")

SCHEMA = """
CREATE TABLE IF NOT EXISTS caller_profiles (
    number         TEXT PRIMARY KEY,                 -- normalized: digits, optional leading +
    tier           TEXT NOT NULL DEFAULT 'standard', -- one of the configured tiers
    assisted       INTEGER NOT NULL DEFAULT 0 CHECK (assisted IN (0, 1)),       -- elderly/assisted
    language       TEXT NOT NULL DEFAULT '',         -- preferred prompt language; '' = the flow's
    priority_human INTEGER NOT NULL DEFAULT 0 CHECK (priority_human IN (0, 1)), -- straight to a human
    name           TEXT NOT NULL DEFAULT '',         -- shown to agents; not spoken
    notes          TEXT NOT NULL DEFAULT '',         -- for staff only; never in flow variables
    updated_at     TEXT NOT NULL                     -- ISO 8601 UTC of the last import touching it
);
CREATE TABLE IF NOT EXISTS caller_contacts (
    call_id         TEXT PRIMARY KEY,
    number          TEXT NOT NULL,                   -- normalized caller number
    ended_at        REAL NOT NULL,                   -- epoch seconds
    flow            TEXT,                            -- flow name the call ran
    flow_version    TEXT,                            -- its content hash
    last_node       TEXT,                            -- last IVR node ("flow/node" inside a subflow)
    queue           TEXT,                            -- queue the call was in, if any
    priority        INTEGER,                         -- its priority in that queue
    waited_seconds  REAL NOT NULL DEFAULT 0,         -- seconds spent in that queue
    agent_id        TEXT,                            -- last agent offered the call, if any
    agent_connected INTEGER NOT NULL DEFAULT 0,      -- 1 if an agent answered
    cause           TEXT NOT NULL                    -- call.ended cause
);
CREATE INDEX IF NOT EXISTS caller_contacts_by_number ON caller_contacts (number, ended_at);
CREATE TABLE IF NOT EXISTS caller_sentiment (
    call_id   TEXT PRIMARY KEY,
    number    TEXT NOT NULL,                         -- normalized caller number
    at        REAL NOT NULL,                         -- epoch seconds the call's QA finished
    score     REAL NOT NULL,                         -- -1 (negative) .. 1 (positive), docs/analytics.md
    label     TEXT NOT NULL                          -- negative, neutral, positive
);
CREATE INDEX IF NOT EXISTS caller_sentiment_by_number ON caller_sentiment (number, at);
"""

DEFAULT_TIERS = ("standard", "silver", "gold", "platinum")
# what an unknown caller, or a profile missing a field, reads as
PROFILE_DEFAULTS: dict[str, Any] = {
    "tier": "standard",
    "assisted": False,
    "language": "",
    "priority_human": False,
    "name": "",
}
COLUMNS = ("number", "tier", "assisted", "language", "priority_human", "name", "notes")
_TRUE = {"1", "true", "yes", "y", "t", "x"}
_FALSE = {"", "0", "false", "no", "n", "f"}
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")


class ProfileError(Exception):
    """Base of the errors of caller profiles."""

    code = "profiles.error"


# ------------------------------------------------------------------ pure core
def parse_bool(raw: str) -> bool | None:
    value = raw.strip().lower()
    return True if value in _TRUE else False if value in _FALSE else None


def validate_row(
    row: Mapping[str, str], line: int, tiers: Collection[str]
) -> tuple[dict[str, Any] | None, list[RowError]]:
    """One CSV row -> column values to store (only the columns present), or errors."""
    errors: list[RowError] = []
    out: dict[str, Any] = {}
    raw_number = (row.get("number") or "").strip()
    number = normalize_number(raw_number)
    if number is None:
        errors.append(
            RowError(line, "number", f"'{raw_number}' is not a phone number (digits, an optional leading +)")
        )
    out["number"] = number
    if "tier" in row:
        tier = (row["tier"] or "").strip().lower() or "standard"
        if tier not in tiers:
            errors.append(
                RowError(line, "tier", f"'{row['tier']}' is not a tier; use one of {', '.join(tiers)}")
            )
        out["tier"] = tier
    for col in ("assisted", "priority_human"):
        if col in row:
            value = parse_bool(row[col] or "")
            if value is None:
                errors.append(
                    RowError(line, col, f"'{row[col]}' is not a yes/no value; use 1/0, yes/no or true/false")
                )
            out[col] = value
    if "language" in row:
        language = (row["language"] or "").strip()
        if language and not _LANGUAGE.fullmatch(language):
            errors.append(RowError(line, "language", f"'{language}' is not a language tag like en or zh-CN"))
        out["language"] = language
    for col in ("name", "notes"):
        if col in row:
            out[col] = (row[col] or "").strip()
    return (None if errors else out), errors


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    """One finished call of a number, as recorded for returning-caller decisions."""

    call_id: str
    number: str  # normalized caller number
    ended_at: float  # epoch seconds
    cause: str  # call.ended cause: abandoned, caller_hangup, failed, ...
    flow: str | None = None  # flow name the call ran
    flow_version: str | None = None  # content hash of that flow
    last_node: str | None = None  # last IVR node visited
    queue: str | None = None  # queue the call was in
    priority: int | None = None  # its priority in that queue
    waited_seconds: float = 0.0  # seconds spent in that queue
    agent_id: str | None = None  # last agent offered the call
    agent_connected: bool = False  # an agent answered

    def as_variable(self, now_wall: float) -> dict[str, Any]:
        """The contact as a flow sees it in ``caller.recent``."""
        return {
            "call_id": self.call_id,
            "minutes_ago": int(max(0.0, now_wall - self.ended_at) // 60),
            "cause": self.cause,
            "queue": self.queue or "",
            "last_node": self.last_node or "",
            "served": self.agent_connected,
            "agent_id": self.agent_id if self.agent_connected else "",  # who served it (preferred agent)
        }


@dataclass(frozen=True, slots=True)
class ResumePolicy:
    window: float = 600.0  # seconds after a dropped call during which a call back may resume
    drop_causes: frozenset[str] = frozenset({"abandoned", "caller_hangup", "failed", "shutdown"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeOffer:
    """Where a returning caller could pick up. ``kind`` "queue": their place in line
    (same queue, original priority, credit for time waited); "node": the last IVR node."""

    kind: Literal["queue", "node"]
    call_id: str  # the dropped call
    seconds_ago: float  # since it ended
    flow: str | None  # flow and version the dropped call ran
    flow_version: str | None
    node: str | None  # kind "node": the node to resume at
    queue: str | None  # kind "queue": the queue to re-enter
    priority: int | None  # kind "queue": the priority it had
    waited_seconds: float  # kind "queue": seconds already waited

    def as_variable(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "call_id": self.call_id,
            "minutes_ago": int(self.seconds_ago // 60),
            "node": self.node or "",
            "queue": self.queue or "",
            "priority": self.priority if self.priority is not None else 0,
        }


def resume_offer(
    contacts: Iterable[Contact],
    now_wall: float,
    policy: ResumePolicy = ResumePolicy(),
    *,
    node_exists: Callable[[str, str], bool] | None = None,
) -> ResumeOffer | None:
    """Offer a resume if the number's *latest* call dropped within ``policy.window``
    before an agent answered. A later served call cancels any earlier drop.

    ``node_exists(flow, node)`` lets the caller refuse a node that a reload removed.
    """
    latest = max(contacts, key=lambda c: c.ended_at, default=None)
    if latest is None or latest.cause not in policy.drop_causes or latest.agent_connected:
        return None
    ago = max(0.0, now_wall - latest.ended_at)
    if ago > policy.window:
        return None
    if latest.queue:
        kind: Literal["queue", "node"] = "queue"
    elif latest.last_node and (
        node_exists is None or (latest.flow is not None and node_exists(latest.flow, latest.last_node))
    ):
        kind = "node"
    else:
        return None
    return ResumeOffer(
        kind=kind,
        call_id=latest.call_id,
        seconds_ago=ago,
        flow=latest.flow,
        flow_version=latest.flow_version,
        node=latest.last_node if kind == "node" else None,
        queue=latest.queue if kind == "queue" else None,
        priority=latest.priority if kind == "queue" else None,
        waited_seconds=latest.waited_seconds if kind == "queue" else 0.0,
    )


def sentiment_variable(rows: Sequence[tuple[float, str]]) -> dict[str, Any]:
    """``caller.sentiment`` from the number's kept (score, label) rows, newest first: the last
    call's score and label, the trend against the calls before it, and the history."""
    from analytics.qa import trend

    scores = [r[0] for r in rows]
    return {
        "last": scores[0] if scores else None,
        "label": rows[0][1] if rows else "",
        "trend": trend(scores),
        "calls": len(rows),
        "history": scores,
    }


def caller_variables(
    number: str,
    profile: Mapping[str, Any] | None,
    recent: Sequence[Contact] = (),
    offer: ResumeOffer | None = None,
    *,
    now_wall: float,
    sentiment: Sequence[tuple[float, str]] = (),
) -> dict[str, Any]:
    """The ``caller`` variable of a new call: every key present, whether known or not,
    so flows can test ``caller.tier == "gold"`` or ``caller.returning`` safely."""
    p = profile or {}
    return {
        "number": number,
        "known": profile is not None,
        "source": p.get("source", ""),  # "db", "http" or "" (unknown caller)
        **{k: p.get(k, v) for k, v in PROFILE_DEFAULTS.items()},
        **({"sentiment": p["sentiment"]} if p.get("sentiment") else {}),  # a CRM's, when it has one
        "recent": [c.as_variable(now_wall) for c in recent],
        "contacts_recent": len(recent),
        "returning": offer is not None,
        "resume": offer.as_variable() if offer is not None else {},
        "sentiment": sentiment_variable(sentiment),
        "last_sentiment": sentiment[0][0] if sentiment else None,
    }


def _open_sync(db_path: Path) -> sqlite3.Connection:
    return open_sync(db_path, SCHEMA)


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_csv(csv_path: Path, tiers: Collection[str]) -> tuple[list[dict[str, Any]], list[str], ImportReport]:
    """Parse and validate a whole CSV file; pure apart from reading the file."""
    report = ImportReport(str(csv_path))
    opened = open_csv(csv_path, COLUMNS, "number,tier", lambda c: normalize_number(c) is not None, report)
    if opened is None:
        return [], [], report
    reader, columns = opened
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for line, cells in csv_rows(reader, columns, report):
        values, errors = validate_row(cells, line, tiers)
        report.errors.extend(errors)
        if values is None:
            continue
        if values["number"] in seen:
            report.errors.append(
                RowError(line, "number", f"{values['number']} is also on line {seen[values['number']]}")
            )
            continue
        seen[values["number"]] = line
        rows.append(values)
    return rows, columns, report


def import_csv(
    db_path: str | Path, csv_path: str | Path, *, tiers: Collection[str] = DEFAULT_TIERS
) -> ImportReport:
    """Upsert profiles from a CSV file with a header row, all or nothing.

    Only the columns present in the file are written; a number already known
    keeps its other columns. Any error means nothing is written; the report
    lists every error with its line.
    """
    rows, columns, report = read_csv(Path(csv_path), tiers)
    if report.errors:
        return report
    stamp = _utc_now()
    cols = [c for c in COLUMNS if c in columns]
    sql = (
        f"INSERT INTO caller_profiles ({', '.join(cols)}, updated_at) "
        f"VALUES ({', '.join('?' * (len(cols) + 1))}) "
        f"ON CONFLICT(number) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in [*cols[1:], "updated_at"])
    )
    params = ((row["number"], [*(row[c] for c in cols), stamp]) for row in rows)
    upsert_all(_open_sync(Path(db_path)), "caller_profiles", sql, params, report)
    return report


def _profile_row(row: sqlite3.Row | aiosqlite.Row, source: str) -> dict[str, Any]:
    return {
        "number": row["number"],
        "tier": row["tier"],
        "assisted": bool(row["assisted"]),
        "language": row["language"],
        "priority_human": bool(row["priority_human"]),
        "name": row["name"],
        "source": source,
    }


def _contact_row(row: sqlite3.Row | aiosqlite.Row) -> Contact:
    return Contact(
        call_id=row["call_id"],
        number=row["number"],
        ended_at=row["ended_at"],
        cause=row["cause"],
        flow=row["flow"],
        flow_version=row["flow_version"],
        last_node=row["last_node"],
        queue=row["queue"],
        priority=row["priority"],
        waited_seconds=row["waited_seconds"],
        agent_id=row["agent_id"],
        agent_connected=bool(row["agent_connected"]),
    )


def show(
    db_path: str | Path, number: str, *, now_wall: float, within: float = 86_400.0
) -> dict[str, Any] | None:
    """A profile with its notes and recent contacts, for a person (the CLI)."""
    normalized = normalize_number(number)
    if normalized is None:
        return None
    conn = _open_sync(Path(db_path))
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM caller_profiles WHERE number = ?", (normalized,)).fetchone()
        contacts = conn.execute(
            "SELECT * FROM caller_contacts WHERE number = ? AND ended_at >= ? ORDER BY ended_at DESC",
            (normalized, now_wall - within),
        ).fetchall()
        feelings = conn.execute(
            "SELECT score, label FROM caller_sentiment WHERE number = ? ORDER BY at DESC", (normalized,)
        ).fetchall()
    finally:
        conn.close()
    if row is None and not contacts and not feelings:
        return None
    out: dict[str, Any] = {"number": normalized, "profile": None, "recent": []}
    if row is not None:
        out["profile"] = {**_profile_row(row, "db"), "notes": row["notes"], "updated_at": row["updated_at"]}
    out["recent"] = [dataclasses.asdict(_contact_row(c)) for c in contacts]
    out["sentiment"] = sentiment_variable([(r[0], r[1]) for r in feelings])
    return out


# ------------------------------------------------------------------ async store
@dataclass(frozen=True, slots=True)
class HttpLookup:
    url: str  # template with {number}, e.g. "https://crm.example/api/callers/{number}"
    timeout: float = 1.5  # seconds; the call waits at most this long for the profile


class ProfileStore:
    """Profiles and contacts for the server. ``get`` reads SQLite, then HTTP if configured.

    The HTTP endpoint answers 200 with a JSON object having any of ``tier``,
    ``assisted``, ``language``, ``priority_human``, ``name``; 404 means
    unknown. Invalid fields are dropped (logged); any failure is "unknown".
    """

    def __init__(
        self,
        path: Path,
        *,
        http: HttpLookup | None = None,
        tiers: Collection[str] = DEFAULT_TIERS,
        contacts_retain: float = 7 * 86_400.0,  # seconds a contact is kept
        keep_sentiment: int = 10,  # calls per number whose sentiment is kept
    ) -> None:
        self.keep_sentiment = keep_sentiment
        self.path = path
        self.http = http
        self.tiers = tuple(tiers)
        self.contacts_retain = contacts_retain
        self._db: aiosqlite.Connection | None = None
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, timeout=10.0, isolation_level=None)
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.executescript(SCHEMA)
        await self._db.commit()
        if self.http is not None:
            self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise ProfileError("ProfileStore used before open()")
        return self._db

    async def get(self, number: str) -> dict[str, Any] | None:
        """The profile of ``number`` (keys: number, tier, assisted, language,
        priority_human, name, source), or None if neither SQLite nor HTTP knows it."""
        normalized = normalize_number(number)
        if normalized is None:
            return None
        async with self._conn().execute(
            "SELECT * FROM caller_profiles WHERE number = ?", (normalized,)
        ) as cur:
            row = await cur.fetchone()
        if row is not None:
            return _profile_row(row, "db")
        if self.http is not None:
            return await self._http_get(normalized)
        return None

    async def _http_get(self, number: str) -> dict[str, Any] | None:
        assert self.http is not None and self._session is not None
        url = self.http.url.format(number=urllib.parse.quote(number, safe=""))
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=self.http.timeout)) as resp:
                if resp.status == 404:
                    return None
                if resp.status != 200:
                    log.warning("profile_lookup_failed", number=mask_number(number), status=resp.status)
                    return None
                body = await untrusted.read_json(resp)  # bounded, and safe for every sink
        except Exception as exc:  # timeout, refused, not JSON: the caller is unknown, the call goes on
            log.warning("profile_lookup_failed", number=mask_number(number), reason=type(exc).__name__)
            return None
        if not isinstance(body, dict):
            log.warning("profile_lookup_bad_body", number=mask_number(number))
            return None
        row = {
            k: str(v) if not isinstance(v, bool) else ("1" if v else "0")
            for k, v in body.items()
            if k in COLUMNS
        }
        row["number"] = number
        values: dict[str, Any] = {"number": number}
        for key, value in row.items():
            ok, errors = validate_row({"number": number, key: value}, 0, self.tiers)
            if ok is None:
                masked = mask_number(number)
                log.warning("profile_lookup_field_dropped", number=masked, field=key, error=errors[0].message)
            else:
                values.update(ok)
        values.pop("notes", None)
        sentiment = body.get("sentiment")  # the CRM's last sentiment for the caller, shown to agents
        if isinstance(sentiment, str) and 0 < len(sentiment.strip()) <= 32:
            values["sentiment"] = sentiment.strip()
        return {**PROFILE_DEFAULTS, **values, "source": "http"}

    async def record_contact(
        self,
        number: str,
        call_id: str,
        ended_at: float,
        last_node: str | None,
        queue: str | None,
        agent_id: str | None,
        cause: str,
        *,
        flow: str | None = None,
        flow_version: str | None = None,
        priority: int | None = None,
        waited_seconds: float = 0.0,
        agent_connected: bool = False,
    ) -> None:
        """Record a finished call (``ended_at`` in epoch seconds); prunes this number's
        contacts older than ``contacts_retain``. Numbers that are not phone numbers are skipped."""
        normalized = normalize_number(number)
        if normalized is None:
            return
        db = self._conn()
        await db.execute(
            "INSERT OR REPLACE INTO caller_contacts (call_id, number, ended_at, flow, flow_version,"
            " last_node, queue, priority, waited_seconds, agent_id, agent_connected, cause)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (call_id, normalized, ended_at, flow, flow_version, last_node, queue, priority, waited_seconds,
             agent_id, int(agent_connected), cause),
        )  # fmt: skip
        await db.execute(
            "DELETE FROM caller_contacts WHERE number = ? AND ended_at < ?",
            (normalized, ended_at - self.contacts_retain),
        )
        await db.commit()

    async def record_sentiment(self, number: str, call_id: str, at: float, score: float, label: str) -> None:
        """Keep a call's sentiment (QA) for its number; only the newest ``keep_sentiment`` stay."""
        normalized = normalize_number(number)
        if normalized is None:
            return
        db = self._conn()
        await db.execute(
            "INSERT OR REPLACE INTO caller_sentiment (call_id, number, at, score, label)"
            " VALUES (?, ?, ?, ?, ?)",
            (call_id, normalized, at, score, label),
        )
        await db.execute(
            "DELETE FROM caller_sentiment WHERE number = ? AND call_id NOT IN"
            " (SELECT call_id FROM caller_sentiment WHERE number = ? ORDER BY at DESC LIMIT ?)",
            (normalized, normalized, max(1, self.keep_sentiment)),
        )
        await db.commit()

    async def sentiment(self, number: str) -> list[tuple[float, str]]:
        """The kept (score, label) of the number's calls, newest first."""
        normalized = normalize_number(number)
        if normalized is None:
            return []
        async with self._conn().execute(
            "SELECT score, label FROM caller_sentiment WHERE number = ? ORDER BY at DESC", (normalized,)
        ) as cur:
            rows = await cur.fetchall()
        return [(float(r[0]), str(r[1])) for r in rows]

    async def recent(self, number: str, within_seconds: float, now_wall: float) -> list[Contact]:
        """The number's calls that ended in the last ``within_seconds``, newest first."""
        normalized = normalize_number(number)
        if normalized is None:
            return []
        async with self._conn().execute(
            "SELECT * FROM caller_contacts WHERE number = ? AND ended_at >= ? ORDER BY ended_at DESC",
            (normalized, now_wall - within_seconds),
        ) as cur:
            rows = await cur.fetchall()
        return [_contact_row(r) for r in rows]

    async def caller_for_call(
        self,
        number: str,
        now_wall: float,
        policy: ResumePolicy = ResumePolicy(),
        *,
        recent_within: float = 86_400.0,
        node_exists: Callable[[str, str], bool] | None = None,
    ) -> tuple[dict[str, Any], ResumeOffer | None]:
        """Everything a new call needs in one await: the ``caller`` variable and any resume offer."""
        profile = await self.get(number)
        recent = await self.recent(number, max(recent_within, policy.window), now_wall)
        offer = resume_offer(recent, now_wall, policy, node_exists=node_exists)
        shown = [c for c in recent if now_wall - c.ended_at <= recent_within]
        sentiment = await self.sentiment(number)
        return caller_variables(number, profile, shown, offer, now_wall=now_wall, sentiment=sentiment), offer


# -------------------------------------------------------------------------- CLI
def _config_settings(config_path: str) -> tuple[Path, tuple[str, ...]]:
    """The profile database and tiers from config.toml: ``[profiles] database`` (or
    ``[storage] database``) and ``[profiles] tiers``, whichever exist."""
    from .config import load_config

    config = load_config(config_path)
    section = getattr(config, "profiles", None)
    database = getattr(section, "database", "") or config.storage.database
    tiers = tuple(getattr(section, "tiers", ()) or DEFAULT_TIERS)
    return config.path(database), tiers


def cli_main(argv: Sequence[str]) -> int:
    """``hotline profiles import FILE.csv`` / ``hotline profiles show NUMBER``.

    Exit status: 0 done, 1 the CSV has errors (nothing imported) or the number
    is unknown, 2 bad usage or config.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default="config.toml", help="config file (default: ./config.toml)")
    common.add_argument("--database", default=None, help="SQLite file (default: from the config)")
    parser = argparse.ArgumentParser(prog="hotline profiles", description="caller profiles")
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser(
        "import", parents=[common], help="upsert profiles from a CSV with a header row; all or nothing"
    )
    imp.add_argument("csv", help="CSV file: number,tier,assisted,language,priority_human,name,notes")
    shw = sub.add_parser(
        "show", parents=[common], help="print a number's profile and recent contacts as JSON"
    )
    shw.add_argument("number")
    args = parser.parse_args(list(argv))
    tiers: tuple[str, ...] = DEFAULT_TIERS
    if args.database is not None:
        database = Path(args.database)
    else:
        from .config import ConfigError

        try:
            database, tiers = _config_settings(args.config)
        except ConfigError as exc:
            print(f"hotline: {exc}", file=sys.stderr)
            return 2
    if args.command == "import":
        report = import_csv(database, args.csv, tiers=tiers)
        print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
        return 0 if report.ok else 1
    found = show(database, args.number, now_wall=time.time())
    if found is None:
        print(f"hotline: no profile or recent contact for {args.number}", file=sys.stderr)
        return 1
    print(json.dumps(found, indent=2, ensure_ascii=False))
    return 0
