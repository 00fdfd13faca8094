"""GET /recordings/<call_id> on the HTTP port, and the hash-chained audit log of every access."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import cti_bridge

TOKENS = [
    cti_bridge.Token("qa-desk", "qa-secret", frozenset({"read"})),
    cti_bridge.Token("no-scopes", "bare-secret", frozenset()),
]
BODY = bytes(range(256)) * 40  # 10240 bytes standing in for a WAV


async def no_control(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    raise cti_bridge.CtiError("cti.unknown_command", cmd)


@pytest.fixture
async def server(tmp_path: Path) -> Any:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    (recordings / "c1.wav").write_bytes(BODY)

    def resolve(call_id: str) -> Path | None:
        path = recordings / f"{call_id}.wav"
        return path if path.exists() else None

    audit = cti_bridge.AuditLog(tmp_path / "audit.db")
    srv = cti_bridge.build_cti(
        cti_bridge.EventBus(), TOKENS, no_control, host="127.0.0.1", port=None,
        http_port=0, recordings=resolve, audit=audit,
    )  # fmt: skip
    await srv.start()
    srv.audit_path = tmp_path / "audit.db"  # type: ignore[attr-defined]
    yield srv
    await srv.stop()
    audit.close()


async def get(server: Any, path: str, token: str | None = None, **headers: str) -> tuple[int, Any, bytes]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{server.http_port}{path}", headers=headers) as resp,
    ):
        return resp.status, resp.headers, await resp.read()


async def test_a_read_token_downloads_the_recording_and_ranges_work(server: Any) -> None:
    status, headers, body = await get(server, "/recordings/c1", "qa-secret")
    assert status == 200 and body == BODY
    assert headers["Content-Length"] == str(len(BODY)) and headers["Accept-Ranges"] == "bytes"
    status, headers, body = await get(server, "/recordings/c1", "qa-secret", Range="bytes=100-199")
    assert status == 206 and body == BODY[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(BODY)}"
    status, headers, body = await get(server, "/recordings/c1", "qa-secret", Range="bytes=-16")
    assert status == 206 and body == BODY[-16:]
    status, headers, _ = await get(server, "/recordings/c1", "qa-secret", Range="bytes=999999-")
    assert status == 416


@pytest.mark.parametrize(
    ("path", "token", "status", "code"),
    [
        ("/recordings/c1", None, 401, "cti.auth_required"),
        ("/recordings/c1", "wrong", 401, "cti.auth_failed"),
        ("/recordings/c1", "bare-secret", 403, "cti.forbidden"),
        ("/recordings/nope", "qa-secret", 404, "cti.not_found"),
        ("/recordings/..%2Fsecret", "qa-secret", 404, "cti.not_found"),
    ],
)
async def test_refusals_are_json_errors_with_stable_codes(
    server: Any, path: str, token: str | None, status: int, code: str
) -> None:
    got, headers, body = await get(server, path, token)
    assert got == status
    assert headers["Content-Type"].startswith("application/json")
    error = __import__("json").loads(body)["error"]
    assert error["code"] == code and error["message"]
    if status == 401:
        assert headers["WWW-Authenticate"].startswith("Bearer")


async def test_every_access_is_audited_and_the_chain_verifies(server: Any) -> None:
    await get(server, "/recordings/c1", "qa-secret", Range="bytes=0-9")
    await get(server, "/recordings/c1", "wrong")
    await get(server, "/recordings/nope", "qa-secret")
    rows = server.audit.rows()
    assert [(r["action"], r["who"], r["what"], r["result"]) for r in rows] == [
        ("recording.read", "qa-desk", "c1", "ok"),
        ("recording.read", None, "c1", "unauthorized"),
        ("recording.read", "qa-desk", "nope", "not_found"),
    ]
    first = __import__("json").loads(rows[0]["fields"])
    assert first["status"] == 206 and first["bytes"] == 10 and first["range"] == "bytes=0-9"
    assert rows[0]["at"].endswith("Z")
    assert not any("secret" in str(r) or "wrong" in str(r) for r in rows)  # never the offered token
    assert cti_bridge.verify_audit(server.audit_path) == (True, None)


def test_tampering_with_a_row_is_found_at_that_row(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    log = cti_bridge.AuditLog(db, wall_clock=lambda: 1_800_000_000.0)
    for n in range(5):
        log.audit("recording.read", who="qa", what=f"c{n}", result="ok", bytes=100)
    log.audit("retention.purge", who="retention", result="ok", calls=12, recordings=10, older_than_days=90)
    log.close()
    assert cti_bridge.verify_audit(db) == (True, None)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_log SET who = 'someone-else' WHERE id = 3")
    assert cti_bridge.verify_audit(db) == (False, 3)


def test_rewriting_a_row_and_its_hash_is_found_at_the_next_row(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    log = cti_bridge.AuditLog(db)
    for n in range(4):
        log.audit("recording.read", who="qa", what=f"c{n}", result="ok")
    with sqlite3.connect(db) as conn:  # a careful forger recomputes row 2's own hash ...
        prev = conn.execute("SELECT hash FROM audit_log WHERE id = 1").fetchone()[0]
        cols = ("id", "at", "action", "who", "what", "result", "fields")
        row = dict(
            zip(
                cols,
                conn.execute(f"SELECT {', '.join(cols)} FROM audit_log WHERE id = 2").fetchone(),
                strict=True,
            )
        )
        row["what"] = "c-forged"
        conn.execute(
            "UPDATE audit_log SET what = ?, hash = ? WHERE id = 2",
            (row["what"], __import__("cti_bridge.audit").audit.row_hash(prev, row)),
        )
    assert cti_bridge.verify_audit(db) == (False, 3)  # ... and row 3 no longer links to it
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit_log WHERE id = 2")
    assert cti_bridge.verify_audit(db) == (False, 3)
    log.close()
