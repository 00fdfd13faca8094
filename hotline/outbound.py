"""The outbound guard for click-to-dial (``make call``): a do-not-call list and calling hours.

- **Pure core** (no I/O, time is an argument): :func:`number_of` (the phone number in a
  dial target), :func:`parse_hours` / :class:`MarketingHours` (weekly ranges and
  holidays) and :func:`check_outbound`, which answers one question: may this call be
  placed now, and if not, why (a :class:`Decision` with a stable code and a message a
  person can act on).
- **Adapters**: :func:`import_csv`, :func:`add`, :func:`remove`, :func:`lookup` (sync
  ``sqlite3``, for the CLI), :class:`DncStore` (``aiosqlite``, for the server),
  :class:`OutboundGuard` (the store plus the policy: one ``await`` per ``make call``) and
  :func:`cli_main` (``hotline dnc``).

Policy (see docs/outbound.md):

- **marketing** calls are refused for numbers on the do-not-call list
  (``outbound.dnc``) and outside the configured hours or on a holiday
  (``outbound.outside_hours``), in the callee's local time when it is known, else in
  the configured ``timezone``, else in the server's.
- **service** calls (about an existing order, ticket, appointment or callback) are
  exempt from the do-not-call list, as national DNC regimes exempt transactional
  calls; they are held to ``service_hours`` only when those are configured (some
  jurisdictions, e.g. debt collection rules, restrict the hours of every call).
- Both are refused for a target that is not a phone number (``outbound.bad_number``),
  except that a service call to a SIP URI whose user part is not a number (a partner
  PBX, ``sip:desk@partner.example``) is allowed: no DNC or hours regime applies to it.

The ``dnc`` table lives in the server's SQLite file next to ``calls`` (WAL mode, so the
CLI can import while the server runs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import re
import sqlite3
import sys
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiosqlite
import structlog

from .csvimport import ImportReport, RowError, csv_rows, open_csv, open_sync, upsert_all
from .numbers import mask_number, normalize_number

log = structlog.get_logger("hotline.outbound")

SCHEMA = """
CREATE TABLE IF NOT EXISTS dnc (
    number   TEXT PRIMARY KEY,          -- normalized: digits, "+" for an international prefix
    added_at TEXT NOT NULL,             -- ISO 8601 UTC when the number was first listed
    source   TEXT NOT NULL DEFAULT '',  -- where it came from: "cli", "csv:<file>", a registry's name
    note     TEXT NOT NULL DEFAULT ''   -- for staff, e.g. "asked on call 3f2a9c..."
);
"""

PURPOSES = ("service", "marketing")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# a conservative default inside the US TCPA 08:00-21:00 and most European rules; configure yours
DEFAULT_MARKETING_HOURS: dict[str, tuple[str, ...]] = {
    "mon": ("09:00-20:00",),
    "tue": ("09:00-20:00",),
    "wed": ("09:00-20:00",),
    "thu": ("09:00-20:00",),
    "fri": ("09:00-20:00",),
    "sat": ("10:00-16:00",),
}
CSV_COLUMNS = ("number", "source", "note")

# stable codes of refusals
DNC = "outbound.dnc"
OUTSIDE_HOURS = "outbound.outside_hours"
BAD_NUMBER = "outbound.bad_number"
BAD_PURPOSE = "outbound.bad_purpose"
DNC_UNAVAILABLE = "outbound.dnc_unavailable"

_URI = re.compile(r"(?i)(?P<scheme>sips?|tel):(?P<user>[^@;?>]*)")
_RANGE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_YEARLY = re.compile(r"(\d{2})-(\d{2})")


class OutboundError(Exception):
    """Base of the errors of the outbound guard."""

    code = "outbound.error"


class OutboundConfigError(OutboundError):
    """You misused us: bad hours, holiday or time zone in the config or a command."""

    code = "outbound.bad_config"


class DncUnavailable(OutboundError):
    """The outside world misbehaved: the do-not-call list could not be read."""

    code = DNC_UNAVAILABLE


# ------------------------------------------------------------------ pure core
def dnc_number(raw: str) -> str | None:
    """A number as the DNC list stores it: :func:`profiles.normalize_number`, and a
    leading ``00`` international prefix written as ``+`` (``0049 30 1234`` -> ``+49301234``)."""
    number = normalize_number(raw)
    if number is not None and number.startswith("00"):
        number = "+" + number[2:]
    return number if number is not None and len(number) > 2 else None


def number_of(target: str) -> str | None:
    """The phone number a dial target reaches: ``"+49 30 1234"``, ``"tel:+49301234"``,
    ``"sip:+49301234@trunk"`` -> ``"+49301234"``; None when it is not a phone number."""
    target = target.strip()
    m = _URI.match(target)
    return dnc_number(urllib.parse.unquote(m["user"]) if m else target)


def is_sip_uri(target: str) -> bool:
    return target.strip().lower().startswith(("sip:", "sips:"))


def _seconds(hours: int, minutes: int, where: str) -> int:
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise OutboundConfigError(f"{where}: {hours:02d}:{minutes:02d} is not a time of day (00:00-24:00)")
    return hours * 3600 + minutes * 60


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketingHours:
    """When calls may be placed, in the callee's local wall-clock time."""

    # 7 entries, Monday first: (start, end) in seconds after local midnight, end exclusive
    weekly: tuple[tuple[tuple[int, int], ...], ...]
    holidays: frozenset[dt.date] = frozenset()  # dates with no calls at all
    yearly: frozenset[tuple[int, int]] = frozenset()  # (month, day): no calls on it any year

    def is_holiday(self, day: dt.date) -> bool:
        return day in self.holidays or (day.month, day.day) in self.yearly

    def allows(self, now_local: dt.datetime) -> bool:
        if self.is_holiday(now_local.date()):
            return False
        s = now_local.hour * 3600 + now_local.minute * 60 + now_local.second
        return any(start <= s < end for start, end in self.weekly[now_local.weekday()])

    def next_open(self, now_local: dt.datetime) -> dt.datetime | None:
        """The start of the next permitted window after ``now_local`` (same tzinfo), or
        None when there is none within 400 days (no hours at all)."""
        s = now_local.hour * 3600 + now_local.minute * 60 + now_local.second
        for ahead in range(400):
            day = now_local.date() + dt.timedelta(days=ahead)
            if self.is_holiday(day):
                continue
            for start, _end in sorted(self.weekly[day.weekday()]):
                if ahead > 0 or start > s:
                    midnight = dt.datetime.combine(day, dt.time(), tzinfo=now_local.tzinfo)
                    return midnight + dt.timedelta(seconds=start)
        return None

    def describe(self) -> str:
        """``"mon 09:00-20:00, sat 10:00-16:00"``; for messages and the CLI."""
        days = [
            f"{WEEKDAYS[i]} " + " ".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in ranges)
            for i, ranges in enumerate(self.weekly)
            if ranges
        ]
        return ", ".join(days) or "never"


