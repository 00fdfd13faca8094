"""DTMF -> next prompt latency over SIP, server side, at 1 and at N concurrent calls.

Each SIPp caller keys "1212..." by RFC 4733 into bench/flows/dtmf_latency.yaml,
where every key starts a new WAV prompt. The server logs, per key, the time from
the keypress being drained from pjsua2 on the loop thread to the next prompt's
player starting (`dtmf_to_prompt`, ms); this script prints p50/p99 of those.

    .venv/bin/python bench/dtmf_latency.py [--calls 200] [--digits 12]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import HotlineProcess  # noqa: E402
from tests.peers import Sipp, dtmf_keys  # noqa: E402


def run(work: Path, calls: int, digits: str) -> list[float]:
    server = HotlineProcess(
        workdir=work / f"hotline-{calls}",
        agents=[],
        queues=[{"name": "none"}],
        flows_dir=ROOT / "bench" / "flows",
        main_flow="dtmf_latency",
        log_level="info",
    ).start()
    try:
        keys = {"dtmf_delay": 3000, "talk_ms": 1000, **dtmf_keys(digits, work)}
        caller = Sipp(
            "caller_dtmf",
            work,
            remote=f"127.0.0.1:{server.sip_port}",
            service="bench",
            calls=calls,
            rate=max(10, calls / 5),
            keys=keys,
            timeout=120,
            name=f"callers_{calls}",
        ).start()
        code = caller.wait(180)
        stats = caller.stats()
    finally:
        server.stop(60)
    samples = [e["ms"] for e in server.log_events() if e.get("event") == "dtmf_to_prompt"]
    print(
        f"{calls:4d} calls: sipp exit {code}, ok {stats.get('SuccessfulCall(C)')}, failed "
        f"{stats.get('FailedCall(C)')}, {len(samples)} keypresses measured",
        flush=True,
    )
    return samples


def pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--digits", type=int, default=12)
    args = ap.parse_args()
    digits = ("12" * args.digits)[: args.digits]
    results = {}
    with tempfile.TemporaryDirectory(prefix="hotline-dtmf-") as tmp:
        for calls in (1, args.calls):
            samples = run(Path(tmp), calls, digits)
            if samples:
                results[calls] = {
                    "keys": len(samples),
                    "p50_ms": round(pct(samples, 50), 3),
                    "p99_ms": round(pct(samples, 99), 3),
                    "max_ms": round(max(samples), 3),
                }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
