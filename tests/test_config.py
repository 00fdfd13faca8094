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
    assert {q.name for q in config.acd.queues} == {"sales", "support", "operator", "care"}
    text = (ROOT / "config.toml").read_text()
    assert config.proxy is not None and config.proxy.managed  # the shipped setup registers softphones
    sections = (
        "server", "sip", "cti", "storage", "recordings", "flows", "prompts", "stats", "http", "proxy",
        "analytics", "qa",
    )
    for section in sections:
        table = getattr(config, section)
        for name in table.__dataclass_fields__:
            written = (
                f"\n{name} = " in text or f"[[{section}.{name}]]" in text or f"[{section}.{name}" in text
            )
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
        # without a [proxy] (registrar) an agent can only be rung at a configured contact
        ("[[cti.tokens]]\nname='a'\nsecret='b'\n[[acd.agents]]\nid='1'\n", "agent 1 has no contact"),
        ("[sip\n", "config.toml"),
        ('[analytics]\nchannels = ["both"]\n', "analytics.channels"),
        ('[analytics.actions]\ncomplaint = ["shout"]\n', "use alert, priority, screen_pop, summary"),
        ("[analytics]\nagitation_level = 0.3\n", "agitation_clear <= agitation_level"),
        ('[analytics.keywords.en]\na = ["x"]\nb = ["x"]\n', "analytics.keywords.en: phrase 'x' is in both"),
        ('[analytics.recognizers]\nen = "whisper"\n', 'use "pocketsphinx" or "vosk:<model>"'),
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
