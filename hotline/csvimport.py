"""CSV imports into the server's SQLite file, shared by the profile and do-not-call imports:
the header check, the row reader, the report, and one all-or-nothing upsert."""

from __future__ import annotations

import csv
import difflib
import io
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class RowError:
    line: int  # 1-based line in the CSV file (the header is line 1)
    column: str  # CSV column, or "" for the whole row/file
    message: str  # what is wrong and what to write instead

    def __str__(self) -> str:
        return f"line {self.line}: {self.column + ': ' if self.column else ''}{self.message}"


@dataclass(slots=True)
class ImportReport:
    path: str
    rows: int = 0  # data rows read
    inserted: int = 0  # new numbers
    updated: int = 0  # numbers already known, overwritten in the CSV's columns
    errors: list[RowError] = field(default_factory=list)  # any error means nothing was written

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self, limit: int = 50) -> str:
        if self.ok:
            return f"{self.path}: imported {self.rows} rows ({self.inserted} new, {self.updated} updated)"
        lines = [
            f"{self.path}:{e.line}: {e.column + ': ' if e.column else ''}{e.message}" for e in self.errors
        ]
        more = len(self.errors) - limit
        tail = [f"... and {more} more"] if more > 0 else []
        head = f"{self.path}: {len(self.errors)} error(s); nothing was imported"
        return "\n".join([head, *lines[:limit], *tail])


def open_sync(db_path: Path, schema: str) -> sqlite3.Connection:
    """A blocking connection for the CLI imports (autocommit, WAL), with ``schema`` applied."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(schema)
    return conn


def upsert_all(
    conn: sqlite3.Connection,
    table: str,
    sql: str,
    rows: Iterable[tuple[str, Sequence[Any]]],
    report: ImportReport,
) -> None:
    """Run ``sql`` for every (number, parameters) in one transaction, counting in ``report``
    which numbers were new to ``table`` and which were updated; all or nothing."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            known = {r[0] for r in conn.execute(f"SELECT number FROM {table}")}
            for number, params in rows:
                conn.execute(sql, params)
                if number in known:
                    report.updated += 1
                else:
                    report.inserted += 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            report.inserted = report.updated = 0
            raise
    finally:
        conn.close()


def open_csv(
    csv_path: Path,
    known: Collection[str],
    example: str,
    is_number: Callable[[str], bool],
    report: ImportReport,
) -> tuple[Any, list[str]] | None:
    """Read a CSV file and check its header (shared by the profile and DNC imports).

    Returns the row reader and the lower-cased columns, or None with the errors in
    ``report``; ``example`` is the header shown when the file is empty."""
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        report.errors.append(RowError(1, "", f"cannot read the file ({exc}); save it as UTF-8 CSV"))
        return None
    try:
        dialect: Any = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader, None)
    if header is None:
        report.errors.append(
            RowError(1, "", f"the file is empty; the first line must be a header like {example}")
        )
        return None
    columns = [h.strip().lower() for h in header]
    if "number" not in columns:
        looks_like_data = bool(columns) and is_number(columns[0])
        why = "it looks like data: add a header row" if looks_like_data else "add a 'number' column"
        report.errors.append(RowError(1, "", f"the header has no 'number' column; {why}"))
    for col in columns:
        if col not in known:
            guess = difflib.get_close_matches(col, list(known), n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else f"known columns: {', '.join(known)}"
            report.errors.append(RowError(1, col, f"unknown column; {hint}"))
    if len(set(columns)) != len(columns):
        report.errors.append(RowError(1, "", "a column appears twice in the header"))
    return (reader, columns) if not report.errors else None


def csv_rows(reader: Any, columns: list[str], report: ImportReport) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, column -> cell) for each data row of an opened CSV: blank lines skipped, every
    other row counted in ``report``, and rows with the wrong number of fields reported."""
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue  # blank line
        report.rows += 1
        if len(cells) != len(columns):
            report.errors.append(
                RowError(line, "", f"{len(cells)} fields, but the header has {len(columns)}")
            )
            continue
        yield line, dict(zip(columns, cells, strict=True))