def parse_hours(weekly: Mapping[str, Sequence[str]], holidays: Iterable[str] = ()) -> MarketingHours:
    """``{"mon": ["09:00-12:00", "13:00-20:00"], ...}`` and ``["2025-12-25", "01-01"]``
    (a date, or month-day for every year) -> :class:`MarketingHours`. A weekday left out
    has no hours. Raises :class:`OutboundConfigError` naming the bad entry."""
    days: list[tuple[tuple[int, int], ...]] = []
    for key in weekly:
        if key not in WEEKDAYS:
            guess = difflib.get_close_matches(key, WEEKDAYS, n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else f"use {', '.join(WEEKDAYS)}"
            raise OutboundConfigError(f"hours: '{key}' is not a weekday; {hint}")
    for name in WEEKDAYS:
        ranges: list[tuple[int, int]] = []
        for text in weekly.get(name, ()):
            m = _RANGE.fullmatch(text.strip())
            if m is None:
                raise OutboundConfigError(f"hours.{name}: '{text}' is not a range like 09:00-20:00")
            start = _seconds(int(m[1]), int(m[2]), f"hours.{name}")
            end = _seconds(int(m[3]), int(m[4]), f"hours.{name}")
            if end <= start:
                raise OutboundConfigError(
                    f"hours.{name}: '{text}' ends before it starts; split a range past midnight "
                    "into two days (e.g. fri 20:00-24:00 and sat 00:00-02:00)"
                )
            ranges.append((start, end))
        days.append(tuple(sorted(ranges)))
    dates: set[dt.date] = set()
    yearly: set[tuple[int, int]] = set()
    for text in holidays:
        try:
            if m := _YEARLY.fullmatch(text.strip()):
                dt.date(2000, int(m[1]), int(m[2]))  # a leap year: 02-29 is valid
                yearly.add((int(m[1]), int(m[2])))
            else:
                dates.add(dt.date.fromisoformat(text.strip()))
        except ValueError:
            raise OutboundConfigError(
                f"holidays: '{text}' is not a date like 2025-12-25 (once) or 12-25 (every year)"
            ) from None
    return MarketingHours(weekly=tuple(days), holidays=frozenset(dates), yearly=frozenset(yearly))


ALWAYS = MarketingHours(weekly=tuple(((0, 86_400),) for _ in WEEKDAYS))  # no restriction


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The guard's answer for one ``make call``."""

    allowed: bool
    code: str | None  # None when allowed, else outbound.dnc, outbound.outside_hours, ...
    message: str  # for the agent or integrator: what happened and what to do
    number: str | None = None  # the normalized number dialled, None for a non-number URI
    next_allowed: dt.datetime | None = None  # outside_hours: when the next window opens (callee time)


def _where(now_local: dt.datetime) -> str:
    zone = now_local.tzname() if now_local.tzinfo is not None else None
    return f"{now_local:%a %Y-%m-%d %H:%M}" + (f" {zone}" if zone else "")


def check_outbound(
    number: str,
    purpose: str,
    now_local: dt.datetime,
    dnc: bool,
    hours: MarketingHours,
    *,
    service_hours: MarketingHours | None = None,
) -> Decision:
    """May ``number`` (a number, ``tel:`` or SIP URI) be dialled for ``purpose`` now?

    ``now_local`` is the callee's local time (else the configured or server zone);
    ``dnc`` says whether the number is on the do-not-call list; ``hours`` bound
    marketing calls, ``service_hours`` (None: any time) bound service calls.
    """
    if purpose not in PURPOSES:
        return Decision(
            allowed=False,
            code=BAD_PURPOSE,
            message=f"purpose '{purpose}' is unknown; use 'service' (about an existing matter) "
            "or 'marketing' (sales, offers, surveys)",
        )
    normalized = number_of(number)
    if normalized is None:
        if purpose == "service" and is_sip_uri(number):
            return Decision(allowed=True, code=None, message="a SIP URI, not a phone number: no DNC or hours")
        return Decision(
            allowed=False,
            code=BAD_NUMBER,
            message=f"'{number}' is not a phone number; dial digits with an optional leading +, "
            "or a tel:/sip: URI whose user part is one",
        )
    masked = mask_number(normalized)
    if purpose == "marketing" and dnc:
        return Decision(
            allowed=False,
            code=DNC,
            message=f"{masked} is on the do-not-call list: no marketing calls to it. "
            "Do not retry; a service call about an existing matter is still allowed",
            number=normalized,
        )
    window = hours if purpose == "marketing" else service_hours
    if window is not None and not window.allows(now_local):
        opens = window.next_open(now_local)
        why = "a holiday" if window.is_holiday(now_local.date()) else "outside calling hours"
        when = f"; try again from {_where(opens)}" if opens is not None else "; no calling hours are set"
        return Decision(
            allowed=False,
            code=OUTSIDE_HOURS,
            message=f"{purpose} calls to {masked} are not allowed at {_where(now_local)}, callee time "
            f"({why}: {window.describe()}){when}",
            number=normalized,
            next_allowed=opens,
        )
    return Decision(allowed=True, code=None, message="allowed", number=normalized)


def zone(name: str) -> dt.tzinfo | None:
    """An IANA zone name -> tzinfo; "" -> None (the server's local time)."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise OutboundConfigError(
            f"'{name}' is not an IANA time zone like Europe/Berlin or America/New_York"
        ) from None


def local_time(now_wall: float, tz: dt.tzinfo | None) -> dt.datetime:
    """Epoch seconds -> aware wall-clock time in ``tz`` (None: the server's local zone)."""
    return (
        dt.datetime.fromtimestamp(now_wall, tz)
        if tz is not None
        else dt.datetime.fromtimestamp(now_wall).astimezone()
    )


# ------------------------------------------------------------------ CSV and CLI adapters
def _open_sync(db_path: Path) -> sqlite3.Connection:
    return open_sync(db_path, SCHEMA)


def _iso(now_wall: float) -> str:
    return dt.datetime.fromtimestamp(now_wall, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_csv(csv_path: Path) -> tuple[list[dict[str, str]], list[str], ImportReport]:
    """Parse and validate a whole DNC CSV (header ``number[,source][,note]``)."""
    report = ImportReport(str(csv_path))
    opened = open_csv(csv_path, CSV_COLUMNS, "number,note", lambda c: dnc_number(c) is not None, report)
    if opened is None:
        return [], [], report
    reader, columns = opened
    rows: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for line, cells in csv_rows(reader, columns, report):
        row = {c: v.strip() for c, v in cells.items()}
        number = dnc_number(row["number"])
        if number is None:
            report.errors.append(
                RowError(
                    line, "number", f"'{row['number']}' is not a phone number (digits, an optional leading +)"
                )
            )
            continue
        if number in seen:
            report.errors.append(RowError(line, "number", f"{number} is also on line {seen[number]}"))
            continue
        seen[number] = line
        rows.append({**row, "number": number})
    return rows, columns, report


def import_csv(db_path: str | Path, csv_path: str | Path, *, now_wall: float) -> ImportReport:
    """Upsert DNC entries from a CSV file with a header row, all or nothing.

    A number already listed keeps its ``added_at`` and gets the file's ``source`` and
    ``note`` where the file has those columns; ``source`` defaults to ``csv:<file name>``.
    Any error means nothing is written; the report lists every error with its line.
    """
    path = Path(csv_path)
    rows, columns, report = read_csv(path)
    if report.errors:
        return report
    # only the file's columns overwrite a listed number; no columns: a no-op update
    sets = [f"{c} = excluded.{c}" for c in ("source", "note") if c in columns] or ["added_at = added_at"]
    sql = (
        "INSERT INTO dnc (number, added_at, source, note) VALUES (?, ?, ?, ?) "
        f"ON CONFLICT(number) DO UPDATE SET {', '.join(sets)}"
    )
    stamp = _iso(now_wall)
    params = (
        (row["number"], (row["number"], stamp, row.get("source") or f"csv:{path.name}", row.get("note", "")))
        for row in rows
    )
    upsert_all(_open_sync(Path(db_path)), "dnc", sql, params, report)
    return report


def add(db_path: str | Path, number: str, *, now_wall: float, source: str = "cli", note: str = "") -> bool:
    """List ``number`` (True if new; an existing entry keeps ``added_at``, gets the new
    source and note). Raises :class:`OutboundConfigError` if it is not a phone number."""
    normalized = number_of(number)
    if normalized is None:
        raise OutboundConfigError(f"'{number}' is not a phone number (digits, an optional leading +)")
    conn = _open_sync(Path(db_path))
    try:
        existed = conn.execute("SELECT 1 FROM dnc WHERE number = ?", (normalized,)).fetchone() is not None
        conn.execute(
            "INSERT INTO dnc (number, added_at, source, note) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(number) DO UPDATE SET source = excluded.source, note = excluded.note",
            (normalized, _iso(now_wall), source, note),
        )
    finally:
        conn.close()
    return not existed


def remove(db_path: str | Path, number: str) -> bool:
    """Unlist ``number``; False if it was not listed."""
    normalized = number_of(number)
    if normalized is None:
        raise OutboundConfigError(f"'{number}' is not a phone number (digits, an optional leading +)")
    conn = _open_sync(Path(db_path))
    try:
        return conn.execute("DELETE FROM dnc WHERE number = ?", (normalized,)).rowcount > 0
    finally:
        conn.close()


def lookup(db_path: str | Path, number: str) -> dict[str, str] | None:
    """The DNC entry of ``number`` (number, added_at, source, note), or None."""
    normalized = number_of(number)
    if normalized is None:
        raise OutboundConfigError(f"'{number}' is not a phone number (digits, an optional leading +)")
    conn = _open_sync(Path(db_path))
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM dnc WHERE number = ?", (normalized,)).fetchone()
    finally:
        conn.close()
    return {k: str(row[k]) for k in row.keys()} if row is not None else None  # noqa: SIM118 (sqlite3.Row)


# ------------------------------------------------------------------ async store and guard
class DncStore:
    """The DNC list for the server (read only; the CLI writes it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, timeout=10.0, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.executescript(SCHEMA)
        await self._db.commit()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def contains(self, number: str) -> bool:
        """Whether ``number`` (a number or a tel:/sip: URI) is listed; False for a target
        that is not a phone number. Raises :class:`DncUnavailable` if the list cannot be read."""
        normalized = number_of(number)
        if normalized is None:
            return False
        if self._db is None:
            raise DncUnavailable("DncStore used before open()")
        try:
            async with self._db.execute("SELECT 1 FROM dnc WHERE number = ?", (normalized,)) as cur:
                return await cur.fetchone() is not None
        except sqlite3.Error as exc:
            raise DncUnavailable(f"cannot read the do-not-call list {self.path}: {exc}") from exc


@dataclass(slots=True)
class OutboundGuard:
    """The store plus the policy: what ``make call`` awaits before dialling."""

    store: DncStore
    hours: MarketingHours  # marketing calls
    service_hours: MarketingHours | None = None  # service calls; None = any time
    tz: dt.tzinfo | None = None  # when the callee's zone is unknown; None = the server's
    refused: dict[str, int] = field(default_factory=dict)  # code -> refusals since start

    async def check(self, target: str, purpose: str, now_wall: float, callee_tz: str = "") -> Decision:
        """``callee_tz``: the callee's IANA zone if known ("" = :attr:`tz`). Fails closed:
        if the DNC list cannot be read, marketing calls are refused (``outbound.dnc_unavailable``)."""
        now_local = local_time(now_wall, zone(callee_tz) if callee_tz else self.tz)
        try:
            listed = purpose == "marketing" and await self.store.contains(target)
        except DncUnavailable as exc:
            log.error("dnc_unavailable", error=str(exc))
            decision = Decision(
                allowed=False,
                code=DNC_UNAVAILABLE,
                message="the do-not-call list cannot be read, so marketing calls are refused; "
                "ask an administrator to check the database",
            )
        else:
            decision = check_outbound(
                target, purpose, now_local, listed, self.hours, service_hours=self.service_hours
            )
        if not decision.allowed and decision.code is not None:
            self.refused[decision.code] = self.refused.get(decision.code, 0) + 1
            masked = mask_number(decision.number) if decision.number else "-"
            log.info("outbound_refused", code=decision.code, purpose=purpose, number=masked)
        return decision


def build_guard(
    database: Path,
    *,
    marketing_hours: Mapping[str, Sequence[str]] = DEFAULT_MARKETING_HOURS,
    holidays: Iterable[str] = (),
    timezone: str = "",
    service_hours: Mapping[str, Sequence[str]] | None = None,
) -> OutboundGuard:
    """The one wiring point (call :meth:`DncStore.open` on ``guard.store`` before use).
    Raises :class:`OutboundConfigError` for bad hours, holidays or zone."""
    holidays = tuple(holidays)
    return OutboundGuard(
        store=DncStore(database),
        hours=parse_hours(marketing_hours, holidays),
        service_hours=parse_hours(service_hours, holidays) if service_hours is not None else None,
        tz=zone(timezone),
    )


def _database(config_path: str) -> Path:
    """``[outbound] database`` (or ``[storage] database``) from config.toml."""
    from .config import load_config

    config = load_config(config_path)
    section = getattr(config, "outbound", None)
    database = getattr(section, "database", "") or config.storage.database
    return config.path(database)


def cli_main(argv: Sequence[str]) -> int:
    """``hotline dnc import FILE.csv | add NUMBER | remove NUMBER | check NUMBER``.

    Exit status: 0 done (``check``: the number is listed); 1 the CSV has errors
    (nothing imported), ``remove``: it was not listed, ``check``: it is not listed;
    2 bad usage, a bad number, config or database.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default="config.toml", help="config file (default: ./config.toml)")
    common.add_argument("--database", default=None, help="SQLite file (default: from the config)")
    parser = argparse.ArgumentParser(prog="hotline dnc", description="the do-not-call list")
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", parents=[common], help="upsert numbers from a CSV; all or nothing")
    imp.add_argument("csv", help="CSV file with a header: number[,source][,note]")
    addp = sub.add_parser("add", parents=[common], help="list a number")
    addp.add_argument("number")
    addp.add_argument("--source", default="cli", help="where the request came from (default: cli)")
    addp.add_argument("--note", default="", help="for staff, e.g. the call id of the request")
    for name, text in (("remove", "unlist a number"), ("check", "exit 0 if listed, 1 if not")):
        sub.add_parser(name, parents=[common], help=text).add_argument("number")
    args = parser.parse_args(list(argv))
    if args.database is not None:
        database = Path(args.database)
    else:
        from .config import ConfigError

        try:
            database = _database(args.config)
        except ConfigError as exc:
            print(f"hotline: {exc}", file=sys.stderr)
            return 2
    try:
        if args.command == "import":
            report = import_csv(database, args.csv, now_wall=time.time())
            print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
            return 0 if report.ok else 1
        if args.command == "add":
            new = add(database, args.number, now_wall=time.time(), source=args.source, note=args.note)
            print(
                f"{number_of(args.number)}: {'listed' if new else 'already listed; source and note updated'}"
            )
            return 0
        if args.command == "remove":
            if remove(database, args.number):
                print(f"{number_of(args.number)}: removed from the do-not-call list")
                return 0
            print(f"hotline: {number_of(args.number)} is not on the do-not-call list", file=sys.stderr)
            return 1
        entry = lookup(database, args.number)
    except OutboundConfigError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        print(f"hotline: cannot use the database {database}: {exc}", file=sys.stderr)
        return 2
    if entry is None:
        print(f"{number_of(args.number)}: not listed")
        return 1
    print(
        f"{entry['number']}: listed since {entry['added_at']} (source {entry['source'] or '-'})"
        + (f": {entry['note']}" if entry["note"] else "")
    )
    return 0
