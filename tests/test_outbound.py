"""The outbound guard: the pure policy table (fake local times, no I/O), the DNC CSV
import and CLI (real SQLite in a temp dir), and the async store and guard."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from hotline import outbound as ob

BERLIN = ZoneInfo("Europe/Berlin")
HOURS = ob.parse_hours(
    {"mon": ["09:00-12:00", "13:00-20:00"], "tue": ["09:00-20:00"], "sat": ["10:00-16:00"]},
    holidays=["2025-10-03", "12-25"],
)
NOW_WALL = 1_760_000_000.0  # epoch seconds


def at(day: str, hhmmss: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hhmmss}").replace(tzinfo=BERLIN)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def dnc_rows(db: Path) -> dict[str, dict[str, str]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return {r["number"]: dict(r) for r in conn.execute("SELECT * FROM dnc")}
    finally:
        conn.close()


# ------------------------------------------------------------------ numbers
@pytest.mark.parametrize(
    ("target", "number"),
    [
        ("+49 (30) 123-4567", "+49301234567"),
        ("0049 30 1234567", "+49301234567"),
        ("tel:+49-30-1234567", "+49301234567"),
        ("sip:%2B49301234567@trunk.example;user=phone", "+49301234567"),
        ("sips:5550100@10.0.0.1", "5550100"),
        ("sip:desk@partner.example", None),
        ("alice", None),
        ("00", None),
    ],
)
def test_number_of(target: str, number: str | None) -> None:
    assert ob.number_of(target) == number


# ------------------------------------------------------------------ the policy table
# 2025-10-06 is a Monday, 2025-10-03 a Friday (a configured holiday), 2025-10-05 a Sunday
@pytest.mark.parametrize(
    ("when", "allowed"),
    [
        (at("2025-10-06", "08:59:59"), False),  # before the first window
        (at("2025-10-06", "09:00:00"), True),  # start is inclusive
        (at("2025-10-06", "11:59:59"), True),
        (at("2025-10-06", "12:00:00"), False),  # end is exclusive: the lunch gap
        (at("2025-10-06", "13:00:00"), True),
        (at("2025-10-06", "19:59:59"), True),
        (at("2025-10-06", "20:00:00"), False),
        (at("2025-10-07", "19:30:00"), True),  # tuesday
        (at("2025-10-08", "10:00:00"), False),  # wednesday: no hours configured
        (at("2025-10-11", "10:00:00"), True),  # saturday
        (at("2025-10-11", "16:00:00"), False),
        (at("2025-10-05", "12:00:00"), False),  # sunday
        (at("2025-10-03", "10:00:00"), False),  # a dated holiday (a friday, no hours anyway)
        (at("2028-12-25", "10:00:00"), False),  # a yearly holiday on a monday
        (at("2028-12-18", "10:00:00"), True),  # the monday before
    ],
)
def test_marketing_hours(when: dt.datetime, allowed: bool) -> None:
    decision = ob.check_outbound("+49301234567", "marketing", when, False, HOURS)
    assert decision.allowed is allowed
    assert decision.code == (None if allowed else ob.OUTSIDE_HOURS)


def test_outside_hours_names_the_next_window_in_callee_time() -> None:
    decision = ob.check_outbound("+49301234567", "marketing", at("2025-10-06", "20:00:00"), False, HOURS)
    assert decision.next_allowed == at("2025-10-07", "09:00:00")
    assert "Tue 2025-10-07 09:00 CEST" in decision.message and "…4567" in decision.message
    assert "+49301234567" not in decision.message
    holiday = ob.check_outbound("+49301234567", "marketing", at("2028-12-25", "10:00:00"), False, HOURS)
    assert "a holiday" in holiday.message and holiday.next_allowed == at("2028-12-26", "09:00:00")


@pytest.mark.parametrize(
    ("purpose", "dnc", "when", "code"),
    [
        ("marketing", True, at("2025-10-06", "10:00:00"), ob.DNC),
        ("marketing", True, at("2025-10-06", "22:00:00"), ob.DNC),  # DNC is named first: retrying won't help
        ("marketing", False, at("2025-10-06", "10:00:00"), None),
        ("service", True, at("2025-10-06", "10:00:00"), None),  # service calls are exempt from DNC
        ("service", True, at("2025-10-06", "23:00:00"), None),  # ... and from marketing hours
        ("service", False, at("2025-10-03", "10:00:00"), None),  # ... and from marketing holidays
        ("sales", False, at("2025-10-06", "10:00:00"), ob.BAD_PURPOSE),
    ],
)
def test_dnc_applies_to_marketing_only(purpose: str, dnc: bool, when: dt.datetime, code: str | None) -> None:
    decision = ob.check_outbound("+49301234567", purpose, when, dnc, HOURS)
    assert (decision.allowed, decision.code) == (code is None, code)
    if code == ob.DNC:
        assert "do-not-call" in decision.message and decision.next_allowed is None


def test_service_hours_bound_service_calls_when_configured() -> None:
    service = ob.parse_hours({d: ["08:00-21:00"] for d in ob.WEEKDAYS})
    late = ob.check_outbound(
        "+49301234567", "service", at("2025-10-06", "21:00:00"), True, HOURS, service_hours=service
    )
    assert (late.allowed, late.code) == (False, ob.OUTSIDE_HOURS)
    assert late.next_allowed == at("2025-10-07", "08:00:00")
    ok = ob.check_outbound(
        "+49301234567", "service", at("2025-10-06", "20:59:00"), True, HOURS, service_hours=service
    )
    assert ok.allowed


@pytest.mark.parametrize(
    ("target", "purpose", "code"),
    [
        ("alice", "service", ob.BAD_NUMBER),
        ("alice", "marketing", ob.BAD_NUMBER),
        ("sip:desk@partner.example", "marketing", ob.BAD_NUMBER),  # no DNC check possible: refused
        ("sip:desk@partner.example", "service", None),  # a partner PBX, not a phone number
        ("tel:+49301234567", "service", None),
    ],
)
def test_bad_numbers(target: str, purpose: str, code: str | None) -> None:
    decision = ob.check_outbound(target, purpose, at("2025-10-06", "10:00:00"), False, HOURS)
    assert decision.code == code


@pytest.mark.parametrize(
    ("weekly", "holidays", "fragment"),
    [
        ({"mon": ["9-17"]}, [], "not a range like 09:00-20:00"),
        ({"mon": ["20:00-02:00"]}, [], "split a range past midnight"),
        ({"mon": ["09:00-24:30"]}, [], "not a time of day"),
        ({"monday": ["09:00-17:00"]}, [], "did you mean 'mon'?"),
        ({}, ["25.12.2025"], "not a date like 2025-12-25"),
        ({}, ["02-30"], "not a date"),
    ],
)
def test_parse_hours_errors_name_the_entry(
    weekly: dict[str, list[str]], holidays: list[str], fragment: str
) -> None:
    with pytest.raises(ob.OutboundConfigError, match=fragment) as info:
        ob.parse_hours(weekly, holidays)
    assert info.value.code == "outbound.bad_config"


def test_hours_until_midnight_and_no_hours() -> None:
    late = ob.parse_hours({"fri": ["20:00-24:00"], "sat": ["00:00-02:00"]})
    assert late.allows(at("2025-10-10", "23:59:59")) and late.allows(at("2025-10-11", "01:00:00"))
    never = ob.parse_hours({})
    decision = ob.check_outbound("+4930123", "marketing", at("2025-10-06", "10:00:00"), False, never)
    assert decision.next_allowed is None and "no calling hours are set" in decision.message


def test_local_time_uses_the_given_zone() -> None:
    assert ob.local_time(NOW_WALL, ZoneInfo("UTC")).hour == 8  # 2025-10-09T08:53:20Z
    assert ob.local_time(NOW_WALL, ZoneInfo("America/New_York")).hour == 4
    with pytest.raises(ob.OutboundConfigError, match="IANA"):
        ob.zone("Mars/Olympus")


# ------------------------------------------------------------------ CSV import
def test_import_inserts_then_upserts(tmp_path: Path) -> None:
    db = tmp_path / "hotline.db"
    csv = write(tmp_path / "dnc.csv", "number,note\n+49 (30) 123-4567,asked on call 3f2a\n0049 40 999,\n")
    report = ob.import_csv(db, csv, now_wall=NOW_WALL)
    assert report.ok and (report.rows, report.inserted, report.updated) == (2, 2, 0)
    rows = dnc_rows(db)
    assert set(rows) == {"+49301234567", "+4940999"}
    assert rows["+49301234567"]["note"] == "asked on call 3f2a"
    assert rows["+49301234567"]["source"] == "csv:dnc.csv"
    assert rows["+49301234567"]["added_at"] == "2025-10-09T08:53:20Z"

    again = write(tmp_path / "registry.csv", "number,source\n+49301234567,bnetza\n+4989111,bnetza\n")
    report = ob.import_csv(db, again, now_wall=NOW_WALL + 86_400)
    assert (report.inserted, report.updated) == (1, 1)
    anna = dnc_rows(db)["+49301234567"]
    assert anna["source"] == "bnetza" and anna["note"] == "asked on call 3f2a"
    assert anna["added_at"] == "2025-10-09T08:53:20Z"  # first listed, kept


def test_import_is_all_or_nothing_with_line_numbers(tmp_path: Path) -> None:
    db = tmp_path / "hotline.db"
    csv = write(tmp_path / "dnc.csv", "number,note\n+4930111,\nnot a number,x\n+4930222,\n0049 30 111,dup\n")
    report = ob.import_csv(db, csv, now_wall=NOW_WALL)
    assert not report.ok and report.inserted == 0
    assert [(e.line, e.column) for e in report.errors] == [(3, "number"), (5, "number")]
    assert "+4930111 is also on line 2" in report.summary()
    assert f"{csv}:3: number: 'not a number' is not a phone number" in report.summary()
    assert not db.exists()  # nothing was written, not even the table


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the file is empty"),
        ("+4930111\n", "it looks like data: add a header row"),
        ("number,notes\n+4930111,x\n", "did you mean 'note'?"),
        ("number,note\n+4930111\n", "1 fields, but the header has 2"),
    ],
)
def test_import_file_errors(tmp_path: Path, text: str, fragment: str) -> None:
    report = ob.import_csv(tmp_path / "db", write(tmp_path / "x.csv", text), now_wall=NOW_WALL)
    assert not report.ok and fragment in report.summary()


# ------------------------------------------------------------------ CLI
def test_cli_add_check_remove_with_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database", str(tmp_path / "hotline.db")]
    assert ob.cli_main(["check", "+49 30 1234567", *db]) == 1
    assert "not listed" in capsys.readouterr().out
    assert ob.cli_main(["add", "+49 30 1234567", "--note", "asked on call 3f2a", *db]) == 0
    assert "+49301234567: listed" in capsys.readouterr().out
    assert ob.cli_main(["add", "0049301234567", *db]) == 0  # the same number
    assert "already listed" in capsys.readouterr().out
    assert ob.cli_main(["check", "tel:+49301234567", *db]) == 0
    assert "listed since" in capsys.readouterr().out
    assert ob.cli_main(["remove", "+49301234567", *db]) == 0
    assert ob.cli_main(["remove", "+49301234567", *db]) == 1
    assert "is not on the do-not-call list" in capsys.readouterr().err
    assert ob.cli_main(["add", "alice", *db]) == 2
    assert "not a phone number" in capsys.readouterr().err
    assert ob.cli_main(["check", "alice", *db]) == 2


def test_cli_import_and_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "dnc.csv", "number\n+4930111\n")
    bad = write(tmp_path / "bad.csv", "number\nnope\n")
    assert ob.cli_main(["import", str(bad), "--database", str(tmp_path / "x.db")]) == 1
    assert "nothing was imported" in capsys.readouterr().err
    assert ob.cli_main(["import", str(good), "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    config = write(
        tmp_path / "config.toml",
        '[storage]\ndatabase = "data/hotline.db"\n[[cti.tokens]]\nname = "t"\nsecret = "s"\n',
    )
    assert ob.cli_main(["import", str(good), "--config", str(config)]) == 0
    assert set(dnc_rows(tmp_path / "data" / "hotline.db")) == {"+4930111"}


# ------------------------------------------------------------------ async store and guard
def test_store_and_guard(tmp_path: Path) -> None:
    db = tmp_path / "hotline.db"
    ob.add(db, "+49301234567", now_wall=NOW_WALL)

    async def scenario() -> None:
        guard = ob.build_guard(
            db, marketing_hours={d: ["09:00-20:00"] for d in ob.WEEKDAYS}, timezone="Europe/Berlin"
        )
        await guard.store.open()
        try:
            assert await guard.store.contains("sip:+49301234567@trunk")
            assert not await guard.store.contains("+4930999")
            assert not await guard.store.contains("sip:desk@partner")
            # NOW_WALL is 10:53 in Berlin, 04:53 in New York
            with capture_logs() as logs:
                refused = await guard.check("+49 30 1234567", "marketing", NOW_WALL)
            assert refused.code == ob.DNC
            assert logs == [
                {
                    "event": "outbound_refused",
                    "code": ob.DNC,
                    "purpose": "marketing",
                    "number": "…4567",
                    "log_level": "info",
                }
            ]
            assert (await guard.check("+49 30 1234567", "service", NOW_WALL)).allowed
            assert (await guard.check("+4930999", "marketing", NOW_WALL)).allowed
            early = await guard.check("+12125550100", "marketing", NOW_WALL, callee_tz="America/New_York")
            assert early.code == ob.OUTSIDE_HOURS and "EDT" in early.message
            assert guard.refused == {ob.DNC: 1, ob.OUTSIDE_HOURS: 1}
        finally:
            await guard.store.close()
        # the list cannot be read: marketing fails closed, service goes on
        assert (await guard.check("+4930999", "marketing", NOW_WALL)).code == ob.DNC_UNAVAILABLE
        assert (await guard.check("+4930999", "service", NOW_WALL)).allowed

    asyncio.run(scenario())
