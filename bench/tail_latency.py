"""How old is the newest caller sample when Python sees it through record-and-tail?

No SIP: per pair, an ``AudioMediaPlayer`` plays a known signal through the conference bridge
into an ``AudioMediaRecorder`` writing ``<dir>/*.wav`` (tmpfs), and a ``telephony.tail.WavTail``
polls that file every 10-20 ms (uniformly random, so polls do not lock to the 20 ms bridge
tick). pjsua2 runs as in hotline: 8 kHz bridge, threadCnt 0, mainThreadOnly, libHandleEvents(0)
pumped from the asyncio loop every 4 ms, null sound device.

    .venv/bin/python bench/tail_latency.py --recorders 1,200 --seconds 20

What is measured. The signal is a ramp: player sample j has the value j % 32767 + 1, so the
newest sample in a read names the player sample it is, and never looks like the bridge's
silence (0). The bridge delivers player frame f (samples 160f..160f+159) to the recorder in the
clock tick T0 + f * 20 ms, where T0 is that player's first tick. T0 comes from
``AudioMediaPlayer.getPos()`` (samples delivered so far) sampled on every poll: after tick f the
position is 160 (f + 1), so T0 = min(t - pos / 8000) + 20 ms, tight to the smallest
poll-after-tick delay over a few thousand random polls. Then

    age = t_read - (T0 + (j // 160) * 20 ms)      (= t_read - (start + samples_seen / 8000),
                                                    start = T0 - 20 ms, the first frame's begin)

is the time from the tick that handed the newest visible sample to the recorder until Python
had it in hand. It includes the writer's buffering, the poll interval and scheduling; it
excludes the 20 ms a frame takes to fill and anything before the bridge (jitter buffer).

Two figures per run:
* ``arrival``: the age at each read that returned new samples (what a consumer sees when data
  comes in);
* ``staleness``: the age, at every poll, of the newest sample seen so far, whether or not the
  poll returned anything (how old the freshest audio in hand is at a random moment).

Each N runs in its own process (pjsua2 is created once per process). ``--keep`` leaves the
files. Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telephony.tail import WavTail

RATE = 8000
SPF = 160  # samples per 20 ms frame at 8 kHz
PTIME = SPF / RATE
PERIOD = 32767  # ramp period: values 1..32767
PUMP_INTERVAL = 0.004


def write_ramp(path: Path, seconds: float) -> None:
    n = int(seconds * RATE)
    ramp = (np.arange(n) % PERIOD + 1).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(ramp.tobytes())


@dataclass
class Pair:
    player: Any
    recorder: Any
    tail: WavTail
    offset: int | None = None  # player sample index - recorder sample index
    newest_j: int | None = None  # player index of the newest sample seen
    pos_obs: list[tuple[float, int]] = field(default_factory=list)  # (t, getPos())
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (t_read, j newest)
    polls: list[tuple[float, int | None]] = field(default_factory=list)  # (t_poll, j newest so far)
    mismatches: int = 0
    silent: int = 0


def decode(pair: Pair, data: bytes) -> None:
    """Map the recorder's newest sample to the player's sample index; check the signal."""
    r = pair.tail.frames_read - 1  # recorder index of the newest sample
    v = int.from_bytes(data[-2:], "little", signed=True)
    if v == 0:  # bridge silence: never in our signal
        pair.silent += 1
        return
    if pair.offset is None:
        off = (v - 1 - r) % PERIOD
        pair.offset = off - PERIOD if off > PERIOD // 2 else off
    j = r + pair.offset
    if (j % PERIOD) + 1 != v:
        pair.mismatches += 1
        return
    pair.newest_j = j


def player_t0(obs: list[tuple[float, int]]) -> float | None:
    """Time of the player's first bridge tick, from (t, samples delivered) observations."""
    xs = np.array([t - pos / RATE for t, pos in obs if pos > 0])
    if xs.size < 10:
        return None
    med = float(np.median(xs))
    xs = xs[np.abs(xs - med) < 2 * PTIME]  # drop torn reads of the player's position
    return float(xs.min()) + PTIME


def thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each thread of this process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out


def pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if a.size else float("nan")


