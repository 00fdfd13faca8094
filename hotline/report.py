"""`hotline report`: the 15-minute roll-ups from the database, as text or CSV."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sqlite3
import sys
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


def _when(text: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(
            f"hotline report: '{text}' is not a date/time like 2026-11-21 or 2026-11-21T08:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time
    return moment.timestamp()


def rows(db: str, *, since: float, until: float, queue: str | None) -> list[dict[str, Any]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cur = con.execute(
            "SELECT data FROM queue_intervals WHERE start >= ? AND start < ? AND (? IS NULL OR queue = ?) "
            "ORDER BY start, queue",
            (since, until, queue, queue),
        )
        return [json.loads(r[0]) for r in cur.fetchall()]
    except sqlite3.OperationalError as exc:
        raise SystemExit(f"hotline report: cannot read {db}: {exc}") from None
    finally:
        con.close()


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dispositions(db: str, *, since: float, until: float, queue: str | None) -> list[tuple[str, str, int]]:
    """(queue, wrap-up code, calls) for the calls that started in the range and got a code."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cur = con.execute(
            "SELECT COALESCE(queue, ''), disposition, COUNT(*) FROM calls "
            "WHERE disposition IS NOT NULL AND started_at >= ? AND started_at < ? "
            "AND (? IS NULL OR queue = ?) GROUP BY 1, 2 ORDER BY 1, 2",
            (_iso(since), _iso(until), queue, queue),
        )
        return [(str(q), str(d), int(n)) for q, d, n in cur.fetchall()]
    except sqlite3.OperationalError as exc:
        raise SystemExit(f"hotline report: cannot read {db}: {exc}") from None
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


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="hotline report", description="Queue figures per 15-minute interval.")
    ap.add_argument("--config", default="config.toml")
    ap.add_argument("--from", dest="since", default=None, help="start, local time (default: today 00:00)")
    ap.add_argument("--to", dest="until", default=None, help="end, local time (default: now)")
    ap.add_argument("--queue", default=None)
    ap.add_argument("--csv", action="store_true", help="CSV with raw values instead of a text table")
    ap.add_argument(
        "--dispositions",
        action="store_true",
        help="only the agents' wrap-up codes per queue (calls that started in the range)",
    )
    args = ap.parse_args(argv)
    config = load_config_or_report(args.config)
    if config is None:
        return 2
    today = dt.datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    since = _when(args.since) if args.since else today.timestamp()
    until = _when(args.until) if args.until else dt.datetime.now().timestamp() + 1
    db = str(config.path(config.storage.database))
    codes = dispositions(db, since=since, until=until, queue=args.queue)
    if args.dispositions:
        write_dispositions(sys.stdout, codes, as_csv=args.csv)
        return 0
    write(sys.stdout, rows(db, since=since, until=until, queue=args.queue), as_csv=args.csv)
    if not args.csv:  # the CSV stays one table; --dispositions --csv gives the codes
        write_dispositions(sys.stdout, codes, as_csv=False)
    return 0
