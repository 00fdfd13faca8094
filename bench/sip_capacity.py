"""SIP capacity: the same SIPp load against hotline and against bare pjsua2.

Each call: INVITE, a prompt, the caller's audio recorded, an RFC 4733 digit,
then talk until BYE (bench/sip/load_caller.xml). Hotline runs
bench/flows/capacity.yaml (prompt, menu, DTMF, voicemail recording); the
baseline is bench/bare_pjsua2.py (answer, play, record, count digits).

For each target N, calls arrive at a steady N / HOLD calls per second for
2 x HOLD seconds, so N calls are up at once for the second half. The ramp stops
at the first step with a failed call. Prints, per server and step: failures,
peak concurrent calls, call rate, CPU (% of one core), RSS, and at the end the
best step of each and the ratio hotline / bare.

    .venv/bin/python bench/sip_capacity.py [--steps 100,200,300,400,500] [--hold 12]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import HotlineProcess, free_port  # noqa: E402  (after sys.path)

SCENARIO = ROOT / "bench" / "sip" / "load_caller.xml"
PROMPT = Path("/usr/share/asterisk/sounds/en/hello-world.wav")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Step:
    target: int  # concurrent calls aimed at
    rate: float  # calls per second offered
    calls: int  # calls attempted
    ok: int
    failed: int
    peak_concurrent: int  # most calls up at once, as SIPp counted them
    cpu_pct: float  # server CPU over the steady half, % of one core
    rss_mb: float  # server RSS at the end of the steady half


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def proc_rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def run_step(pid: int, port: int, target: int, hold: float, work: Path) -> Step:
    rate = target / hold
    calls = int(rate * 2 * hold)
    talk_ms = int(hold * 1000) - 7100  # the scenario spends 7.1 s before its final pause
    stat = work / f"stat-{target}.csv"
    sipp = subprocess.Popen(
        [
            "sipp",
            "-sf",
            str(SCENARIO),
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-mp",
            str(free_port()),
            "-r",
            f"{rate:.3f}",
            "-rp",
            "1000",
            "-m",
            str(calls),
            "-l",
            str(target * 2),
            "-d",
            str(talk_ms),
            "-nostdin",
            "-trace_stat",
            "-stf",
            str(stat),
            "-fd",
            "1",
            "-max_socket",
            "4096",
            "-timeout",
            str(int(4 * hold + 30)),
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=work,
    )
    time.sleep(hold)  # ramp-up: the first HOLD seconds
    cpu0, t0 = proc_cpu_seconds(pid), time.monotonic()
    time.sleep(hold * 0.9)  # the steady half
    cpu1, t1 = proc_cpu_seconds(pid), time.monotonic()
    rss = proc_rss_mb(pid)
    sipp.wait()
    with stat.open() as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    last = rows[-1]
    peak = max(int(r["CurrentCall"]) for r in rows)
    return Step(
        target=target,
        rate=rate,
        calls=calls,
        ok=int(last["SuccessfulCall(C)"]),
        failed=int(last["FailedCall(C)"]),
        peak_concurrent=peak,
        cpu_pct=100 * (cpu1 - cpu0) / (t1 - t0),
        rss_mb=rss,
    )


def ramp(
    name: str, pid: int, port: int, steps: list[int], hold: float, work: Path
) -> tuple[list[Step], float]:
    idle_rss = proc_rss_mb(pid)
    print(f"{name}: idle RSS {idle_rss:.1f} MB", flush=True)
    results = []
    for target in steps:
        step = run_step(pid, port, target, hold, work)
        results.append(step)
        print(
            f"{name}: target {target:4d}  calls {step.calls:5d}  ok {step.ok:5d}  failed {step.failed:3d}  "
            f"peak {step.peak_concurrent:4d}  rate {step.rate:5.1f}/s  CPU {step.cpu_pct:5.1f}%  "
            f"RSS {step.rss_mb:6.1f} MB",
            flush=True,
        )
        if step.failed or step.ok < step.calls:
            break
    return results, idle_rss


def hotline_server(work: Path) -> HotlineProcess:
    return HotlineProcess(
        workdir=work / "hotline",
        agents=[],
        queues=[{"name": "none"}],
        flows_dir=ROOT / "bench" / "flows",
        main_flow="capacity",
        log_level="info",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default="100,200,300,400,500")
    ap.add_argument("--hold", type=float, default=12.0, help="seconds each call lasts")
    ap.add_argument("--only", choices=["hotline", "bare"], default=None)
    args = ap.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    summary: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        work = Path(tmp)
        if args.only in (None, "hotline"):
            server = hotline_server(work)
            server.start()
            try:
                results, idle = ramp("hotline", server.proc.pid, server.sip_port, steps, args.hold, work)
            finally:
                code = server.stop(60)
            summary["hotline"] = best(results, idle)
            print(f"hotline: exit code after SIGTERM {code}")
        if args.only in (None, "bare"):
            port = free_port()
            bare = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "bench" / "bare_pjsua2.py"),
                    "--port",
                    str(port),
                    "--rtp-port",
                    str(free_port()),
                    "--prompt",
                    str(PROMPT),
                    "--record-dir",
                    str(work / "bare"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert bare.stdout is not None
            while "ready" not in bare.stdout.readline():
                pass
            threading.Thread(target=bare.stdout.read, daemon=True).start()
            try:
                results, idle = ramp("bare", bare.pid, port, steps, args.hold, work)
            finally:
                bare.send_signal(signal.SIGTERM)
                bare.wait(60)
            summary["bare"] = best(results, idle)
    print("\nsummary (best step with 0 failed calls):")
    print(json.dumps(summary, indent=2))
    if "hotline" in summary and "bare" in summary and summary["bare"]["max_concurrent"]:
        ratio = summary["hotline"]["max_concurrent"] / summary["bare"]["max_concurrent"]
        cpu_ratio = summary["bare"]["cpu_pct_per_call"] / max(summary["hotline"]["cpu_pct_per_call"], 1e-9)
        print(f"ratio hotline/bare: max concurrent {ratio:.2f}, CPU efficiency per call {cpu_ratio:.2f}")


def best(results: list[Step], idle_rss: float) -> dict[str, float]:
    good = [s for s in results if not s.failed and s.ok == s.calls]
    if not good:
        return {"max_concurrent": 0}
    s = good[-1]
    return {
        "max_concurrent": s.peak_concurrent,
        "sustained_cps": round(s.rate, 2),
        "cpu_pct": round(s.cpu_pct, 1),
        "cpu_pct_per_call": round(s.cpu_pct / s.peak_concurrent, 3),
        "rss_mb": round(s.rss_mb, 1),
        "rss_mb_per_call": round((s.rss_mb - idle_rss) / s.peak_concurrent, 3),
        "all_steps_passed": len(good) == len(results),
    }


if __name__ == "__main__":
    main()
