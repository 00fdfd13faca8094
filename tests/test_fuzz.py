"""The fuzz material (tests/fuzzing.py) against one live server, bounded (issue 11).

While an agent talks to a caller (real SIPp peers, recorded), the server gets the SIP
corpus in the RFC 4475 categories plus seeded mutations of it (UDP and TCP, from
127.0.0.4), garbage CTI lines (from 127.0.0.4), and mutated flows hot-reloaded. Then:
the server is up and logged no bug, the call in progress went on and ended normally with
its recording, a new call works, and seq has no gap. The long version is bench/fuzz.py.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from . import fuzzing
from .helpers import ROOT, CtiClient, HotlineProcess, free_port
from .peers import Sipp, dial, dtmf_keys

pytestmark = pytest.mark.sip

SEED = 11  # change it to explore; a failure names the seed and the message's index
SIP_MUTATIONS = 240
CTI_LINES = 600
FLOW_MUTATIONS = 40
FUZZER = "127.0.0.4"  # the fuzz traffic's source address: the per-source SIP limits apply to it alone


async def test_fuzzing_a_live_server_leaves_it_up_other_calls_unaffected_and_seq_without_gap(
    tmp_path: Path,
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    for f in (ROOT / "flows").glob("*.yaml"):
        shutil.copy(f, flows)
    agent_port = free_port()
    agents = [{"id": "7001", "skills": ["sales"], "contact": f"sip:7001@127.0.0.1:{agent_port}"}]
    phone = Sipp("agent_uas", tmp_path, local_port=agent_port, rtp_echo=True).start()
    server = HotlineProcess(workdir=tmp_path / "hotline", agents=agents, flows_dir=flows).start()
    caller: Sipp | None = None
    try:
        cti = await CtiClient.session(server)
        for cmd in ("agent.login", "agent.ready"):
            assert (await cti.request(cmd, agent="7001"))["ok"]
        first_seq = (await cti.request("ping"))["seq"]
        caller = dial(
            server,
            "caller_dtmf",
            tmp_path,
            keys={"caller": "5557001", "dtmf_delay": 2500, "talk_ms": 120000, **dtmf_keys("1", tmp_path)},
        ).start()
        connected = await cti.wait_event("call.connected", timeout=30, agent_id="7001")
        call_id = connected["call_id"]

        # SIP: the corpus, then seeded mutations of it, over UDP (and TCP now and then)
        corpus = fuzzing.sip_corpus(host="127.0.0.1", port=server.sip_port, src=FUZZER, sport=free_port())
        assert len(corpus) >= 50
        sport = free_port()
        mutations = list(
            fuzzing.sip_mutations(
                SEED, SIP_MUTATIONS, host="127.0.0.1", port=server.sip_port, src=FUZZER, sport=sport
            )
        )
        codes = await asyncio.to_thread(
            fuzzing.send_sip, corpus + mutations, port=server.sip_port, src=FUZZER, sport=sport
        )
        assert codes.get("400", 0) + codes.get("200", 0) + codes.get("486", 0) > 0, codes  # it answered
        assert server.proc.poll() is None, "the server died on the SIP fuzz"

        # CTI: garbage lines on authenticated connections
        replies = await fuzzing.send_cti(
            list(fuzzing.cti_garbage(SEED, CTI_LINES)), port=server.cti_port, token=server.token, src=FUZZER
        )
        assert "cti.internal" not in replies, replies
        assert replies.get("cti.bad_json", 0) > CTI_LINES // 10, replies
        assert server.proc.poll() is None, "the server died on the CTI fuzz"

        # flows: mutated files hot-reloaded; each is accepted or rejected, nothing else
        main_version = (await cti.request("flow.reload"))["flows"]["main"]
        sources = {
            p.name: p.read_text()
            for p in [*flows.glob("*.yaml"), *(ROOT / "tests/flows/broken").glob("*.yaml")]
        }
        outcomes: dict[str, int] = {}
        for name, text in fuzzing.flow_mutations(SEED, FLOW_MUTATIONS, sources):
            (flows / "fuzz.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
            reply = await cti.request("flow.reload", timeout=10)
            key = "ok" if reply["ok"] else reply["error"]["code"]
            assert key in ("ok", "flow.rejected"), (name, reply)
            outcomes[key] = outcomes.get(key, 0) + 1
        (flows / "fuzz.yaml").unlink()
        after = await cti.request("flow.reload")
        assert after["ok"] and after["flows"]["main"] == main_version
        assert outcomes.get("flow.rejected", 0) > FLOW_MUTATIONS // 2, outcomes

        # the call in progress was never disturbed: still connected, it ends normally now
        assert not [e for e in cti.events if e["event"] == "call.ended" and e["call_id"] == call_id]
        assert (await cti.request("call.hangup", call_id=call_id))["ok"]
        ended = await cti.wait_event("call.ended", call_id=call_id)
        assert ended["data"]["cause"] == "hung_up_by_cti" and ended["data"]["talk_seconds"] > 3
        ready = await cti.wait_event("recording.ready", call_id=call_id, timeout=20)
        assert ready["data"]["seconds"] > 3 and not ready["data"]["repaired"]
        assert await asyncio.to_thread(caller.wait, 30) == 0, caller.summary()

        # a new call works
        again = dial(
            server,
            "caller_hangup_early",
            tmp_path,
            keys={"dtmf_delay": 500, "hangup_ms": 500, **dtmf_keys("2", tmp_path)},
        ).start()
        assert await asyncio.to_thread(again.wait, 30) == 0, again.summary()

        # seq: the live stream and a replay of it, with no gap
        await cti.wait_for(
            lambda: [
                e
                for e in cti.events
                if e["event"] == "call.ended" and e["data"]["summary"]["caller"] == "caller"
            ],
            10,
            "the new call's end",
        )
        live = [e["seq"] for e in cti.events]  # subscribed before anything happened
        assert live == list(range(1, 1 + len(live))), "a gap in the live stream"
        assert live[-1] > first_seq + 50  # the fuzz made the server publish
        replay = await CtiClient.connect(server.cti_port)
        assert (await replay.request("auth", token=server.token))["ok"]
        reply = await replay.request("subscribe", events=["*"], since=0)
        assert reply["ok"], reply
        await replay.wait_for(lambda: len(replay.events) >= len(live), 10, "the replay")
        assert replay.events[: len(live)] == cti.events
        await replay.close()
        await cti.close()
    finally:
        if caller is not None:
            caller.stop()
        phone.stop()
        code = server.stop()
    assert code == 0, server.log()
    bugs = fuzzing.bugs_in_log(server.log_events(), server.log())
    assert not bugs, bugs[:5]
