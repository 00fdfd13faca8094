"""How fast a legitimate caller gets through while another address floods the edge.

hotline runs behind its managed Kamailio (`[proxy]`). A caller on 127.0.0.1 places calls
one after another (INVITE with SDP -> 200 OK -> ACK -> BYE) and we time INVITE -> 200 OK:
first on a quiet edge, then while 127.0.0.2 sends INVITEs as fast as one Python thread
at --rate per second (bounded: --seconds and --max-flood). Prints p50/p95/max setup time for both, and
how much of the flood was answered (the guard drops what is over `invite_limit`).

    .venv/bin/python bench/sip_flood.py [--calls 20] [--seconds 6]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import HotlineProcess  # noqa: E402
from tests.peers import SipProbe  # noqa: E402

SDP = "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"


def header(text: str, name: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(rf"^{name}:(.*)$", text, re.M | re.I)]


def one_call(probe: SipProbe, n: int) -> float:
    """Seconds from INVITE to 200 OK; then ACK and BYE along the route set."""
    call_id = f"bench-{n}-{time.monotonic_ns()}"
    invite = probe.request(
        "INVITE", "5551234", to_user="hotline", call_id=call_id, body=SDP.format(port=40000)
    )
    start = time.perf_counter()
    probe.send(invite)
    answer = probe.response(10.0)
    took = time.perf_counter() - start
    if answer is None or answer[0] != 200:
        raise RuntimeError(f"call {n}: {answer[0] if answer else 'no answer'}")
    text = answer[1]
    to = header(text, "To")[0]
    contact = re.search(r"<([^>]+)>", header(text, "Contact")[0]).group(1)  # type: ignore[union-attr]
    routes = [r for line in header(text, "Record-Route") for r in line.split(",")][::-1]
    ip, port = probe.local
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        lines = [
            f"{method} {contact} SIP/2.0",
            f"Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK-{method}{n}{time.monotonic_ns()};rport",
            "Max-Forwards: 70",
            f"From: <sip:5551234@{probe.remote[0]}:{probe.remote[1]}>;tag=probe{probe._n}",
            f"To: {to}",
            f"Call-ID: {call_id}@{ip}",
            f"CSeq: {cseq} {method}",
            *[f"Route: {r.strip()}" for r in routes],
            "Content-Length: 0",
        ]
        probe.send("\r\n".join(lines) + "\r\n\r\n")
    probe.response(5.0)  # the BYE's 200
    return took


def flood(
    remote: tuple[str, int], stop: threading.Event, limit: int, rate: float, counts: dict[str, int]
) -> None:
    flooder = SipProbe(remote, local_ip="127.0.0.2")
    flooder.sock.setblocking(False)
    start = time.monotonic()
    try:
        while not stop.is_set() and counts["sent"] < limit:
            ahead = counts["sent"] / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
            flooder.send(flooder.request("INVITE", "6660000", to_user="hotline", body=SDP.format(port=41000)))
            counts["sent"] += 1
            try:
                while True:
                    flooder.sock.recv(65535)
                    counts["answered"] += 1
            except BlockingIOError:
                pass
    finally:
        flooder.close()


def summary(label: str, times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    p50 = statistics.median(ms)
    return f"{label}: {len(ms)} calls, setup p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20, help="legitimate calls per phase")
    ap.add_argument("--seconds", type=float, default=6.0, help="longest flood")
    ap.add_argument("--rate", type=float, default=5000.0, help="flood INVITEs per second")
    ap.add_argument("--max-flood", type=int, default=60000, help="most flood INVITEs sent")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = HotlineProcess(
            workdir=Path(tmp) / "hotline", agents=[], proxy=True, log_level="info"
        ).start()
        try:
            remote = ("127.0.0.1", server.sip_port)
            probe = SipProbe(remote)
            quiet = [one_call(probe, i) for i in range(args.calls)]
            stop, counts = threading.Event(), {"sent": 0, "answered": 0}
            flooder = threading.Thread(target=flood, args=(remote, stop, args.max_flood, args.rate, counts))
            flooder.start()
            started = time.monotonic()
            time.sleep(0.5)  # the flood is under way
            busy = []
            pause = max(0.0, (args.seconds - 1.0) / args.calls)  # spread over the flood
            for i in range(args.calls):
                if time.monotonic() - started > args.seconds:
                    break
                busy.append(one_call(probe, 1000 + i))
                time.sleep(pause)
            stop.set()
            flooder.join()
            elapsed = time.monotonic() - started
            probe.close()
        finally:
            server.stop()
    print(summary("quiet edge", quiet))
    print(summary("during flood", busy))
    print(
        f"flood from 127.0.0.2: {counts['sent']} INVITEs in {elapsed:.1f} s "
        f"({counts['sent'] / elapsed:.0f}/s), {counts['answered']} answered"
    )


if __name__ == "__main__":
    main()
