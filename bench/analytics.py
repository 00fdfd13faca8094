"""Voice of the customer: live keyword streams per core, post-call transcription speed, and the
CPU a bridged call costs with [analytics] on.

Four parts (``--parts streams,rtf,sip,accuracy``; all by default, each short):

* **streams**: K live streams (the cue worker's pocketsphinx keyword spotter + the agitation
  meter, fed 100 ms chunks in real time, as a worker's poll loop does) in one process pinned
  to one core. A K "keeps up" when no poll falls more than 200 ms behind real time. With
  ``--qa-load N`` N transcription processes (nice ``--qa-nice``, SCHED_IDLE unless
  ``--no-idle``, as the QA pool runs them) run flat out on the same
  cores meanwhile: does the post-call pool delay the live streams?
* **rtf**: hotline.qa.analyze on a synthetic stereo call recording (festival speech on both
  channels, a planted silence): CPU seconds per audio second of the whole job (both channels
  transcribed, QA flags, agitation curve, FTS rows, sidecar), and per second of talk.
* **sip**: the real server with N bridged calls (SIPp callers playing festival speech, a
  SIPp agent echoing it), [analytics] off, then on: CPU of the server process and of its cue
  worker processes over the talk time, per call.
* **accuracy**: the default English keyword lists and the transcriber on 14 synthetic
  sentences (7 with a keyword, 7 without, some near misses), three synthetic voices, through
  a G.711 round trip: hits, misses, false alarms, word error rate. Synthetic speech only.

Short by default (seconds). Longer, on a quiet machine:

    .venv/bin/python bench/analytics.py --streams 10,20,30,40,50 --seconds 30 --rtf-seconds 120 \
        --calls 20 --talk 60
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics.keywords import parse_phrases  # noqa: E402  (after sys.path)
from analytics.prosody import AgitationMeter  # noqa: E402
from hotline.config import _default_keywords  # noqa: E402
from hotline.qa import QaJob, analyze  # noqa: E402
from hotline.recognizers import PocketsphinxModel  # noqa: E402
from tests.peers import english_speech, speech_timeline  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
TEXTS = [
    "I want to file a complaint.",
    "Hello, I am calling about the bill I got this month.",
    "The amount is much higher than usual, and I do not understand the new charges on my account.",
    "If this is not fixed I will write to the regulator.",
]
AGENT_TEXTS = [
    "Thank you for calling, my name is Sam. How can I help you today?",
    "I am sorry to hear that. Let me look at your account.",
    "I have removed the charge. Is there anything else I can help you with?",
]


def caller_audio(seconds: float) -> np.ndarray:
    """Festival speech with the keyword sentence in it, repeated to ``seconds``."""
    parts, t = [], 0.5
    clips = [english_speech(x) for x in TEXTS]
    while t < seconds:
        for clip in clips:
            parts.append((t, clip))
            t += len(clip) / 8000 + 0.6
    return speech_timeline([(a, c) for a, c in parts if a < seconds], seconds)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as f:
            out += [int(p) for p in f.read().split()]
    return out


# ------------------------------------------------------------------- streams
def run_streams(k: int, seconds: float, audio: np.ndarray, q: Any) -> None:
    os.sched_setaffinity(0, {0})
    keywords = _default_keywords()["en"]
    model = PocketsphinxModel(parse_phrases(keywords))
    streams = [(model.spotter(), AgitationMeter()) for _ in range(k)]
    chunk = 800  # 100 ms
    offsets = [(i * 2960) % 32000 for i in range(k)]  # out of step, each starting in the first 4 s
    t0, cpu0 = time.monotonic(), time.process_time()
    worst, hits = 0.0, 0
    lags = []
    n = int(seconds * 10)
    for step in range(n):
        due = t0 + step * 0.1
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        lag = time.monotonic() - due
        lags.append(lag)
        worst = max(worst, lag)
        for i, (spotter, meter) in enumerate(streams):
            a = (offsets[i] + step * chunk) % (audio.size - chunk)
            pcm = audio[a : a + chunk]
            hits += len(spotter.feed(pcm))
            meter.feed(pcm, step * 0.1)
    cpu = time.process_time() - cpu0
    q.put({"k": k, "cpu": cpu / seconds, "worst": worst, "p99": float(np.percentile(lags, 99)), "hits": hits})


def qa_hog(path: str, nice: int, idle: bool) -> None:
    from hotline.qa import _init_worker

    _init_worker(nice, idle)
    job = QaJob(
        call_id="hog",
        wav=path,
        sidecar="",
        language="en",
        recognizer="pocketsphinx",
        queue=None,
        agent_id=None,
        database=str(Path(path).with_suffix(".db")),
    )
    while True:
        analyze(job)


def streams_part(args: argparse.Namespace, work: Path) -> None:
    audio = caller_audio(60.0)
    print(f"\n== live streams on one core ({args.seconds:g} s each; keeps up = no poll > 200 ms late)")
    hogs: list[multiprocessing.Process] = []
    ctx = multiprocessing.get_context("spawn")
    if args.qa_load:
        rec = write_call(work / "hog.wav", 30.0)
        hogs = [
            ctx.Process(target=qa_hog, args=(str(rec), args.qa_nice, not args.no_idle), daemon=True)
            for _ in range(args.qa_load)
        ]
        for h in hogs:
            h.start()
        time.sleep(2.0)
        how = f"nice {args.qa_nice}" + ("" if args.no_idle else " + SCHED_IDLE")
        print(f"   with {args.qa_load} QA transcriber(s) at {how} running flat out")
    print(f"{'streams':>8} {'CPU % core':>11} {'p99 late ms':>12} {'worst ms':>9} {'hits':>6}  keeps up")
    best = 0
    try:
        for k in [int(x) for x in args.streams.split(",")]:
            q = ctx.Queue()
            p = ctx.Process(target=run_streams, args=(k, args.seconds, audio, q))
            hog0 = sum(cpu_seconds(h.pid) for h in hogs if h.is_alive())
            p.start()
            r = q.get(timeout=args.seconds * 4 + 60)
            p.join()
            if hogs:
                used = sum(cpu_seconds(h.pid) for h in hogs if h.is_alive()) - hog0
                alive = sum(h.is_alive() for h in hogs)
                print(
                    f"   (the QA load: {alive} alive, {100 * used / args.seconds:.0f} % of a core meanwhile)"
                )
            ok = r["worst"] < 0.2
            best = max(best, k) if ok else best
            print(
                f"{k:>8} {100 * r['cpu']:>11.1f} {1000 * r['p99']:>12.1f} {1000 * r['worst']:>9.1f} "
                f"{r['hits']:>6}  {'yes' if ok else 'NO'}"
            )
            per_stream = r["cpu"] / k
        print(
            f"   CPU per stream: {per_stream:.4f} core-s per audio-s -> ~{1 / per_stream:.0f} "
            "streams per core "
            f"by CPU; largest K that kept up here: {best}"
        )
    finally:
        for h in hogs:
            h.kill()


# ----------------------------------------------------------------------- rtf
def write_call(path: Path, seconds: float) -> Path:
    caller = caller_audio(seconds)
    clips = [english_speech(t) for t in AGENT_TEXTS]
    parts, t = [], 1.0
    while t < seconds:
        for clip in clips:
            parts.append((t, clip))
            t += len(clip) / 8000 + 6.0
    agent = speech_timeline([(a, c) for a, c in parts if a < seconds], seconds)
    if seconds > 30:  # a planted 12 s silence on both channels
        caller[(15 * 8000) : (27 * 8000)] = 0
        agent[(15 * 8000) : (27 * 8000)] = 0
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.stack([caller, agent], axis=1).astype("<i2").tobytes())
    return path


def rtf_part(args: argparse.Namespace, work: Path) -> None:
    path = write_call(work / "call.wav", args.rtf_seconds)
    job = QaJob(
        call_id="bench",
        wav=str(path),
        sidecar="",
        language="en",
        recognizer="pocketsphinx",
        queue=None,
        agent_id=None,
        database=str(work / "qa.db"),
        keywords={k: tuple(v) for k, v in _default_keywords()["en"].items()},
        lexicon="vader",
    )
    analyze(job)  # warm: model load, imports
    t0 = time.monotonic()
    r = analyze(job)
    wall = time.monotonic() - t0
    talk = sum(r["flags"]["talk_seconds"].values())
    print(
        f"\n== post-call transcription ({args.rtf_seconds:g} s stereo call, "
        f"{talk:.1f} s of talk on both channels)"
    )
    print(
        f"   CPU {r['cpu_seconds']:.2f} s, wall {wall:.2f} s: "
        f"RTF {r['cpu_seconds'] / r['audio_seconds']:.3f} "
        f"per call second, {r['cpu_seconds'] / max(talk, 1e-6):.3f} per talk second; {r['words']} words; "
        f"flagged {r['flags']['flagged']}"
    )


# ------------------------------------------------------------------ accuracy
#: (sentence, the category it should raise or None). Keywords of the default lists, in and out
#: of context, and near misses that must not raise one.
MATERIAL = [
    ("I want to file a complaint about my bill.", "complaint"),
    ("This is a formal complaint.", "complaint"),
    ("Let me speak to your manager right now.", "complaint"),
    ("I will report you to the regulator.", "regulator"),
    ("I am going to call the ombudsman tomorrow.", "regulator"),
    ("They told me to move my money to a safe account.", "fraud"),
    ("Please transfer to this account before noon.", "fraud"),
    ("I have no complaints, thank you very much.", None),
    ("Can you tell me my balance please?", None),
    ("I would like to change my address.", None),
    ("My account number starts with four two seven.", None),
    ("The manager of the store was very helpful.", None),
    ("Thank you for calling, have a nice day.", None),
    ("I want to pay my bill by card.", None),
]


def espeak_speech(text: str) -> np.ndarray:
    import io
    import subprocess

    import soxr

    raw = subprocess.run(
        ["espeak-ng", "-v", "en-us", "--stdout", text], capture_output=True, check=True
    ).stdout
    with wave.open(io.BytesIO(raw)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return soxr.resample(x, rate, 8000).astype(np.int16)


def through_the_phone(x: np.ndarray) -> np.ndarray:
    """A G.711 mu-law round trip, as the call path does."""
    from tests.peers import ulaw_encode

    u = np.frombuffer(ulaw_encode(x), dtype=np.uint8).astype(np.int32)
    u = ~u & 0xFF
    sign, exp, man = u & 0x80, (u >> 4) & 7, u & 0x0F
    mag = (((man << 3) + 0x84) << exp) - 0x84
    return np.where(sign, -mag, mag).astype(np.int16)


def wer(ref: str, hyp: str) -> tuple[int, int]:
    import re

    r, h = re.findall(r"[a-z']+", ref.lower()), re.findall(r"[a-z']+", hyp.lower())
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


def accuracy_part(args: argparse.Namespace, work: Path) -> None:
    from hotline.recognizers import PocketsphinxTranscriber

    keywords = _default_keywords()["en"]
    model = PocketsphinxModel(parse_phrases(keywords))
    transcriber = PocketsphinxTranscriber()
    voices = {
        "festival slt": lambda t: english_speech(t),
        "festival slt, 1.25x": lambda t: english_speech(t, tempo=1.25),
        "espeak-ng": espeak_speech,
    }
    print("\n== keyword spotting and transcription on synthetic test speech (G.711 round trip)")
    print(f"{'voice':>20} {'hits':>8} {'missed':>7} {'false':>6} {'WER':>7}")
    for name, speak in voices.items():
        hits = missed = false = errors = words = 0
        for sentence, want in MATERIAL:
            x = through_the_phone(
                speech_timeline([(0.5, speak(sentence))], 0.5 + len(speak(sentence)) / 8000 + 1)
            )
            spotter, got = model.spotter(), []
            lead = speech_timeline([(0.3, speak("Hello, I am calling about my account."))], 3.0)
            spotter.feed(through_the_phone(lead))  # a first sentence, as in a call
            for i in range(0, x.size, 800):
                got += [h.category for h in spotter.feed(x[i : i + 800])]
            if want is not None:
                hits += want in got
                missed += want not in got
            false += sum(c != want for c in got)
            if any(c != want for c in got):
                print(f"   {name}: {sentence!r} raised {got}")
            e, n = wer(sentence, " ".join(w.text for w in transcriber.transcribe(x)))
            errors, words = errors + e, words + n
        positives = sum(w is not None for _, w in MATERIAL)
        print(f"{name:>20} {hits:>4}/{positives:<3} {missed:>7} {false:>6} {100 * errors / words:>6.1f}%")
    print(
        f"   {len(MATERIAL)} sentences, {sum(w is not None for _, w in MATERIAL)} with a keyword; "
        "false = a category raised that the sentence does not have"
    )


# ----------------------------------------------------------------------- sip
def sip_part(args: argparse.Namespace, work: Path) -> None:
    from tests.helpers import HotlineProcess
    from tests.peers import Sipp, dial, write_audio_pcap

    pcap = write_audio_pcap(work / "caller.pcap", caller_audio(args.talk))
    flows = work / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "voc.yaml").write_text(
        "flow: voc\nstart: line\nnodes:\n  line: {type: queue, queue: operator}\n"
    )
    print(f"\n== CPU per bridged call ({args.calls} calls, {args.talk:g} s of caller speech each)")
    print(f"{'analytics':>10} {'server %':>9} {'workers %':>10} {'per call %':>11} {'cues':>6}")
    base = None
    for on in (False, True):
        agent = Sipp(
            "agent_uas", work, calls=args.calls, rtp_echo=True, timeout=args.talk + 60, name=f"agent{on}"
        ).start()
        agents = [
            {"id": f"{1000 + i}", "skills": [], "contact": agent.uri, "autologin": True}
            for i in range(args.calls)
        ]
        server = HotlineProcess(
            workdir=work / f"hotline-{on}",
            agents=agents,
            flows_dir=flows,
            main_flow="voc",
            log_level="info",
            extra_toml="[analytics]\nenabled = true\n" if on else "",
        ).start()
        try:
            time.sleep(3.0 if on else 0.5)  # the cue worker spawns
            callers = dial(
                server,
                "caller_speech",
                work,
                calls=args.calls,
                rate=max(1.0, args.calls / 2.0),
                keys={"caller": "5550000", "speech_pcap": str(pcap), "talk_ms": int(args.talk * 1000)},
                timeout=args.talk + 60,
                name=f"callers{on}",
            ).start()
            time.sleep(args.calls / max(1.0, args.calls / 2.0) + 2.0)  # all bridged
            pids = [server.proc.pid, *children(server.proc.pid)]
            c0, t0 = {p: cpu_seconds(p) for p in pids}, time.monotonic()
            time.sleep(max(2.0, args.talk - args.calls / max(1.0, args.calls / 2.0) - 4.0))
            used = {p: cpu_seconds(p) - c0[p] for p in pids}
            dt = time.monotonic() - t0
            callers.wait(args.talk + 60)
            time.sleep(1.0)
            cues = sum(1 for e in server.log_events() if e.get("event") == "cue_keyword")
        finally:
            server.stop()
            agent.stop()
        server_pct = 100 * used[server.proc.pid] / dt
        workers_pct = 100 * sum(v for p, v in used.items() if p != server.proc.pid) / dt
        total = server_pct + workers_pct
        print(
            f"{'on' if on else 'off':>10} {server_pct:>9.1f} {workers_pct:>10.1f} "
            f"{total / args.calls:>11.2f} {cues:>6}"
        )
        if base is None:
            base = total
        else:
            print(
                f"   analytics adds {(total - base) / args.calls:.2f} % of a core per bridged call "
                f"(-> ~{100 * args.calls / max(total - base, 1e-6):.0f} calls per core for the cues)"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="streams,rtf,sip,accuracy")
    ap.add_argument("--streams", default="4,8,16", help="stream counts to try on one core")
    ap.add_argument("--seconds", type=float, default=6.0, help="seconds per stream count")
    ap.add_argument("--qa-load", type=int, default=0, help="QA transcriber processes running meanwhile")
    ap.add_argument("--qa-nice", type=int, default=10)
    ap.add_argument("--no-idle", action="store_true", help="QA load without SCHED_IDLE (nice only)")
    ap.add_argument("--rtf-seconds", type=float, default=40.0, help="length of the recording transcribed")
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--talk", type=float, default=20.0, help="seconds of caller speech per call")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    parts = args.parts.split(",")
    if "streams" in parts:
        streams_part(args, work)
    if "rtf" in parts:
        rtf_part(args, work)
    if "sip" in parts:
        sip_part(args, work)
    if "accuracy" in parts:
        accuracy_part(args, work)
    print(f"(work files in {work})")


if __name__ == "__main__":
    main()
