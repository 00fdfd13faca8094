"""End to end behind the managed Kamailio: softphones (baresip) register with a password
and take calls from SIPp callers, over UDP and over TLS with SRTP; the guard holds off a
REGISTER flood and a password guesser; a SIGKILLed Kamailio comes back; a trunk that
challenges with 401 carries click-to-dial. Everything on 127.0.0.x, every process ours."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .helpers import CtiClient, HotlineProcess, demo_certificate, free_port, until
from .peers import Baresip, Sipp, SipProbe, dial, dtmf_keys, write_tone_wav
from .test_cti_schema import validate_events

pytestmark = pytest.mark.sip

PASSWORDS = {
    "1001": "alice-sip-pass",
    "1002": "bob-sip-pass-tls",
    "1003": "carol-sip-pass",
    "1004": "dave-sip-pass",
}
PASSWD = [sys.executable, "-m", "hotline", "agents", "passwd", "--password-stdin"]
AGENTS = [
    {"id": "1001", "skills": ["sales"], "password": PASSWORDS["1001"]},
    {"id": "1002", "skills": ["support"], "password": PASSWORDS["1002"], "media_encryption": "srtp"},
    {"id": "1003", "skills": ["sales"], "password": PASSWORDS["1003"]},
    {"id": "1004", "skills": ["sales"], "password": PASSWORDS["1004"]},
]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HotlineProcess]:
    """One hotline behind its managed Kamailio, shared by the tests of this module (in order)."""
    server = HotlineProcess(
        workdir=tmp_path_factory.mktemp("edge") / "hotline",
        agents=AGENTS,
        proxy=True,
        proxy_toml="register_limit = 20\nrate_window = 2\nauth_fail_limit = 4\nblock_seconds = 60",
    ).start()
    yield server
    code = server.stop()
    assert code == 0, f"unclean shutdown:\n{server.log()}"
    looped = [e for e in server.log_events() if e.get("event") == "call_summary" and e["caller"] == "hotline"]
    assert not looped, f"hotline's own INVITE came back to it through the proxy: {looped}"
    assert not kamailio_pids(server), "Kamailio outlived hotline"


@pytest.fixture
async def cti(edge: HotlineProcess) -> AsyncIterator[CtiClient]:
    client = await CtiClient.session(edge)
    yield client
    await client.close()
    validate_events(client.events)


def kamailio_pids(server: HotlineProcess) -> list[int]:
    """Kamailio processes started by this hotline (its main one first)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError):
            continue
        pid, ppid, pgid = int(stat.parent.name), int(fields[1]), int(fields[2])
        if comm == "kamailio" and (ppid == server.proc.pid or pgid in pids):
            pids.append(pid)
    return sorted(pids, key=lambda p: p != min(pids)) if pids else []


def agent_phone(server: HotlineProcess, workdir: Path, user: str, **kw: Any) -> Baresip:
    return Baresip(
        workdir,
        user=user,
        registrar=f"127.0.0.1:{server.sip_port}",
        password=kw.pop("password", PASSWORDS[user]),
        **kw,
    )


def channels(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 2, "the recording is not stereo"
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2).astype(np.float64)


def dominant_hz(samples: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum[5:])) + 5])


async def call_through(
    server: HotlineProcess, cti: CtiClient, tmp_path: Path, digit: str, agent: str
) -> dict:
    """A SIPp caller presses ``digit`` and talks; the recording.ready of its call."""
    caller = dial(
        server,
        "caller_dtmf",
        tmp_path,
        keys={"caller": "5551234", "dtmf_delay": 2500, "talk_ms": 4000, **dtmf_keys(digit, tmp_path)},
    ).start()
    connected = await cti.wait_event("call.connected", timeout=30, agent_id=agent)
    assert caller.wait(60) == 0, caller.summary()
    return await cti.wait_event("recording.ready", timeout=20, call_id=connected["call_id"])


