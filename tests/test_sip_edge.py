"""The SIP edge without SIP: registrations diffing, the guard, config, credentials, and the
rendered Kamailio config checked by Kamailio itself (`kamailio -c`)."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hotline import edge, proxy
from hotline.config import ConfigError, ProxyConfig, load_config
from hotline.credentials import TABLE, CredentialStore, ha1
from hotline.registrations import (
    AgentRegistered,
    AgentUnregistered,
    Contact,
    GuardChange,
    GuardTable,
    RegistrationTable,
    agents_to_park,
)
from hotline.trunks import customer_dial

from .helpers import ROOT, demo_certificate


def contact(uri: str, expires: float, ua: str = "baresip", received: str = "") -> Contact:
    return Contact(uri=uri, expires=expires, user_agent=ua, received=received, transport="udp")


# ------------------------------------------------------------------ registrations (pure)
def test_a_new_contact_is_registered_and_a_refresh_is_silent() -> None:
    table = RegistrationTable(["1001", "1002"])
    snap = {"1001": [contact("sip:1001@10.0.0.5:5062", 1060.0, received="sip:203.0.113.9:40000")]}
    (event,) = table.update(snap, 1000.0)
    assert event == AgentRegistered(
        agent_id="1001",
        contact="sip:1001@10.0.0.5:5062",
        user_agent="baresip",
        transport="udp",
        source="203.0.113.9:40000",
        expires=60.0,
    )
    assert table.is_registered("1001") and not table.is_registered("1002")
    refreshed = {"1001": [contact("sip:1001@10.0.0.5:5062", 1120.0)]}
    assert table.update(refreshed, 1060.0) == []


def test_a_contact_gone_before_its_expiry_was_unregistered_one_gone_at_it_expired() -> None:
    table = RegistrationTable(["1001"])
    table.update({"1001": [contact("sip:a@h", 1060.0), contact("sip:b@h", 1030.0)]}, 1000.0)
    events = table.update({"1001": [contact("sip:a@h", 1060.0)]}, 1029.5)
    assert events == [
        AgentUnregistered(
            agent_id="1001", contact="sip:b@h", user_agent="baresip", reason="expired", registered=True
        )
    ]
    events = table.update({}, 1040.0)
    assert [(e.contact, e.reason, e.registered) for e in events] == [("sip:a@h", "unregistered", False)]  # type: ignore[union-attr]
    assert not table.is_registered("1001")


def test_aors_that_are_not_agents_are_ignored() -> None:
    table = RegistrationTable(["1001"])
    assert table.update({"9999": [contact("sip:x@h", 50.0)]}, 0.0) == []


def test_guard_changes_are_reported_once_each_way() -> None:
    guard = GuardTable()
    assert guard.update({"127.0.0.3": 5}, {}) == [
        GuardChange(kind="blocked", source="127.0.0.3", active=True, value=5)
    ]
    assert guard.update({"127.0.0.3": 5}, {"127.0.0.2": 41}) == [
        GuardChange(kind="flood", source="127.0.0.2", active=True, value=41)
    ]
    assert guard.update({}, {}) == [
        GuardChange(kind="blocked", source="127.0.0.3", active=False, value=5),
        GuardChange(kind="flood", source="127.0.0.2", active=False, value=41),
    ]


def test_only_available_or_wrapping_up_agents_without_a_phone_are_parked() -> None:
    states = {"a": "available", "b": "wrap_up", "c": "on_call", "d": "not_ready", "e": "available"}
    # e rings at a fixed contact: registration does not concern it
    assert agents_to_park(states, ["a", "b", "c", "d"], registered=set()) == ["a", "b"]
    assert agents_to_park(states, ["a", "b"], registered={"a"}) == ["b"]


def test_guard_alerts_name_the_source_and_the_limit() -> None:
    settings = ProxyConfig(auth_fail_limit=5, block_seconds=600)
    raised = edge.guard_alert(
        GuardChange(kind="blocked", source="127.0.0.3", active=True, value=5), settings
    )
    assert raised.wire == "alert.raised" and raised.code == "sip.blocked"
    assert "127.0.0.3" in raised.message and "600 s" in raised.message and raised.limit == 5.0
    cleared = edge.guard_alert(
        GuardChange(kind="flood", source="127.0.0.2", active=False, value=9), settings
    )
    assert cleared.wire == "alert.cleared" and cleared.code == "sip.flood"


def test_kamailio_rpc_answers_are_parsed() -> None:
    dump = {
        "Domains": [
            {
                "Domain": {
                    "AoRs": [
                        {
                            "Info": {
                                "AoR": "1001",
                                "Contacts": [
                                    {
                                        "Contact": {
                                            "Address": "sip:1001-0x1@127.0.0.1:5071",
                                            "Expires": 56,
                                            "User-Agent": "baresip v1.0.0",
                                            "Received": "[not set]",
                                            "Socket": "tls:127.0.0.1:5061",
                                        }
                                    }
                                ],
                            }
                        }
                    ]
                }
            }
        ]
    }
    (c,) = edge.parse_location(dump, 100.0)["1001"]
    assert (c.expires, c.received, c.transport) == (156.0, "", "tls")
    assert edge.parse_htable([{"entry": 3, "slot": [{"name": "127.0.0.2", "value": 7}]}]) == {"127.0.0.2": 7}


# ------------------------------------------------------------------------- config
BASE = """
[sip]
host = "127.0.0.1"
port = 15060
[[cti.tokens]]
name = "t"
secret = "s"
scopes = ["admin"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(BASE + text)
    return path


def test_plain_passwords_are_hashed_at_load(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, '[proxy]\nrealm = "example"\n[[acd.agents]]\nid = "1001"\npassword = "pw-1001-x"\n')
    )
    (agent,) = config.acd.agents
    assert agent.password == ""
    assert agent.ha1 == hashlib.md5(b"1001:example:pw-1001-x").hexdigest()
    assert "pw-1001-x" not in repr(config)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[acd.agents]]\nid = "1001"\n', "has no contact"),
        ('[proxy]\n[[acd.agents]]\nid = "1"\nmedia_encryption = "aes"\n', "media_encryption must be"),
        ('[proxy]\ntls_port = 0\n[[acd.agents]]\nid = "1"\nmedia_encryption = "srtp"\n', "needs a [proxy]"),
        ('[[acd.agents]]\nid = "1"\ncontact = "sip:1@h"\nmedia_encryption = "srtp"\n', "needs a [proxy]"),
        ('[proxy]\n[[acd.agents]]\nid = "1"\npassword = "x"\nha1 = "0"\n', "ha1 must be"),
        ("[proxy]\ninternal_port = 15060\n", "internal_port must differ"),
        ('[callbacks]\ntrunk = "nope"\n', "not a [[trunks]] name"),
        ('[[trunks]]\nname = "c"\nhost = "sip:c@x"\n', "host is an address"),
        ('[[trunks]]\nname = "c"\nhost = "c.example"\nregister = true\n', "needs username"),
    ],
)
def test_bad_edge_config_is_refused_with_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(write(tmp_path, text))


