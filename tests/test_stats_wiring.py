"""queue.stats events and roll-up rows from the real server, and `hotline report`."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

from .helpers import ROOT, CtiClient, HotlineProcess


async def test_queue_stats_events_rollups_and_report(tmp_path: Path) -> None:
    server = HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=[{"id": "1001", "skills": ["sales", "support"], "contact": "sip:1001@127.0.0.1:9"}],
        extra_toml="[stats]\ninterval = 2\npublish_every = 0.5\n",
    ).start()
    client = await CtiClient.session(server, events=["queue.stats"])
    try:
        assert (await client.request("agent.login", agent="1001"))["ok"]
        assert (await client.request("agent.ready", agent="1001"))["ok"]

        def available_in_sales() -> bool:
            return any(
                e["data"]["queue"] == "sales" and e["data"]["figures"]["agents"]["available"] == 1
                for e in client.events
            )

        await client.wait_for(available_in_sales, 10, "queue.stats with 1 agent available in sales")
        await client.wait_for(lambda: len(client.events) >= 9, 10, "three rounds of queue.stats")
    finally:
        await client.close()
    await __import__("asyncio").sleep(4.5)  # two 2-second intervals close
    assert server.stop() == 0
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "hotline",
            "report",
            "--config",
            str(server.workdir / "config.toml"),
            "--csv",
            "--from",
            "2000-01-01",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader(io.StringIO(report.stdout)))
    assert {r["queue"] for r in rows} == {"sales", "support", "operator", "care"}
    assert all(r["offered"] == "0" for r in rows)
    occupancy = [r["occupancy"] for r in rows if r["queue"] == "sales"]
    assert "0.0" in occupancy, rows  # the agent was available (idle) in a closed interval
    text = subprocess.run(
        [
            sys.executable,
            "-m",
            "hotline",
            "report",
            "--config",
            str(server.workdir / "config.toml"),
            "--from",
            "2000-01-01",
            "--queue",
            "sales",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert "SL%" in text.stdout and "sales" in text.stdout


async def test_a_run_shorter_than_one_interval_is_in_the_report(tmp_path: Path) -> None:
    """stop() saves the open interval (it used to be lost: `hotline report` showed nothing)."""
    from .peers import dial, dtmf_keys

    server = HotlineProcess(workdir=tmp_path / "hotline", agents=[]).start()  # interval: 900 s
    client = await CtiClient.session(server, events=["call.*"])
    try:
        caller = dial(
            server,
            "caller_hangup_early",
            tmp_path,
            keys={"dtmf_delay": 2500, "hangup_ms": 1500, **dtmf_keys("1", tmp_path)},
        ).start()
        assert await __import__("asyncio").to_thread(caller.wait, 30) == 0, caller.summary()
        await client.wait_event("call.ended", timeout=10, cause="abandoned")
    finally:
        await client.close()
    assert server.stop() == 0
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "hotline",
            "report",
            "--config",
            str(server.workdir / "config.toml"),
            "--csv",
            "--from",
            "2000-01-01",
            "--queue",
            "sales",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert report.returncode == 0, report.stderr
    (row,) = list(csv.DictReader(io.StringIO(report.stdout)))
    assert (row["offered"], row["short_abandoned"]) == ("1", "1"), row  # hung up within 5 s
