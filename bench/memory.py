"""Where the memory of a call goes: N calls of the capacity script (bench/workload.py) held up
at once on one server, with the process measured idle, with every call up, and after they
ended.

Prints per call: RSS, and its native parts from /proc/<pid>/smaps (the malloc heap, anonymous
mappings: pjmedia pools, Python arenas, thread stacks), and for hotline the Python heap from
tracemalloc (bench/traced_hotline.py) with the source lines that grew most. What stays after
the calls ended is what pools and arenas keep for the next ones.

    .venv/bin/python bench/memory.py --side hotline --mode full --calls 200
    .venv/bin/python bench/memory.py --side bare --mode full --calls 200

Tracing costs hotline CPU and memory of its own (tracemalloc's records are not in the
Python figure but are in RSS): RSS per call is taken from a run without it (--no-trace).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import sip_capacity as cap  # noqa: E402
from bench import workload as wl  # noqa: E402
from tests.helpers import free_port  # noqa: E402
from tests.peers import free_udp_port  # noqa: E402


def smaps(pid: int) -> dict[str, float]:
    """kB of RSS by kind of mapping: heap (brk), anon (mmap), stack, file."""
    out = {"heap": 0.0, "anon": 0.0, "stack": 0.0, "file": 0.0}
    kind = "anon"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if parts and "-" in parts[0] and len(parts) >= 5 and ":" in parts[3]:  # a mapping header
            name = parts[5] if len(parts) > 5 else ""
            kind = (
                "heap"
                if name == "[heap]"
                else "stack"
                if name.startswith("[stack")
                else "file"
                if name.startswith("/")
                else "anon"
            )
        elif parts and parts[0] == "Rss:":
            out[kind] += float(parts[1])
    out["rss"] = sum(out.values())
    return out


class Traced(cap.Hotline):
    def __init__(self, work: Path, mode: str, agents: list[str], trace: bool) -> None:
        super().__init__(work, mode, agents)
        self.trace_dir = work / "trace"
        if trace:
            self.server.launcher = [sys.executable, str(ROOT / "bench" / "traced_hotline.py")]
            os.environ["HOTLINE_TRACE_DIR"] = str(self.trace_dir)
        self.trace = trace
        self.snaps = 0

    def snapshot(self, pid: int) -> tracemalloc.Snapshot | None:
        if not self.trace:
            return None
        self.snaps += 1
        path = self.trace_dir / f"snap{self.snaps}.pickle"
        os.kill(pid, signal.SIGUSR2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists():
                time.sleep(1.0)  # written whole
                return tracemalloc.Snapshot.load(str(path))
            time.sleep(0.2)
        raise TimeoutError("no tracemalloc snapshot")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", choices=["hotline", "bare"], default="hotline")
    ap.add_argument("--mode", choices=["ivr", "full"], default="full")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--spread", type=float, default=10.0, help="seconds over which the calls arrive")
    ap.add_argument("--up", type=float, default=15.0, help="seconds every call is up before measuring")
    ap.add_argument("--no-trace", action="store_true", help="hotline without tracemalloc")
    args = ap.parse_args()
    n = args.calls
    hold = args.spread + args.up + 10
    print(f"{time.strftime('%Y-%m-%d %H:%M')} {' '.join(sys.argv)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="hotline-memory-") as tmp:
        work = Path(tmp)
        script = wl.Script(args.mode, hold)
        pcap = wl.write_caller_pcap(work / "caller.pcap", hold)
        agents_proc = None
        agents: list[str] = []
        if args.mode == "full":
            agent_port = free_port()
            agents = [f"sip:a{i}@127.0.0.1:{agent_port}" for i in range(n + 10)]
            agents_proc = subprocess.Popen(
                [
                    *("sipp", "-sf", str(cap.AGENT_SCENARIO), "-i", "127.0.0.1", "-mi", "127.0.0.1"),
                    *(
                        "-p",
                        str(agent_port),
                        "-mp",
                        str(free_udp_port(span=3)),
                        "-rtp_echo",
                        "-aa",
                        "-nostdin",
                    ),
                    *("-key", "answer_delay", str(wl.AGENT_ANSWER_MS), "-max_socket", "4096"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=work,
            )
        side: Traced | cap.Bare = (
            Traced(work / "server", args.mode, agents, not args.no_trace)
            if args.side == "hotline"
            else cap.Bare(work / "server", args.mode, agents)
        )
        pid, port = side.start()
        try:
            time.sleep(2.0)
            idle, idle_py = smaps(pid), side.snapshot(pid) if isinstance(side, Traced) else None
            sipp = subprocess.Popen(
                [
                    *(
                        "sipp",
                        "-sf",
                        str(cap.SCENARIO),
                        "-i",
                        "127.0.0.1",
                        "-mi",
                        "127.0.0.1",
                        "-p",
                        str(free_port()),
                    ),
                    *(
                        "-mp",
                        str(free_udp_port(span=3)),
                        "-r",
                        f"{n / args.spread:.3f}",
                        "-rp",
                        "1000",
                        "-m",
                        str(n),
                    ),
                    *("-l", str(n + 10), "-d", str(int(hold * 1000)), "-key", "call_pcap", str(pcap)),
                    *("-key", "caller", "load", "-nostdin", "-aa", "-max_socket", "4096"),
                    *("-trace_stat", "-stf", str(work / "stat.csv"), "-fd", "1", f"127.0.0.1:{port}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=work,
            )
            time.sleep(args.spread + args.up)
            up, up_py = smaps(pid), side.snapshot(pid) if isinstance(side, Traced) else None
            sipp.wait()
            time.sleep(3.0)
            after = smaps(pid)
            _rows, last = cap.sipp_stats(work / "stat.csv")
        finally:
            work_done = side.stop()
            if agents_proc is not None:
                agents_proc.terminate()
                agents_proc.wait(30)
        ok = int(last["SuccessfulCall(C)"])
        report = wl.check_wavs(side.recordings(), script)
        problems = wl.work_problems(side.name, work_done, ok, len(side.recordings()), script)
        result: dict[str, object] = {
            "side": args.side,
            "mode": args.mode,
            "calls": n,
            "succeeded": ok,
            "work": work_done.__dict__ if hasattr(work_done, "__dict__") else str(work_done),
            "problems": problems + report.faults[:3],
            "idle_rss_mb": round(idle["rss"] / 1000, 1),
            "per_call_kb": {k: round((up[k] - idle[k]) / n, 1) for k in up},
            "kept_after_calls_kb": {k: round((after[k] - idle[k]) / n, 1) for k in after},
        }
        if idle_py is not None and up_py is not None:
            diff = up_py.compare_to(idle_py, "lineno")
            result["python_per_call_kb"] = round(sum(d.size_diff for d in diff) / n / 1000, 1)
            result["python_top"] = [
                f"{d.traceback[0].filename.replace(str(ROOT) + '/', '')}:{d.traceback[0].lineno} "
                f"{d.size_diff / n:.0f} B/call ({d.count_diff / n:+.1f} blocks)"
                for d in diff[:15]
            ]
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
