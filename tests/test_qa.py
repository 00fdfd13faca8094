"""The post-call QA adapter (hotline/qa.py): a real recording through pocketsphinx into SQLite
FTS5 and a checksummed sidecar, the search command, and the worker processes' manners."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from hotline.qa import QaError, QaJob, analyze, canonical_sha256, search

from .helpers import ROOT
from .peers import english_speech, speech_timeline


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """A 22 s stereo recording: the caller complains, 8 s of nobody, the agent thanks them;
    a secure gap joined at 9.0 s."""
    tmp = tmp_path_factory.mktemp("qa")
    caller = speech_timeline([(0.5, english_speech("I want to file a complaint about my bill."))], 22.0)
    agent = speech_timeline([(13.0, english_speech("Thank you for calling. I will look into it."))], 22.0)
    wav = tmp / "c1.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.stack([caller, agent], axis=1).astype("<i2").tobytes())
    gap = {"from": "2026-12-01T10:00:09.000Z", "to": "2026-12-01T10:00:20.000Z", "reason": "secure_input"}
    side = {"started": "2026-12-01T10:00:00.000Z", "gaps": [gap], "sha256": "ab" * 32}
    (tmp / "c1.json").write_text(json.dumps(side))
    job = QaJob(
        call_id="c1",
        wav=str(wav),
        sidecar=str(tmp / "c1.json"),
        language="en",
        recognizer="pocketsphinx",
        queue="sales",
        agent_id="1001",
        database=str(tmp / "hotline.db"),
        keywords={"complaint": ("complaint", "file a complaint")},
        # "thank you for calling" was transcribed "thank you for coming": a script phrase is only
        # as good as the transcript (docs/analytics.md)
        script={"greeting": ("thank you for calling", "thank you"), "closing": ("anything else",)},
        lexicon="vader",
    )
    result = analyze(job)
    return tmp, result, json.loads((tmp / "c1.qa.json").read_text())


def test_the_transcript_flags_and_sidecar_of_a_recording(analysed: tuple[Path, dict, dict]) -> None:
    _tmp, result, qa = analysed
    caller = [w[0] for w in qa["transcript"]["caller"]]
    assert "complaint" in caller, caller
    flags = result["flags"]
    assert [k["category"] for k in flags["keywords"] if k["channel"] == "caller"] == ["complaint"]
    assert flags["missing_phrases"] == ["closing"]  # the agent said the greeting
    assert flags["secure_gaps"] == [9.0]
    assert any(s["seconds"] >= 6.0 for s in flags["silences"]), flags["silences"]
    assert result["sentiment"]["label"] == "negative" and result["sentiment"]["text"] < 0
    assert qa["recording_sha256"] == "ab" * 32 and qa["sha256"] == canonical_sha256(qa) == result["sha256"]
    qa["flags"]["missing_phrases"] = []
    assert canonical_sha256(qa) != result["sha256"]  # the checksum covers the content


def test_search_finds_the_call_with_the_words_time_and_filters(analysed: tuple[Path, dict, dict]) -> None:
    tmp, _result, qa = analysed
    db = tmp / "hotline.db"
    (hit,) = [h for h in search(db, "complaint") if h["channel"] == "caller"]
    word = next(w for w in qa["transcript"]["caller"] if w[0] == "complaint")
    assert (hit["call_id"], hit["queue"], hit["agent_id"], hit["offset"]) == ("c1", "sales", "1001", word[1])
    assert "[complaint]" in hit["text"]
    assert search(db, "complaint", queue="support") == [] and search(db, "complaint", agent="1002") == []
    assert search(db, "complaint", since="2026-12-02T00:00:00.000Z") == []
    with pytest.raises(QaError, match="bad search"):
        search(db, '"unclosed')


def test_the_search_command(analysed: tuple[Path, dict, dict]) -> None:
    tmp, _result, _qa = analysed
    config = tmp / "config.toml"
    config.write_text('[storage]\ndatabase = "hotline.db"\n[[cti.tokens]]\nname = "t"\nsecret = "s"\n')

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "hotline", "qa", *args, "--config", str(config)]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)

    found = run("search", "complaint", "--from", "2026-12-01")
    assert found.returncode == 0 and "c1" in found.stdout and "[complaint]" in found.stdout, found
    assert run("search", "ombudsman").returncode == 1
    bad = run("search", "complaint", "--from", "yesterday")
    assert bad.returncode == 2 and "not a date" in bad.stderr
    shown = run("show", "c1")
    assert shown.returncode == 0 and json.loads(shown.stdout)["call_id"] == "c1"


def test_a_pool_worker_leaves_when_the_server_is_killed(tmp_path: Path) -> None:
    """A ProcessPoolExecutor worker would wait on its job queue forever after a SIGKILL of the
    server (measured without the watch); the QA worker's initializer makes it leave."""
    script = (
        "import concurrent.futures as cf, multiprocessing as mp, os, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from hotline.qa import _init_worker\n"
        "if __name__ == '__main__':\n"
        "    pool = cf.ProcessPoolExecutor(1, mp_context=mp.get_context('spawn'), initializer=_init_worker,"
        " initargs=(10, True))\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    (tmp_path / "pool.py").write_text(script)
    out = subprocess.run(
        [sys.executable, str(tmp_path / "pool.py")], capture_output=True, text=True, timeout=60
    )
    worker = int(out.stdout.split()[0])
    deadline = time.monotonic() + 5
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = Path(f"/proc/{worker}").exists()
    if alive:
        os.kill(worker, signal.SIGKILL)
    assert not alive, "the QA worker outlived its server"
