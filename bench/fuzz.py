"""The long fuzz run (issue 11): the fuzz material of tests/fuzzing.py against one live server.

The bounded version runs in the suite (tests/test_fuzz.py). This one sends ``--sip``
SIP messages (the RFC 4475-category corpus, then seeded mutations; UDP, every 5th also
over TCP; from 127.0.0.4), ``--cti`` garbage CTI lines (4 connections from 127.0.0.4,
paced under the flood limit) and ``--flows`` mutated flows hot-reloaded, while an agent
talks to a caller (SIPp, recorded). It prints what the server answered per category and
then checks: the server is up and logged no bug, the call in progress was not disturbed
and ends normally with its recording, a new call works, seq has no gap. Exit 1 on a failed
check. Reproduce a finding with its ``--seed``.

    .venv/bin/python bench/fuzz.py [--sip 2000] [--cti 10000] [--flows 350] [--seed 11]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import fuzzing  # noqa: E402  (after sys.path)
from tests.helpers import CtiClient, HotlineProcess, free_port  # noqa: E402
from tests.peers import Sipp, dial, dtmf_keys  # noqa: E402

FUZZER = "127.0.0.4"


def top(counts: dict[str, int], n: int = 8) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:n])


async def run(args: argparse.Namespace, work: Path) -> list[str]:
    failures: list[str] = []
    flows = work / "flows"
    flows.mkdir()
    for f in (ROOT / "flows").glob("*.yaml"):
        shutil.copy(f, flows)
    agent_port = free_port()
    agents = [{"id": "7001", "skills": ["sales"], "contact": f"sip:7001@127.0.0.1:{agent_port}"}]
    phone = Sipp("agent_uas", work, local_port=agent_port, rtp_echo=True, timeout=3600).start()
    server = HotlineProcess(
        workdir=work / "hotline", agents=agents, flows_dir=flows, log_level="info"
    ).start()
    caller = None
    try:
        cti = await CtiClient.session(server)
        for cmd in ("agent.login", "agent.ready"):
            await cti.request(cmd, agent="7001")
        caller = dial(
            server,
            "caller_dtmf",
            work,
            timeout=3600,
            keys={"dtmf_delay": 2500, "talk_ms": 3_000_000, **dtmf_keys("1", work)},
        ).start()
        call_id = (await cti.wait_event("call.connected", timeout=30))["call_id"]

        started = time.monotonic()
        sport = free_port()
        corpus = fuzzing.sip_corpus(host="127.0.0.1", port=server.sip_port, src=FUZZER, sport=sport)
        mutated = fuzzing.sip_mutations(
            args.seed,
            max(0, args.sip - len(corpus)),
            host="127.0.0.1",
            port=server.sip_port,
            src=FUZZER,
            sport=sport,
        )
        messages = corpus + list(mutated)
        codes = await asyncio.to_thread(
            fuzzing.send_sip, messages, port=server.sip_port, src=FUZZER, sport=sport
        )
        print(f"SIP: {len(messages)} messages in {time.monotonic() - started:.1f} s; answered: {top(codes)}")
        if server.proc.poll() is not None:
            failures.append(f"the server died on the SIP fuzz (exit {server.proc.returncode})")
            return failures

        started = time.monotonic()
        lines = list(fuzzing.cti_garbage(args.seed, args.cti))
        replies = await fuzzing.send_cti(lines, port=server.cti_port, token=server.token, src=FUZZER)
        print(f"CTI: {len(lines)} lines in {time.monotonic() - started:.1f} s; replies: {top(replies, 12)}")
        if "cti.internal" in replies:
            failures.append(f"cti.internal answered {replies['cti.internal']} times")
        if server.proc.poll() is not None:
            failures.append("the server died on the CTI fuzz")
            return failures

        started = time.monotonic()
        main_version = (await cti.request("flow.reload"))["flows"]["main"]
        sources = {
            p.name: p.read_text()
            for p in [
                *flows.glob("*.yaml"),
                *(ROOT / "tests/flows/broken").glob("*.yaml"),
                *(ROOT / "bench/flows").glob("*.yaml"),
            ]
        }
        outcomes: dict[str, int] = {}
        for name, text in fuzzing.flow_mutations(args.seed, args.flows, sources):
            (flows / "fuzz.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
            reply = await cti.request("flow.reload", timeout=30)
            key = "accepted" if reply["ok"] else reply["error"]["code"]
            outcomes[key] = outcomes.get(key, 0) + 1
            if key not in ("accepted", "flow.rejected"):
                failures.append(f"flow mutation {name}: {reply}")
        (flows / "fuzz.yaml").unlink()
        after = await cti.request("flow.reload")
        print(f"flows: {args.flows} mutations in {time.monotonic() - started:.1f} s; {top(outcomes)}")
        if not after["ok"] or after["flows"]["main"] != main_version:
            failures.append("the main flow changed")

        if [e for e in cti.events if e["event"] == "call.ended" and e["call_id"] == call_id]:
            failures.append("the call in progress ended during the fuzz")
        await cti.request("call.hangup", call_id=call_id)
        ready = await cti.wait_event("recording.ready", call_id=call_id, timeout=30)
        print(f"the call in progress: {ready['data']['seconds']:.0f} s recorded, ended by call.hangup")
        again = dial(
            server,
            "caller_hangup_early",
            work,
            keys={"dtmf_delay": 500, "hangup_ms": 500, **dtmf_keys("2", work)},
        )
        if await asyncio.to_thread(again.start().wait, 60) != 0:
            failures.append("a new call failed after the fuzz")
        live = [e["seq"] for e in cti.events]
        contiguous = live == list(range(1, len(live) + 1))
        if not contiguous:
            failures.append("a gap in seq")
        print(f"seq: {len(live)} events, {'contiguous' if contiguous else 'WITH A GAP'}")
        await cti.close()
    finally:
        if caller is not None:
            caller.stop()
        phone.stop()
        code = server.stop(timeout=30)
        if code != 0:
            failures.append(f"the server exited {code} at SIGTERM")
    bugs = fuzzing.bugs_in_log(server.log_events(), server.log())
    failures += [f"log: {b}" for b in bugs[:10]]
    return failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sip", type=int, default=2000, help="SIP messages: the corpus, then mutations")
    ap.add_argument("--cti", type=int, default=10_000, help="garbage CTI lines")
    ap.add_argument("--flows", type=int, default=350, help="mutated flows, hot-reloaded")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hotline-fuzz-") as tmp:
        failures = asyncio.run(run(args, Path(tmp)))
    print(
        "PASS: up, no bug logged, the call in progress unaffected, seq without gap"
        if not failures
        else "FAIL:"
    )
    for f in failures:
        print(f"  {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
