"""DTMF -> next prompt latency at the wire, from a packet capture on loopback.

Probe callers (SIPp, 1 call/s) key 1 and 2 by RFC 4733 every 1.5 s into a quiet menu; each
key starts a tone prompt that is loud from its first sample (bench/flows/latency/). tcpdump
captures the probes' RTP both ways (capture filter on the probes' media port). A sample is
the time from the first packet of a key's RFC 4733 event (marker bit) to the first packet the
server sends that call with a loud payload: the key on the wire to the prompt on the wire,
including the jitter buffer, the pjsua2 pump, the controller, the player and the bridge tick.

Background load, per run (the probes are added on top):
  cps:N         N calls/s of the capacity script (bench/workload.py) lasting --cps-hold s
  concurrent:N  N calls of the capacity script up at once (each lasting --hold s)
`cps:0` is the probes alone (1 call/s). The issue's three figures are `cps:0`, `cps:100`
and `concurrent:<70 % of the last good step of sip_capacity.py --mode ivr>`.

    .venv/bin/python bench/dtmf_latency.py --load cps:0 --load cps:100 --load concurrent:490

Needs tcpdump (scripts/setup installs it) and root or CAP_NET_RAW (for tcpdump and for
SIPp's pcap replay). The server-side figure (keypress drained from pjsua2 to the player
started, `dtmf_to_prompt` in the log) is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import workload as wl  # noqa: E402
from tests.helpers import DEFAULT_PROMPT_DIRS, HotlineProcess, free_port  # noqa: E402
from tests.peers import free_udp_port, write_call_pcap  # noqa: E402

SCENARIO = ROOT / "bench" / "sip" / "load_caller.xml"
KEY_EVERY = 1.5  # seconds between a probe's keys
FIRST_KEY = 1.0  # seconds from the ACK to the first key
LOUD = 2000  # |sample| above this in a packet: the tone prompt is playing
TARGET_P99_MS = 30.0


def ulaw_table() -> np.ndarray:
    """G.711 mu-law byte -> linear sample."""
    b = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((b & 0x0F) << 3) + 0x84) << ((b & 0x70) >> 4)
    return np.where(b & 0x80, 0x84 - t, t - 0x84).astype(np.int32)


ULAW = ulaw_table()


def write_prompts(directory: Path) -> None:
    """latency-quiet: 0.2 s of silence; latency-tone: 0.3 s of 1 kHz at -6 dBFS, loud at once."""
    import wave

    directory.mkdir(parents=True, exist_ok=True)
    n = np.arange(int(0.3 * 8000))
    tone = (0.5 * 32767 * np.sin(2 * np.pi * 1000 * n / 8000 + np.pi / 2)).astype("<i2")
    for name, samples in (("latency-quiet", np.zeros(1600, dtype="<i2")), ("latency-tone", tone)):
        with wave.open(str(directory / f"{name}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(samples.tobytes())


@dataclass
class Capture:
    samples_ms: list[float] = field(default_factory=list)
    keys: int = 0  # key events the probes sent (seen on the wire)
    unanswered: int = 0  # keys with no loud packet within a second


def analyse(pcap: Path, probe_port: int) -> Capture:
    """Pair each key event (probe -> server, RTP PT 101, marker) with the first loud packet the
    server sends back on that call's port."""
    keys: dict[int, list[float]] = {}  # server port -> times of key starts
    loud: dict[int, list[float]] = {}  # server port -> times of loud packets
    with pcap.open("rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            udp = dpkt.ethernet.Ethernet(buf).data.data
            if not isinstance(udp, dpkt.udp.UDP) or len(udp.data) < 12:
                continue
            rtp = udp.data
            pt, marker = rtp[1] & 0x7F, rtp[1] & 0x80
            if udp.sport == probe_port:  # probe -> server
                if pt == 101 and marker:
                    keys.setdefault(udp.dport, []).append(ts)
            elif udp.dport == probe_port and pt == 0:  # server -> probe, PCMU
                header = 12 + 4 * (rtp[0] & 0x0F)
                payload = np.frombuffer(rtp[header:], dtype=np.uint8)
                if len(payload) and np.abs(ULAW[payload]).max() > LOUD:
                    loud.setdefault(udp.sport, []).append(ts)
    out = Capture()
    for port, starts in keys.items():
        times = np.array(sorted(loud.get(port, [])))
        for t in starts:
            out.keys += 1
            i = int(np.searchsorted(times, t))
            if i < len(times) and times[i] - t < 1.0:
                out.samples_ms.append(1000 * (times[i] - t))
            else:
                out.unanswered += 1
    return out


def sipp(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["sipp", "-sf", str(SCENARIO), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin", "-aa", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
    )


def run(load: str, args: argparse.Namespace, work: Path) -> dict[str, object]:
    kind, _, value = load.partition(":")
    n = float(value)
    run_dir = work / load.replace(":", "-")
    (run_dir / "flows").mkdir(parents=True)
    shutil.copy(ROOT / "bench" / "flows" / "latency" / "dtmf_latency.yaml", run_dir / "flows")
    write_prompts(run_dir / "prompts")
    server = HotlineProcess(
        workdir=run_dir / "hotline",
        agents=[],
        queues=[{"name": "bench", "skills": []}],
        flows_dir=run_dir / "flows",
        main_flow="dtmf_latency",
        log_level="info",
        prompt_dirs=[run_dir / "prompts", *DEFAULT_PROMPT_DIRS],
        whole_call=True,
    ).start(timeout=60)
    probe_port = free_udp_port(span=3)
    pcap = run_dir / "probes.pcap"
    dump = subprocess.Popen(
        [
            "tcpdump",
            "-i",
            "lo",
            "-n",
            "-U",
            "-B",
            "16384",
            "-s",
            "256",
            "-w",
            str(pcap),
            f"udp port {probe_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    background = None
    probe_seconds = FIRST_KEY + args.digits * KEY_EVERY + 1.0
    total = args.probes + probe_seconds + 10
    try:
        time.sleep(1.0)  # tcpdump is listening
        if n > 0:
            hold = args.cps_hold if kind == "cps" else args.hold
            rate = n if kind == "cps" else n / hold
            warmup = 5.0 if kind == "cps" else hold
            load_pcap = wl.write_caller_pcap(run_dir / "load.pcap", hold)
            background = sipp(
                [
                    *(
                        "-p",
                        str(free_port()),
                        "-mp",
                        str(free_udp_port(span=3)),
                        "-r",
                        f"{rate:.3f}",
                        "-rp",
                        "1000",
                    ),
                    *("-m", str(int(rate * (warmup + total))), "-l", str(int(rate * hold * 2) + 10)),
                    *(
                        "-d",
                        str(int(hold * 1000)),
                        "-key",
                        "call_pcap",
                        str(load_pcap),
                        "-key",
                        "caller",
                        "load",
                    ),
                    *(
                        "-max_socket",
                        "4096",
                        "-trace_stat",
                        "-stf",
                        str(run_dir / "load_stat.csv"),
                        "-fd",
                        "1",
                    ),
                    f"127.0.0.1:{server.sip_port}",
                ],
                run_dir,
            )
            time.sleep(warmup)
        keys = [(FIRST_KEY + i * KEY_EVERY, "12"[i % 2]) for i in range(args.digits)]
        probe_pcap = write_call_pcap(
            run_dir / "probe_rtp.pcap", np.zeros(int(probe_seconds * 8000), "<i2"), keys
        )
        probes = sipp(
            [
                *("-p", str(free_port()), "-mp", str(probe_port), "-r", "1", "-m", str(args.probes)),
                *(
                    "-d",
                    str(int(probe_seconds * 1000)),
                    "-key",
                    "call_pcap",
                    str(probe_pcap),
                    "-key",
                    "caller",
                ),
                *("probe", "-trace_stat", "-stf", str(run_dir / "probe_stat.csv"), "-fd", "1"),
                f"127.0.0.1:{server.sip_port}",
            ],
            run_dir,
        )
        probe_code = probes.wait(args.probes + probe_seconds + 120)
    finally:
        if background is not None:
            background.send_signal(signal.SIGUSR1)  # SIPp: stop placing calls, end cleanly
            try:
                background.wait(60)
            except subprocess.TimeoutExpired:
                background.kill()
        time.sleep(0.5)
        dump.send_signal(signal.SIGINT)
        dump.wait(30)
        server.stop(120)
    capture = analyse(pcap, probe_port)
    callers = {
        e["call_id"]: e.get("caller", "") for e in server.log_events() if e.get("event") == "call_summary"
    }
    inside = [
        float(e["ms"])
        for e in server.log_events()
        if e.get("event") == "dtmf_to_prompt" and str(callers.get(e.get("call_id"), "")).startswith("probe")
    ]
    s = sorted(capture.samples_ms)
    result: dict[str, object] = {
        "load": load,
        "probe_sipp_exit": probe_code,
        "keys": capture.keys,
        "answered_keys": len(s),
        "unanswered_keys": capture.unanswered,
        "wire_p50_ms": round(wl.pct(s, 50), 1),
        "wire_p90_ms": round(wl.pct(s, 90), 1),
        "wire_p99_ms": round(wl.pct(s, 99), 1),
        "wire_max_ms": round(max(s), 1) if s else None,
        "server_p50_ms": round(wl.pct(inside, 50), 2),
        "server_p99_ms": round(wl.pct(inside, 99), 2),
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--load", action="append", default=None, help="cps:N or concurrent:N (repeatable)")
    ap.add_argument("--probes", type=int, default=30, help="probe calls per run (1 per second)")
    ap.add_argument("--digits", type=int, default=8, help="keys per probe call")
    ap.add_argument("--hold", type=float, default=12.0, help="concurrent: seconds each load call lasts")
    ap.add_argument("--cps-hold", type=float, default=5.0, help="cps: seconds each load call lasts")
    args = ap.parse_args()
    if shutil.which("tcpdump") is None:
        sys.exit("tcpdump is missing: run scripts/setup")
    print(f"{time.strftime('%Y-%m-%d %H:%M')} {' '.join(sys.argv)}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="hotline-latency-") as tmp:
        for load in args.load or ["cps:0", "cps:100"]:
            results.append(run(load, args, Path(tmp)))
    print(json.dumps(results, indent=2))
    for r in results:
        if r["load"] == "cps:100":
            ok = isinstance(r["wire_p99_ms"], float) and r["wire_p99_ms"] < TARGET_P99_MS
            print(f"target p99 < {TARGET_P99_MS:.0f} ms at 100 CPS: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
