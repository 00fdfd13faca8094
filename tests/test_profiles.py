"""Caller profiles: CSV import (real SQLite in a temp dir), the async store with its
HTTP fallback (a real aiohttp server on 127.0.0.1 port 0), recent contacts, and the
pure returning-caller decision."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

import ivr
from hotline import numbers
from hotline import profiles as pr

NOW = 1_760_000_000.0  # epoch seconds

CSV = """\
number,tier,assisted,language,priority_human,name,notes
+49 (30) 123-4567,gold,yes,de,no,Anna,likes email
555 0100,,1,,true,Bob,
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def profiles_in(db: Path) -> dict[str, dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return {r["number"]: dict(r) for r in conn.execute("SELECT * FROM caller_profiles")}
    finally:
        conn.close()


# --------------------------------------------------------------- numbers, rows
@pytest.mark.parametrize(
    ("raw", "number"),
    [
        ("+49 (30) 123-4567", "+49301234567"),
        ("555.0100", "5550100"),
        (" 0049 30 1234 ", "0049301234"),
        ("alice", None),
        ("+", None),
        ("12+34", None),
    ],
)
def test_normalize_number(raw: str, number: str | None) -> None:
    assert numbers.normalize_number(raw) == number


def test_mask_number_keeps_only_the_last_four() -> None:
    assert numbers.mask_number("+49301234567") == "…4567"


# ------------------------------------------------------------------ CSV import
def test_import_inserts_then_upserts_only_the_columns_given(tmp_path: Path) -> None:
    db = tmp_path / "hotline.db"
    report = pr.import_csv(db, write(tmp_path / "p.csv", CSV))
    assert report.ok and (report.rows, report.inserted, report.updated) == (2, 2, 0)
    rows = profiles_in(db)
    anna = rows["+49301234567"]
    assert (anna["tier"], anna["assisted"], anna["language"], anna["priority_human"]) == ("gold", 1, "de", 0)
    assert anna["notes"] == "likes email" and anna["updated_at"].endswith("Z")
    assert rows["5550100"]["tier"] == "standard" and rows["5550100"]["priority_human"] == 1

    update = write(tmp_path / "u.csv", "number,tier\n+49301234567,platinum\n5550199,silver\n")
    report = pr.import_csv(db, update)
    assert (report.inserted, report.updated) == (1, 1)
    anna = profiles_in(db)["+49301234567"]
    assert anna["tier"] == "platinum" and anna["notes"] == "likes email" and anna["language"] == "de"


def test_one_bad_row_imports_nothing_and_every_error_has_its_line(tmp_path: Path) -> None:
    db = tmp_path / "hotline.db"
    pr.import_csv(db, write(tmp_path / "ok.csv", "number,tier\n5550100,gold\n"))
    bad = write(
        tmp_path / "bad.csv",
        "number,tier,assisted,language\n"
        "5550100,silver,no,en\n"  # line 2: fine, but must not be written
        "5550101,diamond,no,en\n"  # line 3: bad tier
        "5550102,gold,perhaps,en\n"  # line 4: bad bool
        "\n"  # line 5: blank, skipped
        "not-a-number,gold,no,en\n"  # line 6
        "555 0100,gold,no,english\n",  # line 7: duplicate of line 2, bad language
    )
    report = pr.import_csv(db, bad)
    assert not report.ok and report.inserted == report.updated == 0
    found = {(e.line, e.column) for e in report.errors}
    assert {(3, "tier"), (4, "assisted"), (6, "number"), (7, "language")} <= found
    assert "diamond" in str(report.errors[0]) and "gold" in str(report.errors[0])
    assert "nothing was imported" in report.summary()
    assert f"{bad}:3: tier:" in report.summary()
    assert profiles_in(db)["5550100"]["tier"] == "gold"


def test_duplicate_numbers_in_one_file_are_an_error(tmp_path: Path) -> None:
    report = pr.import_csv(tmp_path / "db", write(tmp_path / "d.csv", "number\n5550100\n555-0100\n"))
    assert [(e.line, e.column) for e in report.errors] == [(3, "number")]
    assert "line 2" in report.errors[0].message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("5550100,gold\n5550101,gold\n", "add a header row"),
        ("number,teir\n5550100,gold\n", "did you mean 'tier'"),
        ("", "empty"),
        ("phone,tier\n", "no 'number' column"),
    ],
)
def test_header_problems(tmp_path: Path, text: str, needle: str) -> None:
    report = pr.import_csv(tmp_path / "db", write(tmp_path / "h.csv", text))
    assert not report.ok and report.errors[0].line == 1
    assert needle in report.summary()


