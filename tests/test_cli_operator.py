"""The defects an operator hit on the CLI, one test each: one clear line and an exit code,
never a traceback (issue 15)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cti_bridge
from hotline.cli import main
from hotline.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "[[cti.tokens]]\nname = 'a'\nsecret = 'b'\n"


def _config(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "flows").mkdir(exist_ok=True)
    flow = (ROOT / "flows" / "main.yaml").read_text()
    (tmp_path / "flows" / "main.yaml").write_text(flow)
    path = tmp_path / "config.toml"
    queues = "".join(f"[[acd.queues]]\nname = '{q}'\n" for q in ("sales", "support", "operator"))
    path.write_text(f"{TOKEN}[flows]\ndirectory = 'flows'\n[prompts]\ndirectories = []\n{queues}{extra}")
    return path


def _hotline(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == "hotline 0.1.0"


def test_audit_without_a_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["audit"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "required" in err and "verify" in err and "Traceback" not in err


def test_report_before_the_database_exists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    assert main(["report", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no database at" in err and "hotline run" in err
    assert main(["report", "--config", str(config), "--queue-log"]) == 2


def test_report_on_a_database_without_intervals_is_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    cti_bridge.Outbox(tmp_path / "hotline.db", retain_seconds=60, retain_events=10).close()
    assert main(["report", "--config", str(config)]) == 0
    assert "(no closed intervals in that range)" in capsys.readouterr().out


def test_retention_purge_on_a_database_without_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    assert main(["retention", "purge", "--config", str(config), "--days", "30"]) == 0
    assert "nothing to purge" in capsys.readouterr().out
    cti_bridge.Outbox(tmp_path / "hotline.db", retain_seconds=60, retain_events=10).close()  # no calls table
    assert main(["retention", "purge", "--config", str(config), "--days", "30"]) == 0
    captured = capsys.readouterr()
    assert "no such table" not in captured.err + captured.out and "0 calls" in captured.out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--agents", "0"], "count (--agents) must be at least 1, not 0"),
        (["--rate", "-5"], "rate (--rate) must be 0 or more, not -5"),
    ],
)
def test_simulate_refuses_impossible_figures(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", *flags]) == 2
    assert message in capsys.readouterr().err


def test_simulate_prints_no_internal_note(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--rate", "0", "--hours", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "EWT:" in out and "field yet" not in out and "CallQueued" not in out


def test_every_config_error_at_once(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[sip]\nprot = 5060\n[cti]\nport = 'x'\n[serverr]\nnode = 'a'\n[server]\nlog_format = 'xml'\n"
        "[[acd.queues]]\nname = 'q'\nstrategy = 'longest_idel'\n"
        "[[acd.agents]]\nid = '1'\ncontact = 'sip:1@h'\nqueues = { qq = 1 }\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert len(problems) == 6, problems  # not "[[cti.tokens]] is empty": [cti] itself did not load
    text = "\n".join(problems)
    for part in (
        "unknown key 'prot' (did you mean 'port'?)",
        "cti.port must be a int",
        "unknown table 'serverr' (did you mean 'server'?)",
        "strategy 'longest_idel' is unknown (did you mean 'longest_idle'?)",
        "agent 1: queues names 'qq', which is not a queue",
        "server.log_format must be auto, json or console",
    ):
        assert part in text


def test_a_strategy_typo_fails_validate_and_run_with_one_line_each(tmp_path: Path) -> None:
    config = (
        _config(tmp_path)
        .read_text()
        .replace("name = 'sales'\n", "name = 'sales'\nstrategy = 'round_robbin'\n")
    )
    (tmp_path / "config.toml").write_text(config)
    val = _hotline("validate", "--config", str(tmp_path / "config.toml"))
    assert val.returncode == 1 and "round_robbin" in val.stderr, val.stdout + val.stderr
    run = _hotline("run", "--config", str(tmp_path / "config.toml"))
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1
    assert "strategy 'round_robbin' is unknown (did you mean 'round_robin'?)" in run.stderr


def test_run_refuses_what_validate_reports_without_a_traceback(tmp_path: Path) -> None:
    """A flow naming a queue the config lacks, and calling hours that are not hours: both are
    found by `validate --config` and refused by `run` before anything binds."""
    path = _config(tmp_path, "[outbound]\nmarketing_hours = { mon = ['9-5'] }\n")
    (tmp_path / "flows" / "main.yaml").write_text(
        (ROOT / "flows" / "main.yaml").read_text().replace("queue: sales", "queue: saless", 1)
    )
    val = _hotline("validate", "--config", str(path))
    assert val.returncode == 1
    assert "flow.unknown_queue" in val.stdout and "[outbound]" in val.stdout, val.stdout
    run = _hotline("run", "--config", str(path))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "flow.unknown_queue" in run.stderr and "[outbound]" in run.stderr, run.stderr


def test_models_install_an_unknown_language_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "install", "klingon"]) == 1
    assert "Vosk has no model for 'klingon'" in capsys.readouterr().err
    assert main(["models", "install", "ko"]) == 0


def test_a_bug_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import hotline.cli

    def broken(args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(hotline.cli, "_schema", broken)
    assert main(["schema"]) == hotline.cli.EXIT_BUG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: boom" in err


def test_what_the_router_refuses_is_found_by_validate_and_refused_by_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = (
        _config(tmp_path).read_text().replace("name = 'sales'\n", "name = 'sales'\nskills = { sales = 9 }\n")
    )
    (tmp_path / "config.toml").write_text(config)
    assert main(["validate", "--config", str(tmp_path / "config.toml")]) == 1
    assert "[acd]: skill 'sales' has proficiency 9; it must be 1..5" in capsys.readouterr().out
    assert main(["run", "--config", str(tmp_path / "config.toml")]) == 2  # before anything binds
    assert "[acd]: skill 'sales' has proficiency 9" in capsys.readouterr().err