def test_customers_are_dialled_through_the_named_trunk(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            '[callbacks]\ntrunk = "carrier"\n[[trunks]]\nname = "carrier"\n'
            'host = "sip.carrier.example:5070"\nusername = "acct"\npassword = "pw"\n',
        )
    )
    assert customer_dial(config, "5551234") == (
        "sip:5551234@sip.carrier.example:5070;transport=udp",
        "carrier",
    )
    assert customer_dial(config, "sip:x@y") == ("sip:x@y", "")


# --------------------------------------------------------------------- credentials
def test_credentials_are_stored_as_ha1_only(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "hotline.db")
    store.set("1001", ha1("1001", "hotline", "s3cret-pass"), "hotline", "passwd", 1.0)
    warnings = store.sync_config([("1002", ha1("1002", "other", "x"))], "other", 2.0)
    assert warnings == [
        "agent 1001: its SIP password was set for realm 'hotline', not 'other'; "
        "set it again with `hotline agents passwd 1001`"
    ]
    raw = (tmp_path / "hotline.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("hotline.db-*")
    )
    assert b"s3cret-pass" not in raw
    conn = sqlite3.connect(tmp_path / "hotline.db")
    assert conn.execute("SELECT table_version FROM version WHERE table_name = ?", (TABLE,)).fetchone() == (7,)


def test_agents_passwd_sets_an_ha1_and_refuses_unknown_agents(tmp_path: Path) -> None:
    config = write(tmp_path, '[proxy]\n[[acd.agents]]\nid = "1001"\n')
    run = [sys.executable, "-m", "hotline", "agents", "passwd", "--config", str(config), "--password-stdin"]
    ok = subprocess.run([*run, "1001"], input="correct-horse\n", capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    stored = CredentialStore(tmp_path / "hotline.db").all()["1001"]
    assert stored.ha1 == ha1("1001", "hotline", "correct-horse") and stored.source == "passwd"
    unknown = subprocess.run(
        [*run, "9999"], input="correct-horse\n", capture_output=True, text=True, cwd=ROOT
    )
    assert unknown.returncode == 2 and "no agent '9999'" in unknown.stderr
    short = subprocess.run([*run, "1001"], input="short\n", capture_output=True, text=True, cwd=ROOT)
    assert short.returncode == 1 and "at least 8" in short.stderr


# ----------------------------------------------------------------- rendered config
def test_every_placeholder_must_be_filled(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[proxy]\n"))
    with pytest.raises(ValueError, match="NOPE"):
        proxy.render(config, proxy.default_paths(config), template="x = @@NOPE@@\n")


def test_the_rendered_config_passes_kamailios_own_check(tmp_path: Path) -> None:
    cert, key = demo_certificate()
    config_path = write(
        tmp_path,
        f'[proxy]\ntls_port = 15061\ntls_cert = "{cert}"\ntls_key = "{key}"\nregister_limit = 7\n'
        '[[acd.agents]]\nid = "1001"\npassword = "pw-1001-x"\n',
    )
    printed = subprocess.run(
        [sys.executable, "-m", "hotline", "proxy", "config", "--config", str(config_path), "--write"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert printed.returncode == 0, printed.stderr
    cfg = tmp_path / "proxy" / "kamailio.cfg"
    assert printed.stdout == cfg.read_text()
    assert "listen=tls:127.0.0.1:15061" in printed.stdout and "$var(limit) = 7;" in printed.stdout
    assert "@@" not in printed.stdout
    assert (
        (tmp_path / "proxy" / "dispatcher.list")
        .read_text()
        .splitlines()[1]
        .startswith("1 sip:127.0.0.1:5090;transport=udp")
    )
    check = subprocess.run(["kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0 and "config file ok" in (check.stdout + check.stderr).lower(), check.stderr


def test_hotline_proxy_config_needs_a_proxy_table(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hotline", "proxy", "config", "--config", str(write(tmp_path, ""))],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 2 and "no [proxy] table" in out.stderr