async def run(n: int, seconds: float, warmup: float, poll_min: float, poll_max: float, workdir: Path) -> dict:
    import pjsua2 as pj

    ramp = workdir / "ramp.wav"
    write_ramp(ramp, seconds + warmup + 10)
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = 4
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    cfg.medConfig.clockRate = RATE
    cfg.medConfig.sndClockRate = RATE
    cfg.medConfig.ecTailLen = 0
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    ep.libStart()
    ep.audDevManager().setNullDev()

    loop = asyncio.get_running_loop()
    pump_handle: asyncio.TimerHandle | None = None

    def pump() -> None:
        nonlocal pump_handle
        ep.libHandleEvents(0)
        pump_handle = loop.call_later(PUMP_INTERVAL, pump)

    pump_handle = loop.call_soon(pump)
    pairs: list[Pair] = []
    try:
        for i in range(n):
            path = workdir / f"rec-{i:04d}.wav"
            player = pj.AudioMediaPlayer()
            player.createPlayer(str(ramp), 0)
            rec = pj.AudioMediaRecorder()
            rec.createRecorder(str(path))
            player.startTransmit(rec)
            pairs.append(Pair(player, rec, WavTail(path)))
        del player, rec  # the pairs hold them; nothing may outlive libDestroy()
        await asyncio.sleep(0)

        clock = time.monotonic
        cpu0, threads0, t_start = resource.getrusage(resource.RUSAGE_SELF), thread_cpu(), clock()
        t_measure, t_end = t_start + warmup, t_start + warmup + seconds
        poll_cost: list[float] = []
        while True:
            await asyncio.sleep(random.uniform(poll_min, poll_max))
            t_poll = clock()
            if t_poll >= t_end:
                break
            measuring = t_poll >= t_measure
            for p in pairs:
                data = p.tail.read()
                t_read = clock()
                if data:
                    decode(p, data)
                    if measuring and p.newest_j is not None:
                        p.arrivals.append((t_read, p.newest_j))
                if measuring:
                    p.polls.append((t_read, p.newest_j))
                pos = p.player.getPos()
                p.pos_obs.append((clock(), pos))
            poll_cost.append(clock() - t_poll)
        cpu1, threads1, t_stop = resource.getrusage(resource.RUSAGE_SELF), thread_cpu(), clock()
    finally:
        # players and recorders, then the library; the pump stops first
        if pump_handle is not None:
            pump_handle.cancel()
        for p in pairs:
            p.tail.close()
            p.player = p.recorder = None  # the destructors stop and free the ports
        ep.libDestroy()

    arrival, stale, bad_t0 = [], [], 0
    mism = sum(p.mismatches for p in pairs)
    silent = sum(p.silent for p in pairs)
    for p in pairs:
        t0 = player_t0(p.pos_obs)
        if t0 is None:
            bad_t0 += 1
            continue
        arrival.extend(t - (t0 + (j // SPF) * PTIME) for t, j in p.arrivals)
        stale.extend(t - (t0 + (j // SPF) * PTIME) for t, j in p.polls if j is not None)
    a, s = np.array(arrival) * 1000, np.array(stale) * 1000
    cpu = (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / (t_stop - t_start)
    # pjsua2's own threads (the bridge clock thread does the mixing and the file writes):
    # everything but the asyncio thread, which runs the tailers and the pump
    main = threading.get_native_id()
    pj_cpu = sum(threads1[t] - threads0.get(t, 0.0) for t in threads1 if t != main) / (t_stop - t_start)
    return {
        "recorders": n,
        "seconds": seconds,
        "arrival_ms": {
            "n": int(a.size),
            "p50": pct(a, 50),
            "p99": pct(a, 99),
            "max": pct(a, 100),
            "min": pct(a, 0),
        },
        "staleness_ms": {"n": int(s.size), "p50": pct(s, 50), "p99": pct(s, 99), "max": pct(s, 100)},
        "poll_ms_p50": pct(np.array(poll_cost) * 1000, 50),
        "cpu_percent_of_one_core": round(100 * cpu, 1),
        "pjsua2_threads_cpu_percent": round(100 * pj_cpu, 1),
        "signal_mismatches": mism,
        "silent_reads": silent,
        "pairs_without_t0": bad_t0,
        "max_abs_offset": max((abs(p.offset) for p in pairs if p.offset is not None), default=None),
    }


def child(args: argparse.Namespace, n: int) -> dict:
    """One N in a fresh process; its files go to a temporary dir that this process removes,
    also when the child dies (a pjsua2 assertion aborts it)."""
    workdir = Path(tempfile.mkdtemp(prefix="tail-latency-", dir=args.dir))
    cmd = [sys.executable, __file__, "--child", str(n), "--workdir", str(workdir)]
    for opt in ("seconds", "warmup", "poll_min", "poll_max"):
        cmd += [f"--{opt.replace('_', '-')}", str(getattr(args, opt))]
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    finally:
        if args.keep:
            print(f"  files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        sys.exit(f"run with {n} recorders failed (exit {r.returncode}):\n{r.stdout}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recorders", default="1,200", help="comma-separated N; one process per N")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per N")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    ap.add_argument("--poll-min", type=float, default=0.010)
    ap.add_argument("--poll-max", type=float, default=0.020)
    ap.add_argument("--dir", type=Path, default=Path("/dev/shm"), help="where recorders write (tmpfs)")
    ap.add_argument("--keep", action="store_true", help="keep the recorded files")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child is not None:
        res = asyncio.run(
            run(args.child, args.seconds, args.warmup, args.poll_min, args.poll_max, args.workdir)
        )
        print("RESULT " + json.dumps(res), flush=True)
        return

    import pjsua2 as pj

    print(
        f"pjsua2 {pj.__file__}; recorders write to {args.dir}; poll every "
        f"{args.poll_min * 1000:.0f}-{args.poll_max * 1000:.0f} ms; {args.seconds:.0f} s per N"
    )
    results = []
    for n in (int(x) for x in args.recorders.split(",")):
        res = child(args, n)
        results.append(res)
        a, s = res["arrival_ms"], res["staleness_ms"]
        print(
            f"N={n}: arrival p50 {a['p50']:.1f} ms, p99 {a['p99']:.1f} ms, max {a['max']:.1f} ms"
            f" ({a['n']} reads); staleness p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms\n"
            f"  CPU {res['cpu_percent_of_one_core']:.1f} % of a core"
            f" (pjsua2 threads {res['pjsua2_threads_cpu_percent']:.1f} %); poll of all files"
            f" {res['poll_ms_p50']:.2f} ms p50; signal mismatches {res['signal_mismatches']},"
            f" silent reads {res['silent_reads']}",
            flush=True,
        )
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
