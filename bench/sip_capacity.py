"""SIP capacity: hotline and bare pjsua2 run the same call script (bench/workload.py), each
ramped until it fails; the last good step of both and their ratios are printed in one run.

Modes:
  ivr   concurrency: at step N, calls arrive at N / HOLD per second for 2 x HOLD seconds,
        so N calls are up at once in the second half; whole-call recording.
  cps   call rate: at step R, R calls per second for --cps-seconds, each lasting --cps-hold.
  full  the product path: as ivr, but the digit queues the caller for one of N agents (a SIPp
        UAS answering after 1 s and echoing audio); bridged calls are recorded on both sides.

A step fails at the first failed call (SIPp), a server that did less work than the calls it
answered asked for (players, recorders, finished WAVs, files on disk: bench/workload.py), a
media fault (a silence over 60 ms inside a recording while the caller sent a continuous
tone), or a saturated CPU (the machine over 95 % busy, or one server thread over 90 % of a
core). Each step starts a fresh server; CPU and RSS are sampled over the steady part.

    .venv/bin/python bench/sip_capacity.py --mode ivr [--steps 100,200,...] [--hold 12]
    .venv/bin/python bench/sip_capacity.py --mode cps [--steps 25,50,100,...]
    .venv/bin/python bench/sip_capacity.py --mode full [--steps 50,100,...]
    .venv/bin/python bench/sip_capacity.py --mode ivr --steps 10 --hold 6 --only-check  (a check)
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import workload as wl  # noqa: E402
from tests.helpers import HotlineProcess, free_port  # noqa: E402
from tests.peers import free_udp_port  # noqa: E402

SCENARIO = ROOT / "bench" / "sip" / "load_caller.xml"
AGENT_SCENARIO = ROOT / "tests" / "sip" / "agent_uas.xml"
DEFAULT_STEPS = {
    "ivr": "100,200,300,400,500,600,700,800,900,1000",
    "cps": "25,50,75,100,125,150,200,250,300,400",
    "full": "50,100,150,200,250,300,350,400,450,500",
}


@dataclass
class Step:
    side: str
    mode: str
    target: float  # concurrent calls (ivr, full) or calls per second (cps)
    rate: float  # calls per second offered
    calls: int  # calls attempted
    ok: int = 0
    failed: int = 0
    peak_concurrent: int = 0
    invite_ms: float = 0.0  # SIPp's mean INVITE -> 200 time
    cpu: wl.CpuWindow = field(default_factory=wl.CpuWindow)
    rss_mb: float = 0.0  # at the end of the steady part
    idle_rss_mb: float = 0.0  # before the load
    work: wl.Work = field(default_factory=lambda: wl.Work(0, 0, 0, 0))
    files: int = 0
    wav: wl.WavReport = field(default_factory=wl.WavReport)
    problems: list[str] = field(default_factory=list)

    @property
    def good(self) -> bool:
        return not self.problems

    @property
    def mb_per_call(self) -> float:
        return (self.rss_mb - self.idle_rss_mb) / max(1, self.peak_concurrent)

    def line(self) -> str:
        top = ", ".join(f"{n} {p:.0f}%" for n, p in self.cpu.threads[:3])
        return (
            f"{self.side:7s} {self.mode} {self.target:6g}: calls {self.calls:5d} ok {self.ok:5d} "
            f"failed {self.failed:3d} peak {self.peak_concurrent:4d} rate {self.rate:6.1f}/s "
            f"INVITE->200 {self.invite_ms:5.1f} ms | CPU {self.cpu.process_pct:5.1f}% (machine "
            f"{self.cpu.machine_pct:3.0f}%; {top}) | RSS {self.rss_mb:6.1f} MB "
            f"({1000 * self.mb_per_call:5.0f} kB/call) | work: answered {self.work.answered} "
            f"players {self.work.players} recorders {self.work.recorders} WAVs "
            f"{self.work.wavs_finished} files {self.files} | longest gap "
            f"{1000 * self.wav.longest_gap:3.0f} ms"
            + ("" if self.good else "\n    FAILED: " + "; ".join(self.problems))
        )


# ------------------------------------------------------------------ servers
class Hotline:
    name = "hotline"

    def __init__(self, work: Path, mode: str, agents: list[str]) -> None:
        self.mode = mode
        self.server = HotlineProcess(
            workdir=work,
            agents=[
                {"id": f"a{i}", "skills": [], "contact": uri, "autologin": True}
                for i, uri in enumerate(agents)
            ],
            queues=[{"name": "bench", "skills": [], "wrap_up": 0, "ring_timeout": 30}],
            flows_dir=ROOT / "bench" / "flows",
            main_flow="capacity",
            log_level="info",
            whole_call=mode != "full",
        )

    def start(self) -> tuple[int, int]:
        self.server.start(timeout=60)
        return self.server.proc.pid, self.server.sip_port

    def stop(self) -> wl.Work:
        code = self.server.stop(300)
        if code != 0:
            raise RuntimeError(f"hotline exited with {code}:\n{self.server.log()[-3000:]}")
        stopped = next(e for e in self.server.log_events() if e.get("event") == "hotline_stopped")
        m = stopped["media"]
        return wl.Work(
            m.get("answered", 0), m.get("players", 0), m.get("recorders", 0), m.get("wavs_finished", 0)
        )

    def recordings(self) -> list[Path]:
        return sorted(self.server.recordings.glob("*.wav"))  # stereo (full) or -whole.wav (ivr, cps)


class Bare:
    name = "bare"

    def __init__(self, work: Path, mode: str, agents: list[str]) -> None:
        self.work, self.mode, self.agents = work, mode, agents
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self) -> tuple[int, int]:
        port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "bare_pjsua2.py"),
                "--port",
                str(port),
                "--rtp-port",
                str(free_port()),
                "--record-dir",
                str(self.work / "recordings"),
                "--mode",
                self.mode,
                "--agents",
                ",".join(self.agents),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        while "ready" not in (line := self.proc.stdout.readline()):
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"bare_pjsua2 exited with {self.proc.returncode}")
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()  # type: ignore[union-attr]
        return self.proc.pid, port

    def stop(self) -> wl.Work:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(300)
        time.sleep(0.2)
        report = next((ln for ln in self.lines if ln.startswith("bare_pjsua2 {")), None)
        if code != 0 or report is None:
            raise RuntimeError(f"bare_pjsua2 exited with {code}:\n{''.join(self.lines[-30:])}")
        c = json.loads(report.split(" ", 1)[1])
        return wl.Work(c["answered"], c["players"], c["recorders"], c["wavs_finished"])

    def recordings(self) -> list[Path]:
        return sorted((self.work / "recordings").glob("*.wav"))


# ------------------------------------------------------------------ one step
def sipp_stats(path: Path) -> tuple[list[dict[str, str]], dict[str, str]]:
    with path.open() as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    return rows, rows[-1]


def ms(value: str) -> float:
    """SIPp's 'HH:MM:SS:mmm...' response time, as ms."""
    parts = value.split(":")
    try:
        h, m, s, frac = parts[0], parts[1], parts[2], parts[3]
        return (int(h) * 3600 + int(m) * 60 + int(s)) * 1000 + float(frac[:3] + "." + frac[3:] if frac else 0)
    except (IndexError, ValueError):
        return 0.0