async def test_a_registered_softphone_logs_in_without_contact_and_takes_a_call(
    edge: HotlineProcess, cti: CtiClient, tmp_path: Path
) -> None:
    phone = agent_phone(edge, tmp_path, "1001").start()
    try:
        registered = await cti.wait_event("agent.registered", agent_id="1001")
        data = registered["data"]
        assert data["user_agent"].startswith("baresip") and data["transport"] == "udp"
        assert data["contact"].startswith("sip:1001-") and f":{phone.port}" in data["contact"]
        assert 0 < data["expires"] <= 60
        assert (await cti.request("agent.login", agent="1001"))["state"] == "not_ready"  # no contact given
        assert (await cti.request("agent.ready", agent="1001"))["state"] == "available"
        ready = await call_through(edge, cti, tmp_path, "1", "1001")
        stereo = channels(Path(ready["data"]["path"]))
        rms = np.sqrt(np.mean(stereo**2, axis=0))
        assert ready["data"]["channels"] == 2 and min(rms) > 100, f"a silent channel: {rms}"
        # the call went through Kamailio to the phone's registered contact
        assert phone.wait_for(r"Call established|call established", 5)
    finally:
        phone.stop()
    gone = await cti.wait_event("agent.unregistered", agent_id="1001")
    assert gone["data"]["reason"] == "unregistered" and gone["data"]["registered"] is False
    parked = await cti.wait_event("agent.state_changed", agent_id="1001", reason="unregistered")
    assert parked["data"]["to"] == "not_ready"
    # the password is nowhere: not in events, the log, or the database (HA1 only)
    secret = PASSWORDS["1001"]
    assert secret not in json.dumps(cti.events) and secret not in edge.log_path.read_text()
    for f in edge.workdir.glob("hotline.db*"):
        assert secret.encode() not in f.read_bytes()
    row = (
        sqlite3.connect(edge.db).execute("SELECT ha1 FROM sip_subscriber WHERE username = '1001'").fetchone()
    )
    assert row is not None and len(row[0]) == 32


