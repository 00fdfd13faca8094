"""Start-up refusal of default or short CTI secrets on non-loopback addresses (issue 11, defect 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hotline import exposure

from .helpers import ROOT, free_port

STRONG = "q7Zr2mWv9XkP4sLt8BcN"  # 20 characters, not a default


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.5", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),  # asyncio binds every interface for ""
        ("10.0.0.5", False),
        ("hotline.example", False),  # a name may resolve anywhere
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert exposure.is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("secret", "refused"),
    [
        ("change-me", True),
        ("CHANGE-ME", True),
        ("test-token", True),
        ("short-secret-15", True),
        (STRONG, False),
    ],
)
def test_weak_secrets_are_refused_off_loopback_only(secret: str, refused: bool) -> None:
    public = exposure.weak_secrets([("ops", secret)], ["0.0.0.0"])
    assert bool(public) is refused
    for finding in public:
        assert finding.code == "config.weak_secret" and "'ops'" in finding.message
        assert secret not in finding.message  # never repeat the secret
        assert "127.0.0.1" in finding.message and "16+" in finding.message  # the fix
    assert exposure.weak_secrets([("ops", secret)], ["127.0.0.1"]) == []


def test_the_http_port_counts_as_an_address() -> None:
    assert exposure.cti_addresses("127.0.0.1", 7080, "0.0.0.0") == ["127.0.0.1", "0.0.0.0"]
    assert exposure.cti_addresses("127.0.0.1", 0, "0.0.0.0") == ["127.0.0.1"]  # HTTP off
    assert exposure.cti_addresses("10.1.1.1", 7080, "") == ["10.1.1.1"]
    assert exposure.weak_secrets([("a", "change-me")], exposure.cti_addresses("127.0.0.1", 7080, "0.0.0.0"))


def test_sip_on_every_interface_is_a_notice() -> None:
    assert [f.code for f in exposure.notices("0.0.0.0")] == ["sip.all_interfaces"]
    assert exposure.notices("127.0.0.1") == []


def _config(tmp_path: Path, cti_host: str, secret: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        "\n".join(
            [
                "[server]",
                'log_format = "json"',
                "[sip]",
                'host = "0.0.0.0"',
                f"port = {free_port()}",
                "[cti]",
                f'host = "{cti_host}"',
                f"port = {free_port()}",
                "http_port = 0",
                "[[cti.tokens]]",
                'name = "local-admin"',
                f'secret = "{secret}"',
                'scopes = ["admin"]',
                "[flows]",
                f'directory = "{ROOT / "flows"}"',
                "[[acd.queues]]",
                'name = "sales"',
                'skills = ["sales"]',
                "[[acd.queues]]",
                'name = "support"',
                'skills = ["support"]',
                "[[acd.queues]]",
                'name = "operator"',
                "",
            ]
        )
    )
    return config


def test_hotline_run_refuses_the_shipped_secret_on_a_public_address(tmp_path: Path) -> None:
    """The shipped `change-me` with [cti] host = 0.0.0.0: exit 2 with the reason and the fix,
    before anything binds. (Before the fix the server started silently.)"""
    config = _config(tmp_path, "0.0.0.0", "change-me")
    try:
        run = subprocess.run(
            [sys.executable, "-m", "hotline", "run", "--config", str(config)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("hotline started with the default secret on 0.0.0.0 instead of refusing")
    assert run.returncode == 2, run.stderr
    assert "hotline: cannot start: config.weak_secret: [[cti.tokens]] 'local-admin'" in run.stderr
    assert "well-known default secret" in run.stderr and "openssl rand" in run.stderr
    assert "change-me" not in run.stderr
    logs = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    assert [e["event"] for e in logs] == ["sip_all_interfaces"]  # said once, in one line
    assert not (tmp_path / "hotline.db").exists()  # refused before opening anything
