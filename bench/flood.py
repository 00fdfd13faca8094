"""INVITE flood: does a legitimate caller get through during and after it?

SIPp sends ``--invites`` INVITEs that are never ACKed (tests/sip/flood_invite.xml) at
``--rate`` per second from one loopback address (127.0.0.3), the issue 11 flood. Meanwhile
a legitimate caller (tests/rawsip.py, from 127.0.0.2) places a call every
``--every`` seconds from before the flood until ``--after`` seconds after it: INVITE,
200, ACK, a short wait, BYE. Prints, for the periods before, during and after the flood:
calls, answered, refused (and with what), the INVITE-to-200 time (p50, max), when the
first call after the flood's end got through, the server's CPU (% of one core) during the
flood and its RSS before, at the end of and after the flood.

    .venv/bin/python bench/flood.py [--invites 3000] [--rate 300] [--after 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
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
from tests.rawsip import RawSip  # noqa: E402

FLOOD = ROOT / "tests" / "sip" / "flood_invite.xml"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


@dataclass
class Attempt:
    sent: float  # monotonic seconds
    code: int | None  # final response, None: nothing within the timeout
    seconds: float | None  # INVITE to final response


def legit_caller(port: int, every: float, stop: threading.Event, out: list[Attempt]) -> None:
    sip = RawSip(("127.0.0.1", port), host="127.0.0.2")
    try:
        while not stop.is_set():
            t0 = time.monotonic()
            d = sip.invite(user=b"5550123")
            r = sip.wait(d, range(200, 700), 10.0)
            out.append(Attempt(t0, r.code if r else None, (time.monotonic() - t0) if r else None))
            if r is not None and r.code == 200:
                sip.ack(d)
                time.sleep(0.3)
                sip.bye(d)
                sip.wait(d, {200, 481}, 2.0)
            stop.wait(max(0.0, every - (time.monotonic() - t0)))
    finally:
        sip.close()


def summary(name: str, attempts: list[Attempt]) -> None:
    ok = [a for a in attempts if a.code == 200]
    refused: dict[str, int] = {}
    for a in attempts:
        if a.code != 200:
            key = str(a.code) if a.code else "no answer"
            refused[key] = refused.get(key, 0) + 1
    times = sorted(a.seconds for a in ok if a.seconds is not None)
    p50 = f"{1000 * statistics.median(times):.0f} ms" if times else "-"
    worst = f"{1000 * times[-1]:.0f} ms" if times else "-"
    print(
        f"  {name:7} calls {len(attempts):3}  answered {len(ok):3}  refused {refused or 0}  "
        f"INVITE->200 p50 {p50}, max {worst}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--invites", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=300.0)
    ap.add_argument("--before", type=float, default=3.0, help="seconds of legitimate calls before the flood")
    ap.add_argument("--after", type=float, default=20.0, help="seconds of legitimate calls after the flood")
    ap.add_argument("--every", type=float, default=0.5, help="seconds between legitimate calls")
    ap.add_argument("--extra-toml", default="", help="appended to the server's config")
    ap.add_argument("--floods", type=int, default=1, help="floods in a row (RSS after each: a leak grows)")
    ap.add_argument("--keep", help="keep the server's directory (log, database) here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hotline-flood-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        server = HotlineProcess(
            workdir=work / "hotline", agents=[], log_level="info", extra_toml=args.extra_toml
        ).start()
        pid = server.proc.pid
        attempts: list[Attempt] = []
        stop = threading.Event()
        caller = threading.Thread(target=legit_caller, args=(server.sip_port, args.every, stop, attempts))
        floods: list[tuple[float, float, float, float]] = []  # start, end, CPU %, RSS at the end
        rss_settled: list[float] = []  # RSS `after` seconds after each flood
        try:
            caller.start()
            time.sleep(args.before)
            rss_before = rss_mb(pid)
            for _ in range(args.floods):
                cpu0, start = cpu_seconds(pid), time.monotonic()
                sipp = [
                    *("sipp", "-sf", str(FLOOD), f"127.0.0.1:{server.sip_port}", "-s", "hotline"),
                    *("-i", "127.0.0.3", "-mi", "127.0.0.3", "-p", str(free_port()), "-mp", str(free_port())),
                    *(
                        "-m",
                        str(args.invites),
                        "-r",
                        str(args.rate),
                        "-t",
                        "u1",
                        "-nostdin",
                        "-timeout",
                        "120",
                    ),
                ]
                subprocess.run(
                    sipp, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
                )
                end = time.monotonic()
                floods.append((start, end, 100 * (cpu_seconds(pid) - cpu0) / (end - start), rss_mb(pid)))
                time.sleep(args.after)
                rss_settled.append(rss_mb(pid))
        finally:
            stop.set()
            caller.join(20)
            server.stop()
        print(
            f"flood: {args.invites} INVITEs, never ACKed, at {args.rate:g}/s from 127.0.0.3, "
            f"{args.floods} time(s) {args.after:g} s apart; "
            f"a legitimate call from 127.0.0.2 every {args.every:g} s"
        )
        first, last = floods[0][0], floods[-1][1]
        during = [a for a in attempts if any(s <= a.sent < e for s, e, _, _ in floods)]
        summary("before", [a for a in attempts if a.sent < first])
        summary("during", during)
        summary("after", [a for a in attempts if a.sent >= first and a not in during])
        blocked = [a for a in attempts if a.sent >= first and a.code != 200]
        if blocked:
            print(
                "  a legitimate caller was refused until "
                f"{max(a.sent for a in blocked) - last:+.1f} s from the end of the last flood"
            )
        else:
            print("  no legitimate call refused: a legitimate caller got through at once, during each flood")
        for n, ((s, e, cpu, rss), settled) in enumerate(zip(floods, rss_settled, strict=True), 1):
            print(
                f"  flood {n}: {e - s:.1f} s, server CPU {cpu:.0f} % of one core, "
                f"RSS {rss:.0f} MB at its end, "
                f"{settled:.0f} MB {args.after:g} s later (before the first flood: {rss_before:.0f} MB)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
