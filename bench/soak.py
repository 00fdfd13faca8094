"""Soak: hours of steady load at 70 % of the measured capacity. Not in CI.

The load is the capacity benchmark's (bench/sip_capacity.py: 600 concurrent calls was
its best step with 0 failures) at ``--load`` (0.7) of ``--capacity`` (600) calls up at
once, each lasting about ``--hold`` seconds, for ``--minutes`` (60): most callers press 1
and leave a voicemail (prompt, menu, RFC 4733 digit, recorder: bench/sip/load_caller.xml);
callers that press 2 (tests/sip/caller_dtmf.xml) wait for one of ``--agents`` SIPp agents,
who answer, are bridged and recorded. A CTI consumer subscribes to everything and deletes
each recording once recording.ready names it (as an archive job would), so the disk does
not fill. The server runs bench/flows/soak/soak.yaml.

Printed at the end: calls offered and failed (SIPp's count, target 0; and call.ended
causes), recordings ready and failed, the server's RSS at start, after the warm-up
(``--warmup`` seconds, default a fifth of the run but at least 60 s) and at the end of the
load with its growth after warm-up (target under 5 %), open file descriptors (the same
three points), CPU, and the event outbox's size (rows, database and WAL bytes).

    .venv/bin/python bench/soak.py [--minutes 60] [--capacity 600] [--load 0.7] [--hold 30]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import CtiClient, HotlineProcess, free_port  # noqa: E402  (after sys.path)

VOICEMAIL_CALLER = ROOT / "bench" / "sip" / "load_caller.xml"
AGENT_CALLER = ROOT / "tests" / "sip" / "caller_dtmf.xml"
AGENT_PHONE = ROOT / "tests" / "sip" / "agent_uas.xml"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Sample:
    t: float  # seconds since the load started
    rss: float  # MB
    fds: int
    cpu: float  # server CPU seconds so far


@dataclass
class Tally:
    causes: dict[str, int] = field(default_factory=dict)
    connected: int = 0  # calls bridged to an agent
    ready: dict[str, int] = field(default_factory=dict)  # recordings by kind
    failed_recordings: int = 0
    deleted_bytes: int = 0
    events: int = 0


async def consume(server: HotlineProcess, tally: Tally, stop: asyncio.Event) -> None:
    """Subscribe to everything; delete each recording once it is ready (an archive job)."""
    cti = await CtiClient.session(server)
    seen = 0
    while not stop.is_set():
        await asyncio.sleep(0.5)
        new, seen = cti.events[seen:], len(cti.events)
        for e in new:
            tally.events += 1
            if e["event"] == "call.ended":
                cause = e["data"]["cause"]
                tally.causes[cause] = tally.causes.get(cause, 0) + 1
            elif e["event"] == "call.connected":
                tally.connected += 1
            elif e["event"] == "recording.ready":
                tally.ready[e["data"]["kind"]] = tally.ready.get(e["data"]["kind"], 0) + 1
                for key in ("path", "sidecar"):
                    p = Path(e["data"].get(key) or "/nonexistent")
                    if p.is_file():
                        tally.deleted_bytes += p.stat().st_size
                        p.unlink()
            elif e["event"] == "recording.failed":
                tally.failed_recordings += 1
        cti.events.clear()
        seen = 0
    await cti.close()


def sipp(
    args: list[str], work: Path, name: str, cwd: Path | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    stat = work / f"{name}_stat.csv"
    cmd = ["sipp", *args, "-nostdin", "-trace_stat", "-stf", str(stat), "-fd", "5", "-max_socket", "4096"]
    cmd += ["-trace_err", "-error_file", str(work / f"{name}_errors.log")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd or work)
    return proc, stat


def last_stats(stat: Path) -> dict[str, str]:
    with stat.open() as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    return rows[-1] if rows else {}


async def soak(args: argparse.Namespace, work: Path) -> None:
    concurrent = int(args.capacity * args.load)
    # SIPp rounds a fractional -r badly (0.44/s gave 0.1/s): rates go as calls per 100 s
    agent_rate = 0.7 * args.agents / (args.hold + 2.0)  # agents 70 % busy (ring, wrap-up)
    rate = concurrent / args.hold
    voicemail_rate = max(0.1, rate - agent_rate)
    seconds = args.minutes * 60
    phone_port = free_port()
    agents = [
        {
            "id": f"{8000 + n}",
            "skills": ["soak"],
            "contact": f"sip:{8000 + n}@127.0.0.1:{phone_port}",
            "autologin": True,
        }
        for n in range(args.agents)
    ]
    server = HotlineProcess(
        workdir=work / "hotline",
        agents=agents,
        queues=[{"name": "soak", "skills": ["soak"], "ring_timeout": 10, "wrap_up": 1}],
        flows_dir=ROOT / "bench" / "flows" / "soak",
        main_flow="soak",
        log_level="info",
        sip_options={"max_calls": max(1024, 3 * concurrent)},
    ).start()
    pid = server.proc.pid
    tally, stop = Tally(), asyncio.Event()
    consumer = asyncio.create_task(consume(server, tally, stop))
    target = f"127.0.0.1:{server.sip_port}"
    phones, phones_stat = sipp(
        ["-sf", str(AGENT_PHONE), "-i", "127.0.0.1", "-p", str(phone_port), "-mp", str(free_port()),
         "-rtp_echo", "-key", "answer_delay", "1000", "-key", "hangup_ms", "0"],
        work, "agents",
    )  # fmt: skip
    talk_ms = int(args.hold * 1000) - 7100  # load_caller spends 7.1 s before its final pause
    voicemail, voicemail_stat = sipp(
        ["-sf", str(VOICEMAIL_CALLER), target, "-s", "bench", "-i", "127.0.0.1", "-p", str(free_port()),
         "-mp", str(free_port()), "-r", f"{voicemail_rate * 100:.0f}", "-rp", "100000",
         "-m", str(int(voicemail_rate * seconds)), "-l", str(2 * concurrent), "-d", str(talk_ms)],
        work, "voicemail",
    )  # fmt: skip
    keys = {"caller": "soak", "dtmf_delay": "3000", "dtmf_pcap": "/usr/share/sip-tester/dtmf_2833_2.pcap",
            "dtmf_ms": "300", "talk_ms": str(int(args.hold * 1000) - 3300), "digit": "2", "hangup_ms": "0",
            "answer_delay": "1000"}  # fmt: skip
    key_args = [a for k, v in keys.items() for a in ("-key", k, v)]
    callers, callers_stat = sipp(
        ["-sf", str(AGENT_CALLER), target, "-s", "hotline", "-i", "127.0.0.1", "-p", str(free_port()),
         "-mp", str(free_port()), "-r", f"{agent_rate * 100:.0f}", "-rp", "100000",
         "-m", str(int(agent_rate * seconds)), "-l", str(4 * args.agents), "-aa", *key_args],
        work, "agent_callers", cwd=AGENT_CALLER.parent,  # it streams caller_audio.ulaw from there
    )  # fmt: skip
    print(
        f"soak: {args.minutes:g} min, {concurrent} calls up at once ({args.load:.0%} of {args.capacity}), "
        f"{rate:.1f} calls/s ({agent_rate:.2f}/s to {args.agents} agents), about {args.hold:g} s each",
        flush=True,
    )
    started = time.monotonic()
    samples: list[Sample] = []
    while time.monotonic() - started < seconds and voicemail.poll() is None:
        samples.append(Sample(time.monotonic() - started, rss_mb(pid), fds(pid), cpu_seconds(pid)))
        if len(samples) % 12 == 1:
            s = samples[-1]
            print(f"  {s.t:6.0f} s  RSS {s.rss:6.1f} MB  fds {s.fds:5d}  events {tally.events}", flush=True)
        await asyncio.sleep(5)
    load_end = Sample(time.monotonic() - started, rss_mb(pid), fds(pid), cpu_seconds(pid))
    for proc in (voicemail, callers):
        try:
            await asyncio.to_thread(proc.wait, args.hold * 3 + 60)
        except subprocess.TimeoutExpired:
            proc.terminate()
    await asyncio.sleep(5)  # the last recordings are merged and published
    drained = Sample(time.monotonic() - started, rss_mb(pid), fds(pid), cpu_seconds(pid))
    stop.set()
    await consumer
    phones.terminate()
    phones.wait(30)
    code = server.stop(120)

    warmup = args.warmup if args.warmup is not None else max(60.0, seconds / 5)
    after = [s for s in samples if s.t >= warmup] or samples[-1:]
    base = after[0]
    growth = 100 * (load_end.rss - base.rss) / base.rss
    peak = max(s.rss for s in samples)
    cpu = 100 * (load_end.cpu - samples[0].cpu) / max(load_end.t - samples[0].t, 1e-9)
    vm, ac, ph = last_stats(voicemail_stat), last_stats(callers_stat), last_stats(phones_stat)
    offered = int(vm.get("TotalCallCreated", 0)) + int(ac.get("TotalCallCreated", 0))
    failed = int(vm.get("FailedCall(C)", 0)) + int(ac.get("FailedCall(C)", 0))
    with sqlite3.connect(server.db) as db:
        rows = db.execute("SELECT COUNT(*) FROM cti_outbox").fetchone()[0]
        open_calls = db.execute("SELECT COUNT(*) FROM calls WHERE ended_at IS NULL").fetchone()[0]
    wal = server.db.with_name(server.db.name + "-wal")
    logs = server.log_events()
    refused = sum(int(e.get("refused", 0)) for e in logs if e["event"] == "sip_source_refused")
    no_ack = sum(1 for e in logs if e["event"] == "sip_no_ack")
    errors: dict[str, int] = {}
    for name in ("voicemail", "agent_callers", "agents"):
        path = work / f"{name}_errors.log"
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            if "jumping to label" in line or not line[:4].isdigit():
                continue
            reason = line.split("\t")[-1][:90]
            errors[f"{name}: {reason}"] = errors.get(f"{name}: {reason}", 0) + 1
    report = [
        f"results after {load_end.t / 60:.1f} min of load (warm-up: the first {warmup:.0f} s):",
        f"  calls offered {offered}, failed {failed} (SIPp: voicemail callers {vm.get('FailedCall(C)')}, "
        f"agent callers {ac.get('FailedCall(C)')}, agents {ph.get('FailedCall(C)')}); "
        f"records left open {open_calls}",
        f"  INVITEs refused by admission control {refused}, answered calls never ACKed {no_ack}; "
        f"SIPp errors: {dict(sorted(errors.items(), key=lambda kv: -kv[1])[:4]) or 'none'}",
        f"  call.ended causes: {dict(sorted(tally.causes.items(), key=lambda kv: -kv[1]))}; "
        f"bridged to an agent {tally.connected}",
        f"  recordings ready {tally.ready or 0}, failed {tally.failed_recordings} "
        f"({tally.deleted_bytes / 1e6:.0f} MB deleted by the consumer); events seen {tally.events}",
        f"  RSS: start {samples[0].rss:.0f} MB, after warm-up {base.rss:.0f} MB, "
        f"end of load {load_end.rss:.0f} MB (growth after warm-up {growth:+.1f} %, target < 5 %), "
        f"peak {peak:.0f} MB, drained {drained.rss:.0f} MB",
        f"  file descriptors: start {samples[0].fds}, after warm-up {base.fds}, "
        f"end of load {load_end.fds}, drained {drained.fds}",
        f"  server CPU during the load: {cpu:.0f} % of one core",
        f"  outbox: {rows} events, database {server.db.stat().st_size / 1e6:.1f} MB, "
        f"WAL {wal.stat().st_size / 1e6 if wal.exists() else 0:.1f} MB; server exit code {code}",
    ]
    print("\n" + "\n".join(report))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument(
        "--capacity", type=int, default=600, help="concurrent calls bench/sip_capacity.py sustained"
    )
    ap.add_argument("--load", type=float, default=0.7, help="share of the capacity to hold")
    ap.add_argument("--hold", type=float, default=30.0, help="seconds a call lasts")
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--warmup", type=float, default=None, help="seconds excluded from the RSS growth")
    ap.add_argument("--keep", help="keep the run's directory (server log, database, SIPp stats) here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hotline-soak-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        asyncio.run(soak(args, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
