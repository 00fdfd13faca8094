"""config.toml loading: the shipped file, defaults, and errors a person can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_loads_with_documented_keys() -> None:
    config = load_config(ROOT / "config.toml")
    assert config.sip.port == 5060 and config.sip.transports == ("udp", "tcp")
    assert config.sip.clock_rate == 8000
    assert config.cti.port == 7011
    assert config.path(config.storage.database) == ROOT / "hotline.db"
    assert config.path(config.recordings.directory) == ROOT / "recordings"
    assert {q.name for q in config.acd.queues} == {"sales", "support", "operator"}
    text = (ROOT / "config.toml").read_text()
    for section in ("server", "sip", "cti", "storage", "recordings", "flows", "prompts", "stats"):
        table = getattr(config, section)
        for name in table.__dataclass_fields__:
            written = f"\n{name} = " in text or f"[[{section}.{name}]]" in text
            assert written, f"[{section}] {name} is not in config.toml"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[sip]\nprot = 5060\n", "unknown key 'prot' (did you mean 'port'?)"),
        ('[sip]\nport = "5060"\n', "sip.port must be a int"),
        ("[cti]\nport = 1\n", "[[cti.tokens]] is empty"),
        (
            "[[cti.tokens]]\nname='a'\nsecret='b'\n[[acd.agents]]\nid='1'\ncontact='1001@host'\n",
            "must be a SIP URI",
        ),
        ("[[cti.tokens]]\nname='a'\nsecret='b'\n[[acd.agents]]\nid='1'\n", "'contact' is required"),
        ("[sip\n", "config.toml"),
        (
            "[sip]\ntrusted_proxies = ['kamailio']\n[[cti.tokens]]\nname='a'\nsecret='b'\n",
            "sip.trusted_proxies: 'kamailio' is not an IP address",
        ),
        ("[sip]\nhandshake_timeout = 0\n[[cti.tokens]]\nname='a'\nsecret='b'\n", "must be above 0"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)


def test_run_refuses_a_broken_config_with_exit_2(tmp_path: Path) -> None:
    from hotline.cli import main

    path = tmp_path / "c.toml"
    path.write_text("[sip]\nprot = 1\n")
    assert main(["run", "--config", str(path)]) == 2