def run_step(side_cls: Any, mode: str, target: float, args: argparse.Namespace, work: Path) -> Step:
    script = wl.Script(mode, args.cps_hold if mode == "cps" else args.hold)
    if mode == "cps":
        rate, calls = target, int(target * args.cps_seconds)
        steady = (script.hold, args.cps_seconds)
        limit = int(target * script.hold * 2) + 10
    else:  # 2 x target calls arrive evenly over `spread` seconds (default 2 x hold)
        spread = getattr(args, "spread", None) or 2 * script.hold
        calls = round(2 * target)
        rate = calls / spread
        start = min(script.hold, spread)  # from here the most calls are up ...
        steady = (start, max(start + 0.5, max(script.hold, spread) - 0.1 * script.hold))  # ... to here
        limit = calls + 10
    step_dir = work / f"{side_cls.name}-{mode}-{target:g}"
    step_dir.mkdir(parents=True)
    pcap = wl.write_caller_pcap(step_dir / "caller.pcap", script.hold)
    agents_proc = None
    agents: list[str] = []
    if mode == "full":
        agent_port = free_port()
        agents = [f"sip:a{i}@127.0.0.1:{agent_port}" for i in range(int(target) + 10)]
        agents_proc = subprocess.Popen(
            [
                *("sipp", "-sf", str(AGENT_SCENARIO), "-i", "127.0.0.1", "-mi", "127.0.0.1"),
                *("-p", str(agent_port), "-mp", str(free_udp_port(span=3)), "-rtp_echo", "-aa", "-nostdin"),
                *("-key", "answer_delay", str(wl.AGENT_ANSWER_MS), "-max_socket", "4096"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=step_dir,
        )
        time.sleep(0.5)
    side = side_cls(step_dir / "server", mode, agents)
    result = Step(side=side_cls.name, mode=mode, target=target, rate=rate, calls=calls)
    pid, port = side.start()
    try:
        time.sleep(1.0)
        result.idle_rss_mb = wl.rss_mb(pid)
        stat = step_dir / "sipp_stat.csv"
        sipp = subprocess.Popen(
            [
                *(
                    "sipp",
                    "-sf",
                    str(SCENARIO),
                    "-i",
                    "127.0.0.1",
                    "-mi",
                    "127.0.0.1",
                    "-p",
                    str(free_port()),
                ),
                *("-mp", str(free_udp_port(span=3)), "-r", f"{rate:.3f}", "-rp", "1000", "-m", str(calls)),
                *(
                    "-l",
                    str(limit),
                    "-d",
                    str(int(script.hold * 1000)),
                    "-key",
                    "call_pcap",
                    str(pcap),
                    "-key",
                    "caller",
                    "load",
                ),
                *("-nostdin", "-aa", "-trace_stat", "-stf", str(stat), "-fd", "1", "-max_socket", "4096"),
                *("-timeout", str(int(steady[1] + 4 * script.hold + 60)), f"127.0.0.1:{port}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=step_dir,
        )
        time.sleep(steady[0])
        sampler = wl.CpuSampler(pid)
        time.sleep(steady[1] - steady[0])
        result.cpu = sampler.stop()
        result.rss_mb = wl.rss_mb(pid)
        sipp.wait()
        rows, last = sipp_stats(stat)
        result.ok, result.failed = int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])
        result.peak_concurrent = max(int(r["CurrentCall"]) for r in rows)
        result.invite_ms = ms(last.get("ResponseTime1(C)", ""))
    finally:
        try:
            result.work = side.stop()
        except (RuntimeError, StopIteration) as exc:  # it crashed or hung: the step failed
            result.problems.append(f"{side_cls.name} did not stop cleanly: {str(exc)[:300]}")
        if agents_proc is not None:
            agents_proc.terminate()
            agents_proc.wait(30)
    paths = side.recordings()
    result.files = len(paths)
    result.wav = wl.check_wavs(paths, script)
    if result.failed or result.ok < calls:
        result.problems.append(f"{calls - result.ok} of {calls} calls failed")
    result.problems += wl.work_problems(side_cls.name, result.work, result.ok, result.files, script)
    if result.wav.faults:
        result.problems.append(
            f"media fault: {len(result.wav.faults)} gaps over {1000 * wl.MAX_GAP:.0f} ms "
            f"(longest {1000 * result.wav.longest_gap:.0f} ms; first: {result.wav.faults[0]})"
        )
    if result.wav.too_short:
        result.problems.append(
            f"{len(result.wav.too_short)} recordings too short ({result.wav.too_short[0]})"
        )
    if (why := wl.saturation(result.cpu)) and not (args.shared_machine and why.startswith("machine")):
        result.problems.append(f"CPU saturated: {why}")
    if not args.keep:
        shutil.rmtree(step_dir / "server", ignore_errors=True)
    return result


def ramp(side_cls: Any, mode: str, steps: list[float], args: argparse.Namespace, work: Path) -> list[Step]:
    out = []
    for target in steps:
        step = run_step(side_cls, mode, target, args, work)
        print(step.line(), flush=True)
        out.append(step)
        if not step.good:
            break
    return out


def summary(steps: list[Step]) -> dict[str, Any]:
    good = [s for s in steps if s.good]
    bad = next((s for s in steps if not s.good), None)
    if not good:
        return {
            "last_good": None,
            "first_bad": bad.target if bad else None,
            "why": bad.problems if bad else [],
        }
    s = good[-1]
    return {
        "last_good": s.target,
        "limit_reached": bad is not None,
        "first_bad": bad.target if bad else None,
        "why": bad.problems if bad else ["the top step passed: raise --steps"],
        "peak_concurrent": s.peak_concurrent,
        "rate": round(s.rate, 2),
        "cpu_pct": round(s.cpu.process_pct, 1),
        "cpu_pct_per_call": round(s.cpu.process_pct / max(1, s.peak_concurrent), 4),
        "threads_pct": {name: round(pct, 1) for name, pct in s.cpu.threads if pct >= 0.5},
        # calls at which each single thread would fill one core, if its CPU grows with the calls
        "one_core_limit_by_thread": {
            name: round(s.peak_concurrent * 100 / pct)
            for name, pct in s.cpu.threads
            if name in wl.SINGLE_THREADS and pct >= 1.0
        },
        "machine_pct": round(s.cpu.machine_pct, 1),
        "rss_mb": round(s.rss_mb, 1),
        "kb_per_call": round(1000 * s.mb_per_call),
        "work": asdict(s.work),
        "files": s.files,
        "longest_gap_ms": round(1000 * s.wav.longest_gap),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["ivr", "cps", "full", "all"], default="ivr")
    ap.add_argument("--steps", default=None, help="comma-separated steps (default per mode)")
    ap.add_argument("--hold", type=float, default=12.0, help="ivr, full: seconds each call lasts")
    ap.add_argument(
        "--spread",
        type=float,
        default=None,
        help="ivr, full: the 2 x N calls arrive over this (default 2 x hold)",
    )
    ap.add_argument("--cps-hold", type=float, default=5.0, help="cps: seconds each call lasts")
    ap.add_argument("--cps-seconds", type=float, default=20.0, help="cps: seconds each step offers calls")
    ap.add_argument("--only", choices=["hotline", "bare"], default=None)
    ap.add_argument(
        "--keep", type=Path, default=None, metavar="DIR", help="work in DIR and keep every step's files"
    )
    ap.add_argument(
        "--shared-machine",
        action="store_true",
        help="others use the cores: a busy machine is no limit (a saturated server thread still is)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = ap.parse_args()
    modes = ["ivr", "cps", "full"] if args.mode == "all" else [args.mode]
    sides = [s for s in (Hotline, Bare) if args.only in (None, s.name)]
    print(f"{time.strftime('%Y-%m-%d %H:%M')} {' '.join(sys.argv)}", flush=True)
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hotline-capacity-") as tmp_dir:
        tmp = args.keep or tmp_dir
        for mode in modes:
            steps = [float(s) for s in (args.steps or DEFAULT_STEPS[mode]).split(",")]
            result[mode] = {}
            for side in sides:
                result[mode][side.name] = summary(ramp(side, mode, steps, args, Path(tmp)))
            h, b = result[mode].get("hotline"), result[mode].get("bare")
            if h and b and h.get("last_good") and b.get("last_good"):
                result[mode]["ratio"] = {
                    "capacity": round(h["last_good"] / b["last_good"], 2),
                    "cpu_per_call": round(h["cpu_pct_per_call"] / max(b["cpu_pct_per_call"], 1e-9), 2),
                    "memory_per_call": round(h["kb_per_call"] / max(b["kb_per_call"], 1), 2),
                    "both_reached_a_limit": bool(h["limit_reached"] and b["limit_reached"]),
                }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
