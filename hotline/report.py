"""`hotline report`: the 15-minute roll-ups from the database, as text or CSV."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .config import load_config_or_report

COLUMNS = [
    ("offered", "offered"),
    ("answered", "answered"),
    ("abandoned", "abandoned"),
    ("short_abandoned", "short_ab"),
    ("overflowed", "overflow"),
    ("sl_offered", "SL%"),
    ("asa", "ASA s"),
    ("aht", "AHT s"),
    ("max_wait", "max wait s"),
    ("occupancy", "occ%"),
]


class ReportError(Exception):
    """The report cannot be made; the message says why and what to do."""

    code = "report.unavailable"


def _when(text: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(f"'{text}' is not a date/time like 2026-11-21 or 2026-11-21T08:00") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time
    return moment.timestamp()


def connect_ro(db: str) -> sqlite3.Connection:
    """The database, read-only; :class:`ReportError` when it does not exist or cannot be opened."""
    if not Path(db).exists():
        raise ReportError(
            f"no database at {db} yet: the server creates it when it first runs (hotline run), "
            "or set [storage] database"
        )
    try:
        return sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ReportError(f"cannot open {db}: {exc}") from None


def rows(db: str, *, since: float, until: float, queue: str | None) -> list[dict[str, Any]]:
    con = connect_ro(db)
    try:
        cur = con.execute(
            "SELECT data FROM queue_intervals WHERE start >= ? AND start < ? AND (? IS NULL OR queue = ?) "
            "ORDER BY start, queue",
            (since, until, queue, queue),
        )
        return [json.loads(r[0]) for r in cur.fetchall()]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # the server has not closed an interval yet
        raise ReportError(f"cannot read {db}: {exc}") from None
    finally:
        con.close()


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dispositions(db: str, *, since: float, until: float, queue: str | None) -> list[tuple[str, str, int]]:
    """(queue, wrap-up code, calls) for the calls that started in the range and got a code."""
    con = connect_ro(db)
    try:
        cur = con.execute(
            "SELECT COALESCE(queue, ''), disposition, COUNT(*) FROM calls "
            "WHERE disposition IS NOT NULL AND started_at >= ? AND started_at < ? "
            "AND (? IS NULL OR queue = ?) GROUP BY 1, 2 ORDER BY 1, 2",
            (_iso(since), _iso(until), queue, queue),
        )
        return [(str(q), str(d), int(n)) for q, d, n in cur.fetchall()]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc) or "no such column" in str(exc):
            return []  # no call (or no disposition) recorded yet
        raise ReportError(f"cannot read {db}: {exc}") from None
    finally:
        con.close()


def write_dispositions(out: TextIO, data: list[tuple[str, str, int]], *, as_csv: bool) -> None:
    if as_csv:
        w = csv.writer(out)
        w.writerow(["queue", "disposition", "calls"])
        w.writerows(data)
        return
    out.write("\nwrap-up codes (agent.disposition), by queue:\n")
    if not data:
        out.write("(no call in that range has one)\n")
        return
    wq = max(5, *(len(q) for q, _, _ in data))
    wd = max(11, *(len(d) for _, d, _ in data))
    out.write(f"{'queue'.rjust(wq)}  {'disposition'.rjust(wd)}  calls\n")
    for q, d, n in data:
        out.write(f"{(q or '-').rjust(wq)}  {d.rjust(wd)}  {str(n).rjust(5)}\n")


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in ("sl_offered", "occupancy"):
        return f"{100 * value:.1f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def write(out: TextIO, data: list[dict[str, Any]], *, as_csv: bool) -> None:
    heads = ["start", "queue", *(h for _, h in COLUMNS)]
    lines = [
        [
            dt.datetime.fromtimestamp(r["start"]).strftime("%Y-%m-%d %H:%M"),
            r["queue"],
            *(_fmt(k, r.get(k)) for k, _ in COLUMNS),
        ]
        for r in data
    ]
    if as_csv:
        w = csv.writer(out)
        w.writerow(["start", "queue", *(k for k, _ in COLUMNS)])
        w.writerows(lines)
        return
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(heads)
    ]
    out.write("  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True)) + "\n")
    for line in lines:
        out.write("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) + "\n")
    if not lines:
        out.write("(no closed intervals in that range)\n")


def queue_log_rows(con: sqlite3.Connection, after: int, limit: int = 1000) -> list[tuple[int, str]]:
    """(seq, line) outbox rows after ``after``, in seq order; none when there is no outbox yet."""
    try:
        cur = con.execute(
            "SELECT seq, line FROM cti_outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        )
        return [(int(seq), str(line)) for seq, line in cur.fetchall()]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise ReportError(f"cannot read the event outbox: {exc}") from None


def write_queue_log(
    db: str,
    out: TextIO,
    *,
    since: float,
    until: float,
    follow: bool = False,
    poll: float = 0.5,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Asterisk queue_log lines for the events in ``[since, until)`` (epoch seconds); with
    ``follow``, then every new event as it is written, until ``stop()``. Returns lines written."""
    from .queuelog import QueueLog, epoch

    log = QueueLog()
    written = 0
    con = connect_ro(db)
    try:
        cursor = 0
        while True:
            batch = queue_log_rows(con, cursor)
            for seq, line in batch:
                cursor = seq
                envelope = json.loads(line)
                lines = log.feed(envelope)  # every event feeds the state, in or out of range
                if lines and (follow or since <= epoch(envelope["time"]) < until):
                    out.write("".join(f"{x}\n" for x in lines))
                    written += len(lines)
            if batch:
                out.flush()
                continue
            if not follow or stop():
                return written
            time.sleep(poll)
    finally:
        con.close()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="hotline report",
        description="Queue figures per interval, or the events as Asterisk's queue_log (--queue-log).",
    )
    ap.add_argument("--config", default="config.toml")
    ap.add_argument("--from", dest="since", default=None, help="start, local time (default: today 00:00)")
    ap.add_argument("--to", dest="until", default=None, help="end, local time (default: now)")
    ap.add_argument("--queue", default=None)
    ap.add_argument("--csv", action="store_true", help="CSV with raw values instead of a text table")
    ap.add_argument(
        "--queue-log", action="store_true", help="the events as Asterisk queue_log lines (epoch|callid|...)"
    )
    ap.add_argument("--follow", action="store_true", help="with --queue-log: keep writing new events")
    ap.add_argument("--output", default=None, help="with --queue-log: append to this file instead of stdout")
    ap.add_argument(
        "--dispositions",
        action="store_true",
        help="only the agents' wrap-up codes per queue (calls that started in the range)",
    )
    args = ap.parse_args(argv)
    if (args.follow or args.output) and not args.queue_log:
        ap.error("--follow and --output go with --queue-log")
    config = load_config_or_report(args.config)
    if config is None:
        return 2
    today = dt.datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        since = _when(args.since) if args.since else today.timestamp()
        until = _when(args.until) if args.until else dt.datetime.now().timestamp() + 1
        db = str(config.path(config.storage.database))
        if args.queue_log:
            return _queue_log(db, args, since, until)
        codes = dispositions(db, since=since, until=until, queue=args.queue)
        if args.dispositions:
            write_dispositions(sys.stdout, codes, as_csv=args.csv)
            return 0
        data = rows(db, since=since, until=until, queue=args.queue)
    except ReportError as exc:
        print(f"hotline report: {exc}", file=sys.stderr)
        return 2
    write(sys.stdout, data, as_csv=args.csv)
    if not args.csv:  # the CSV stays one table; --dispositions --csv gives the codes
        write_dispositions(sys.stdout, codes, as_csv=False)
    return 0


def _queue_log(db: str, args: argparse.Namespace, since: float, until: float) -> int:
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    if args.follow:
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        until = float("inf")
    out = open(args.output, "a", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        write_queue_log(db, out, since=since, until=until, follow=args.follow, stop=lambda: stopping)
    except OSError as exc:
        print(f"hotline report: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 2
    finally:
        if out is not sys.stdout:
            out.close()
    return 0