def test_semicolons_a_bom_and_custom_tiers(tmp_path: Path) -> None:
    db = tmp_path / "db"
    path = tmp_path / "s.csv"
    path.write_bytes("\ufeffNumber;Tier;Name\n5550100;bronze;Zoë\n".encode())
    assert not pr.import_csv(db, path).ok
    report = pr.import_csv(db, path, tiers=("bronze", "standard"))
    assert report.ok, report.summary()
    assert profiles_in(db)["5550100"]["name"] == "Zoë"


def test_cli_import_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "data" / "hotline.db"
    csv_path = write(tmp_path / "p.csv", CSV)
    assert pr.cli_main(["import", str(csv_path), "--database", str(db)]) == 0
    assert "2 new" in capsys.readouterr().out
    assert pr.cli_main(["show", "+49 30 1234567", "--database", str(db)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["profile"]["tier"] == "gold" and shown["profile"]["notes"] == "likes email"
    assert pr.cli_main(["show", "999", "--database", str(db)]) == 1
    write(csv_path, "number,tier\n1,gold\n")
    assert pr.cli_main(["import", str(csv_path), "--database", str(db)]) == 1
    assert "p.csv:2: number:" in capsys.readouterr().err


def test_cli_reads_the_database_from_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(
        tmp_path / "config.toml",
        '[storage]\ndatabase = "var/h.db"\n[[cti.tokens]]\nname = "t"\nsecret = "s"\n',
    )
    csv_path = write(tmp_path / "p.csv", CSV)
    assert pr.cli_main(["import", str(csv_path), "--config", str(config)]) == 0
    assert (tmp_path / "var" / "h.db").exists()
    assert pr.cli_main(["show", "5550100", "--config", str(tmp_path / "missing.toml")]) == 2


# ---------------------------------------------------------------- async store
@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[pr.ProfileStore]:
    db = tmp_path / "hotline.db"
    pr.import_csv(db, write(tmp_path / "p.csv", CSV))
    s = pr.ProfileStore(db)
    await s.open()
    yield s
    await s.close()


async def test_get_from_sqlite(store: pr.ProfileStore) -> None:
    anna = await store.get("+49 30 123 4567")
    assert anna == {
        "number": "+49301234567",
        "tier": "gold",
        "assisted": True,
        "language": "de",
        "priority_human": False,
        "name": "Anna",
        "source": "db",
    }
    assert await store.get("5550999") is None
    assert await store.get("alice") is None


async def test_recent_contacts(store: pr.ProfileStore) -> None:
    await store.record_contact("5550100", "c0", NOW - 30 * 86_400, "menu", None, None, "failed")
    await store.record_contact("555 0100", "c1", NOW - 3000, "menu", None, None, "caller_hangup")
    await store.record_contact(
        "5550100", "c2", NOW - 60, "sales", "sales", "a1", "abandoned", priority=3, waited_seconds=42.0
    )
    await store.record_contact("sip-user", "c3", NOW, None, None, None, "failed")  # not a number: skipped
    recent = await store.recent("5550100", 3600, NOW)
    assert [c.call_id for c in recent] == ["c2", "c1"]
    assert recent[0].queue == "sales" and recent[0].priority == 3 and recent[0].waited_seconds == 42.0
    assert [c.call_id for c in await store.recent("5550100", 120, NOW)] == ["c2"]
    assert await store.recent("5550100", 90 * 86_400, NOW) == recent  # c0 was pruned by a later contact


async def test_caller_for_call_gives_complete_variables_and_a_resume(store: pr.ProfileStore) -> None:
    await store.record_contact("5550100", "c1", NOW - 120, "sales", "sales", None, "abandoned", priority=5)
    caller, offer = await store.caller_for_call("5550100", NOW)
    assert offer is not None and offer.kind == "queue" and offer.priority == 5
    assert caller["known"] and caller["priority_human"] and caller["returning"]
    assert caller["resume"]["queue"] == "sales" and caller["resume"]["minutes_ago"] == 2
    assert caller["recent"][0]["call_id"] == "c1"
    stranger, offer = await store.caller_for_call("5559999", NOW)
    assert offer is None
    assert stranger == {
        "number": "5559999",
        "known": False,
        "source": "",
        "tier": "standard",
        "assisted": False,
        "language": "",
        "priority_human": False,
        "name": "",
        "recent": [],
        "contacts_recent": 0,
        "returning": False,
        "resume": {},
        "sentiment": {"last": None, "label": "", "trend": "", "calls": 0, "history": []},
        "last_sentiment": None,
    }


async def test_sentiment_keeps_the_last_n_with_a_trend(tmp_path: Path) -> None:
    store = pr.ProfileStore(tmp_path / "p.db", keep_sentiment=3)
    await store.open()
    try:
        for i, score in enumerate([0.6, 0.4, 0.5, -0.5]):
            await store.record_sentiment("+49 30 1234", f"c{i}", 1000.0 + i, score, "x")
        await store.record_sentiment("not a number", "c9", 2000.0, 0.1, "x")  # skipped
        caller, _ = await store.caller_for_call("+49301234", 2000.0)
    finally:
        await store.close()
    want = {"last": -0.5, "label": "x", "trend": "worse", "calls": 3, "history": [-0.5, 0.5, 0.4]}
    assert caller["sentiment"] == want
    assert caller["last_sentiment"] == -0.5
    shown = pr.show(tmp_path / "p.db", "+49301234", now_wall=2000.0)
    assert shown is not None and shown["sentiment"]["history"] == [-0.5, 0.5, 0.4]


async def test_the_caller_variable_reaches_a_flow(store: pr.ProfileStore) -> None:
    flow = ivr.compile_flow(
        "flow: t\nstart: route\nnodes:\n"
        "  route:\n    type: branch\n    cases:\n"
        "      - {if: \"caller.priority_human or caller.tier in ['gold', 'platinum']\", next: human}\n"
        "    default: bye\n"
        "  human: {type: queue, queue: vip, priority: 9}\n"
        "  bye: {type: hangup}\n",
        "t.yaml",
    )[0]
    assert flow is not None
    for number, queued in (("+49301234567", True), ("5550100", True), ("5559999", False)):
        caller, _ = await store.caller_for_call(number, NOW)
        interp = ivr.build_interpreter(flow, "c", number, variables={"caller": caller})
        out = interp.start(0.0)
        assert any(isinstance(o, ivr.Enqueue) for o in out) == queued, number


# ------------------------------------------------------------------ HTTP lookup
@pytest.fixture
async def crm() -> AsyncIterator[tuple[str, list[str]]]:
    seen: list[str] = []

    async def caller(request: web.Request) -> web.StreamResponse:
        number = request.match_info["number"]
        seen.append(number)
        if number == "+15550001":
            return web.json_response({"tier": "gold", "assisted": True, "language": "fr", "notes": "x"})
        if number == "+15550002":
            return web.json_response({"tier": "diamond", "priority_human": "yes", "name": "Cy"})
        if number == "+15550003":
            await asyncio.sleep(2)
            return web.json_response({"tier": "gold"})
        if number == "+15550004":
            return web.Response(text="<html>oops</html>")
        if number == "+15550006":  # an escaped lone surrogate: valid JSON, not encodable text
            return web.Response(text='{"tier": "gold", "name": "Bj\\udcf6rn"}')
        if number == "+15550007":  # nested past any sane depth: RecursionError in json.loads
            return web.Response(text='{"tier": "gold", "x": ' + "[" * 5000 + "]" * 5000 + "}")
        if number == "+15550008":  # 2 MiB
            return web.Response(text='{"tier": "gold", "name": "' + "x" * (2 << 20) + '"}')
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/callers/{number}", caller)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/callers/{{number}}", seen
    await runner.cleanup()


async def test_a_crm_body_is_bounded_and_made_safe_where_it_enters(
    tmp_path: Path, crm: tuple[str, list[str]]
) -> None:
    """Issue 11: what an HTTP peer sends is network input like a SIP header; an unencodable
    string, a body nested 5000 deep or 2 MiB long must not reach the call (or a traceback)."""
    url, _seen = crm
    s = pr.ProfileStore(tmp_path / "hotline.db", http=pr.HttpLookup(url=url, timeout=2.0))
    await s.open()
    try:
        with capture_logs() as logs:
            safe = await s.get("+15550006")
            assert safe is not None and safe["tier"] == "gold"
            safe["name"].encode("utf-8")  # no lone surrogate left
            assert safe["name"] == "Bj\\udcf6rn"
            assert await s.get("+15550007") is None
            assert await s.get("+15550008") is None
        failed = [e for e in logs if e["event"] == "profile_lookup_failed"]
        assert [e["reason"] for e in failed] == ["JsonLimitError", "JsonLimitError"]
        assert not any("exc_info" in e for e in logs)
    finally:
        await s.close()


async def test_http_fallback(tmp_path: Path, crm: tuple[str, list[str]]) -> None:
    url, seen = crm
    db = tmp_path / "hotline.db"
    pr.import_csv(db, write(tmp_path / "p.csv", "number,tier\n+15550009,silver\n"))
    s = pr.ProfileStore(db, http=pr.HttpLookup(url=url, timeout=0.3))
    await s.open()
    try:
        assert (await s.get("+15550009") or {})["source"] == "db"  # SQLite first
        assert seen == []
        gold = await s.get("+1 555 0001")
        assert gold == {
            "number": "+15550001",
            "tier": "gold",
            "assisted": True,
            "language": "fr",
            "priority_human": False,
            "name": "",
            "source": "http",
        }
        assert seen == ["+15550001"]  # the + survives the URL
        with capture_logs() as logs:
            partial = await s.get("+15550002")  # a bad tier is dropped, the rest kept
            assert partial is not None and partial["tier"] == "standard" and partial["priority_human"]
            assert await s.get("+15550003") is None  # timed out
            assert await s.get("+15550004") is None  # not JSON
            assert await s.get("+15550005") is None  # 404
        events = [e["event"] for e in logs]
        assert events.count("profile_lookup_failed") == 2 and "profile_lookup_field_dropped" in events
        assert all("+1555" not in json.dumps(e, default=str) for e in logs)  # numbers are masked
    finally:
        await s.close()


# ------------------------------------------------------------- returning callers
def contact(**kw: Any) -> pr.Contact:
    base: dict[str, Any] = {"call_id": "c1", "number": "5550100", "ended_at": NOW - 120, "cause": "abandoned"}
    return pr.Contact(**{**base, **kw})


def test_abandoned_in_queue_resumes_the_place_in_line() -> None:
    offer = pr.resume_offer(
        [contact(queue="billing", priority=4, waited_seconds=95.0, last_node="billing")], NOW
    )
    assert offer is not None
    assert (offer.kind, offer.queue, offer.priority, offer.waited_seconds) == ("queue", "billing", 4, 95.0)
    assert offer.seconds_ago == 120


def test_hung_up_in_the_ivr_resumes_the_last_node() -> None:
    c = contact(cause="caller_hangup", flow="main", last_node="account_menu")
    offer = pr.resume_offer([c], NOW)
    assert offer is not None and (offer.kind, offer.node, offer.flow) == ("node", "account_menu", "main")
    assert pr.resume_offer([c], NOW, node_exists=lambda flow, node: False) is None  # removed by a reload


@pytest.mark.parametrize(
    "kw",
    [
        {"cause": "caller_hangup", "agent_connected": True, "queue": "sales"},  # served, then hung up
        {"cause": "agent_hangup", "agent_connected": True},
        {"cause": "ivr_hangup", "last_node": "goodbye"},  # the flow ended it on purpose
        {"cause": "transferred", "last_node": "xfer"},
        {"ended_at": NOW - 601, "queue": "sales"},  # outside the window
        {"cause": "caller_hangup"},  # nowhere to resume
    ],
)
def test_no_resume(kw: dict[str, Any]) -> None:
    assert pr.resume_offer([contact(**kw)], NOW) is None


def test_only_the_latest_call_counts_and_the_window_is_configurable() -> None:
    dropped = contact(call_id="old", ended_at=NOW - 300, queue="sales")
    served = contact(call_id="new", ended_at=NOW - 100, cause="caller_hangup", agent_connected=True)
    assert pr.resume_offer([dropped, served], NOW) is None
    assert pr.resume_offer([dropped], NOW, pr.ResumePolicy(window=200)) is None
    failed = contact(cause="failed", ended_at=NOW + 5, last_node="menu", flow="main")  # clock skew
    offer = pr.resume_offer([failed], NOW)
    assert offer is not None and offer.seconds_ago == 0.0
    assert pr.resume_offer([], NOW) is None


def test_the_docs_csv_example_imports(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "profiles.md").read_text(encoding="utf-8")
    example = doc.split("```csv\n", 1)[1].split("```", 1)[0]
    report = pr.import_csv(tmp_path / "db", write(tmp_path / "callers.csv", example))
    assert report.ok and report.inserted == 2, report.summary()
    assert profiles_in(tmp_path / "db")["+15550100"]["priority_human"] == 1
