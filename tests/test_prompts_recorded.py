"""Recorded prompts out of the box: the shipped config points at prompt directories that exist
after setup, the shipped flows find every prompt id there, a missing directory or prompt is
named at start-up (once), `validate --config` lists what the TTS will speak, and over SIP the
shipped main flow plays recorded WAVs (counted by the resolver and by the endpoint)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import ivr
from hotline.config import load_config
from hotline.promptcheck import PromptLibrary, flow_prompts, startup_findings, unrecorded, validate_lines

from .helpers import ROOT, STOCK_PROMPTS, HotlineProcess
from .peers import dial, dtmf_keys, write_tone_wav

FLOW = """
flow: probe
start: hello
nodes:
  hello: {type: play, prompt: {id: hello-there, text: "Hello there."}, next: menu}
  menu:
    type: menu
    prompt: {id: menu, text: "Press 1."}
    reprompt: {id: hello-there, text: "Hello again."}
    options: {"1": bye}
    escalate_to: bye
  bye: {type: hangup, prompt: {id: silence/1}}
"""


def compile_probe(tmp_path: Path) -> list[ivr.Flow]:
    flows, diagnostics = ivr.compile_flow_set({str(tmp_path / "probe.yaml"): FLOW})
    assert not [d for d in diagnostics if d.severity == "error"], diagnostics
    return list(flows.values())


def test_the_shipped_config_names_prompt_directories_that_exist() -> None:
    """After scripts/setup (asterisk-core-sounds-en-wav), every configured directory is there."""
    config = load_config(ROOT / "config.toml")
    dirs = [config.path(d) for d in config.prompts.directories]
    assert STOCK_PROMPTS in dirs
    missing = [d for d in dirs if not d.is_dir()]
    assert not missing, f"prompt directories missing after setup: {missing}"
    assert len(list(STOCK_PROMPTS.glob("*.wav"))) > 200  # the real recorded set, not an empty folder
    assert "asterisk-core-sounds-en-wav" in (ROOT / "scripts" / "setup").read_text()
    raw = tomllib.loads((ROOT / "config.toml").read_text())
    assert raw["prompts"]["directories"] == list(config.prompts.directories)  # the file, not a default


def test_every_prompt_id_of_the_shipped_flows_is_recorded() -> None:
    config = load_config(ROOT / "config.toml")
    flows = ivr.load_flow_set(sorted((ROOT / "flows").glob("*.yaml")))
    dirs = [config.path(d) for d in config.prompts.directories]
    assert startup_findings(flows.values(), dirs) == []
    main = [u for u in flow_prompts([flows["main"]]) if u.prompt.id]
    assert {u.prompt.id for u in main} >= {"welcome-hotline", "main-menu", "pls-hold-while-try"}
    library = PromptLibrary(dirs)
    assert all(library.holds(u.prompt.id) for u in main if u.prompt.id)


def test_missing_directories_and_prompts_are_named_once(tmp_path: Path) -> None:
    present, absent = tmp_path / "prompts", tmp_path / "no-such-dir"
    (present / "en").mkdir(parents=True)
    (present / "silence").mkdir()
    write_tone_wav(present / "en" / "menu.wav", 0.1)  # a language subdirectory counts
    write_tone_wav(present / "silence" / "1.wav", 0.1)  # and an id with a slash
    flows = compile_probe(tmp_path)
    reported: set[str] = set()
    found = startup_findings(flows, [absent, present], reported)
    assert [name for name, _ in found] == ["prompt_directory_missing", "prompt_not_found"]
    assert found[0][1]["directory"] == str(absent)
    assert found[1][1]["prompt"] == "hello-there" and found[1][1]["fallback"] == "tts"
    assert len(found[1][1]["where"]) == 2  # both nodes that say it, in one entry
    assert startup_findings(flows, [absent, present], reported) == []  # a reload repeats nothing
    (item,) = unrecorded(flow_prompts(flows), PromptLibrary([present]))
    assert item.id == "hello-there" and item.text == "Hello there."


def test_validate_with_config_lists_synthesized_prompts(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "probe.yaml").write_text(FLOW)
    (tmp_path / "prompts").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        '[flows]\ndirectory = "flows"\nmain = "probe"\n'
        f'[prompts]\ndirectories = ["prompts", "gone", "{STOCK_PROMPTS}"]\n'
        '[[cti.tokens]]\nname = "t"\nsecret = "s"\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "hotline", "validate", "--config", str(config), str(tmp_path / "flows")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert f"warning: prompt directory {tmp_path / 'gone'} does not exist ([prompts] directories)" in lines
    synthesized = [line for line in lines if "prompt.synthesized" in line]
    assert len(synthesized) == 3, lines  # hello-there twice, menu once; silence/1 is recorded
    assert all("probe.yaml:" in line for line in synthesized)
    assert "flow.missing_audio" not in out.stdout  # silence/1 is the stock set's silence/1.wav
    assert validate_lines(compile_probe(tmp_path), [STOCK_PROMPTS]) != []


@pytest.mark.sip
def test_the_shipped_main_flow_plays_recorded_prompts(tmp_path: Path) -> None:
    """A caller presses 1 in the shipped flow and waits in the sales queue: the greeting, the
    menu and the hold music are recorded WAVs; nothing was synthesized and no tone played."""
    absent = tmp_path / "not-there"
    server = HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=[],
        log_level="info",
        prompt_dirs=[absent, ROOT / "flows" / "prompts", STOCK_PROMPTS],
    ).start()
    try:
        caller = dial(
            server,
            "caller_dtmf",
            tmp_path,
            keys={"dtmf_delay": 2500, "talk_ms": 2500, **dtmf_keys("1", tmp_path)},
        ).start()
        assert caller.wait(40) == 0, caller.summary()
    finally:
        code = server.stop()
    assert code == 0, server.log()
    events = server.log_events()
    missing = [e for e in events if e.get("event") == "prompt_directory_missing"]
    assert [e["directory"] for e in missing] == [str(absent)]  # named, and the server ran on
    assert not [e for e in events if e.get("event") in ("prompt_not_found", "prompt_missing")]
    (summary,) = [e for e in events if e.get("event") == "call_summary"]
    assert summary["ivr_path"] == ["who", "greeting", "main_menu", "sales"], summary
    stopped = next(e for e in events if e.get("event") == "hotline_stopped")
    sources, media = stopped["prompts"], stopped["media"]
    assert sources.get("recorded", 0) >= 3, sources  # greeting, menu, hold music
    assert sources.get("tts", 0) == 0 and sources.get("tone", 0) == 0, sources
    assert media.get("players", 0) >= sources["recorded"], media  # the endpoint really played them