async def test_wrong_password_is_refused_and_the_agent_cannot_be_reached(
    edge: HotlineProcess, cti: CtiClient, tmp_path: Path
) -> None:
    probe = SipProbe(("127.0.0.1", edge.sip_port), local_ip="127.0.0.4")
    try:
        assert probe.register("1004", "not-the-password") == 403
        assert probe.register("9999", "whatever-it-is") == 403  # unknown user
        # an INVITE in an agent's name must authenticate (407), a caller's need not
        probe.send(probe.request("INVITE", "1004", to_user="hotline"))
        challenged = probe.response()
        assert challenged is not None and challenged[0] == 407, challenged
    finally:
        probe.close()
    # baresip with the wrong password: refused, never registered, so never rung
    phone = agent_phone(edge, tmp_path, "1004", password="wrong-password", local_ip="127.0.0.5").start()
    try:
        phone.wait_for(r"403 Forbidden", 10)
        assert (await cti.request("agent.login", agent="1004"))["ok"]
        assert (await cti.request("agent.ready", agent="1004"))["state"] == "available"
        parked = await cti.wait_event("agent.state_changed", agent_id="1004", reason="unregistered")
        assert parked["data"]["to"] == "not_ready"
        assert not [
            e for e in cti.events if e["event"] == "agent.registered" and e["data"]["agent_id"] == "1004"
        ]
    finally:
        phone.stop()
        await cti.request("agent.logout", agent="1004")
    # `hotline agents passwd` counts from the next REGISTER: Kamailio reads the HA1 live
    passwd = subprocess.run(
        [*PASSWD, "1004", "--config", str(edge.workdir / "config.toml")],
        input="dave-new-password\n",
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert passwd.returncode == 0, passwd.stderr
    fresh = SipProbe(("127.0.0.1", edge.sip_port), local_ip="127.0.0.6")
    try:
        assert fresh.register("1004", PASSWORDS["1004"]) == 403  # the old one no longer works
        assert fresh.register("1004", "dave-new-password") == 200
    finally:
        fresh.close()
    await cti.wait_event("agent.registered", agent_id="1004")


async def test_tls_agent_with_srtp_takes_a_call_and_the_recording_is_clear(
    edge: HotlineProcess, cti: CtiClient, tmp_path: Path
) -> None:
    cert, _key = demo_certificate()
    tone = write_tone_wav(tmp_path / "tone.wav", 120, freq=700.0)
    phone = Baresip(
        tmp_path,
        user="1002",
        registrar=f"127.0.0.1:{edge.tls_port}",
        password=PASSWORDS["1002"],
        transport="tls",
        mediaenc="srtp-mand",
        cafile=cert,
        audio=tone,
        verbose=True,
    ).start()
    try:
        registered = await cti.wait_event("agent.registered", agent_id="1002")
        assert registered["data"]["transport"] == "tls"
        assert (await cti.request("agent.login", agent="1002"))["ok"]
        assert (await cti.request("agent.ready", agent="1002"))["state"] == "available"
        ready = await call_through(edge, cti, tmp_path, "2", "1002")
    finally:
        phone.stop()
        await cti.request("agent.logout", agent="1002")
    # the agent leg's offer, as the phone received it over TLS, was SRTP only
    log = phone.log()
    offer = log[log.index("INVITE sip:1002") :]
    assert "m=audio" in offer and "RTP/SAVP" in offer.split("m=audio", 1)[1].split("\n", 1)[0], offer[:3000]
    assert "a=crypto:" in offer
    media = [e for e in edge.log_events() if e.get("event") == "leg_media"]
    assert any(e["srtp"] for e in media) and any(not e["srtp"] for e in media), media
    # and the recording is clear audio: the agent's channel carries its 700 Hz tone
    stereo = channels(Path(ready["data"]["path"]))
    agent_side = stereo[len(stereo) // 4 : len(stereo) * 3 // 4, 1]
    assert np.sqrt(np.mean(agent_side**2)) > 300
    assert abs(dominant_hz(agent_side) - 700.0) < 15.0


async def test_a_register_flood_does_not_stop_another_address_and_guessing_gets_blocked(
    edge: HotlineProcess, cti: CtiClient, tmp_path: Path
) -> None:
    flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flood.bind(("127.0.0.2", 0))
    probe = SipProbe(("127.0.0.1", edge.sip_port), local_ip="127.0.0.2")
    phone = agent_phone(edge, tmp_path, "1003")
    sent, answered = 0, 0
    try:
        deadline = time.monotonic() + 3.0  # bounded: at most 600 requests in at most 3 s
        flood.setblocking(False)
        while sent < 600 and time.monotonic() < deadline:
            flood.sendto(probe.request("REGISTER", "1003").encode(), ("127.0.0.1", edge.sip_port))
            sent += 1
            if sent == 100:
                phone.start()  # the real agent registers from 127.0.0.1 in the middle of it
            if sent % 20 == 0:
                time.sleep(0.01)
            while True:
                try:
                    flood.recv(65535)
                    answered += 1
                except BlockingIOError:
                    break
        registered = await cti.wait_event("agent.registered", timeout=15, agent_id="1003")
        assert registered["data"]["source"].startswith("127.0.0.1:")
        alert = await cti.wait_event("alert.raised", timeout=10, code="sip.flood")
        assert "127.0.0.2" in alert["data"]["message"]
        assert answered < sent / 4, f"{answered} of {sent} flood requests were answered"
    finally:
        flood.close()
        probe.close()
    # password guessing from 127.0.0.3: refused, then blocked (no answer at all), and alerted
    guesser = SipProbe(("127.0.0.1", edge.sip_port), local_ip="127.0.0.3")
    try:
        codes = [guesser.register("1003", f"guess-{i}", timeout=1.0) for i in range(5)]
        assert codes[:3] == [403, 403, 403] and codes[4] is None, codes
        blocked = await cti.wait_event("alert.raised", timeout=10, code="sip.blocked")
        assert "127.0.0.3" in blocked["data"]["message"] and blocked["data"]["limit"] == 4
        guesser.send(guesser.request("OPTIONS", "1003", to_user="hotline"))
        assert guesser.response(1.0) is None  # a blocked source hears nothing
    finally:
        guesser.close()
    assert [ln for ln in edge.log_events() if "GUARD blocked 127.0.0.3" in ln.get("line", "")]
    # the real agent still registers and refreshes fine
    assert (await cti.request("agent.login", agent="1003"))["ok"]
    assert (await cti.request("agent.ready", agent="1003"))["state"] == "available"
    edge.phone_1003 = phone  # type: ignore[attr-defined]  # the next test calls it


async def test_kamailio_killed_is_restarted_and_the_next_call_works(
    edge: HotlineProcess, cti: CtiClient, tmp_path: Path
) -> None:
    phone: Baresip = edge.phone_1003  # type: ignore[attr-defined]
    try:
        main, *_children = kamailio_pids(edge)
        os.kill(main, signal.SIGKILL)
        until(
            lambda: any(e.get("event") == "proxy_restarted" for e in edge.log_events()),
            timeout=15,
            what="Kamailio to be restarted",
        )
        assert kamailio_pids(edge)[0] != main
        await cti.wait_event("alert.raised", code="sip.proxy_down")
        await cti.wait_event("alert.cleared", code="sip.proxy_down")
        # registrations survived the restart (kept in SQLite): the agent is still reachable
        assert not [e for e in cti.events if e["event"] == "agent.unregistered"]
        ready = await call_through(edge, cti, tmp_path, "1", "1003")
        assert ready["data"]["channels"] == 2
    finally:
        phone.stop()
        await cti.request("agent.logout", agent="1003")


# ------------------------------------------------------------------ start-up and trunks
def run_until_exit(server: HotlineProcess, timeout: float = 40.0) -> subprocess.CompletedProcess[str]:
    server.sip_port = server.sip_port or free_port()
    server.cti_port, server.http_port = free_port(), free_port()
    server.tls_port, server.internal_port = free_port(), free_port()
    server.workdir.mkdir(parents=True, exist_ok=True)
    config = server.workdir / "config.toml"
    config.write_text(server.config_text())
    return subprocess.run(
        [sys.executable, "-m", "hotline", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parent.parent,
    )


def test_run_exits_2_with_reason_and_fix_when_kamailio_is_missing(tmp_path: Path) -> None:
    server = HotlineProcess(
        workdir=tmp_path / "h", agents=AGENTS[:1], proxy=True, proxy_toml='binary = "/nonexistent/kamailio"'
    )
    done = run_until_exit(server)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Kamailio is not installed" in done.stderr and "scripts/setup" in done.stderr


def test_run_exits_2_with_reason_and_fix_when_the_sip_port_is_taken(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        done = run_until_exit(
            HotlineProcess(workdir=tmp_path / "h", agents=AGENTS[:1], proxy=True, sip_port=port)
        )
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"SIP port {port}" in done.stderr and "in use" in done.stderr and "[sip] port" in done.stderr
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if str(port) in _cmdline(p)]


def _cmdline(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


async def test_click_to_dial_goes_out_through_a_trunk_that_challenges_with_401(tmp_path: Path) -> None:
    carrier = Sipp("trunk_uas_auth", tmp_path, calls=2, rtp_echo=True, timeout=60).start()
    agent_sipp = Sipp("agent_uas", tmp_path, rtp_echo=True, keys={"answer_delay": 300}).start()
    trunk = (
        '[callbacks]\ntrunk = "carrier"\n'
        f'[[trunks]]\nname = "carrier"\nhost = "127.0.0.1:{carrier.local_port}"\n'
        'username = "hotline-trunk"\npassword = "trunk-secret-9"\nrealm = "carrier.test"\nregister = true\n'
    )
    server = HotlineProcess(
        workdir=tmp_path / "h",
        agents=[{"id": "2001", "skills": ["sales"], "contact": agent_sipp.uri}],
        proxy=True,
        extra_toml=trunk,
    ).start()
    try:
        until(
            lambda: any(e.get("event") == "trunk_registered" for e in server.log_events()),
            timeout=10,
            what="the trunk to register (after a 401)",
        )
        cti = await CtiClient.session(server)
        assert (await cti.request("agent.login", agent="2001"))["ok"]
        assert (await cti.request("agent.ready", agent="2001"))["ok"]
        made = await cti.request("call.make", agent="2001", to="5550100", purpose="service")
        assert made["ok"], made
        await cti.wait_event("call.answered", timeout=20, call_id=made["call_id"])
        assert (await cti.request("call.hangup", call_id=made["call_id"]))["ok"]
        await cti.wait_event("call.ended", timeout=10, call_id=made["call_id"])
        await cti.close()
        validate_events(cti.events)
    finally:
        assert server.stop() == 0, server.log()
        agent_sipp.stop()
    assert carrier.wait(20) == 0, carrier.summary()  # both requests carried valid credentials
    messages = carrier.message_log.read_text()
    assert messages.count("Authorization: Digest") >= 2 and 'username="hotline-trunk"' in messages


def test_a_killed_hotline_leaves_no_kamailio_behind(tmp_path: Path) -> None:
    server = HotlineProcess(workdir=tmp_path / "h", agents=AGENTS[:1], proxy=True).start()
    pids = kamailio_pids(server)
    assert pids, "no managed Kamailio found"
    server.kill()  # SIGKILL: hotline cannot stop it; the kernel's parent-death signal does
    until(lambda: not [p for p in pids if Path(f"/proc/{p}").exists()], timeout=10, what="Kamailio to exit")
