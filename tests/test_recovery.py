"""Start-up recovery after a kill (hotline/recovery.py): real SQLite, real WAV files as a
killed pjsua2 recorder leaves them (RIFF and data sizes 0). The end-to-end kill -9 under
SIPp load is in test_e2e_faults.py."""

from __future__ import annotations

import json
import struct
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cti_bridge
import telephony
from calls import events as hev
from hotline import recovery
from hotline.store import CallStore

RATE = 8000


def killed_wav(path: Path, seconds: float, *, hz: float = 440.0, tail: bytes = b"\x01") -> int:
    """A mono 16-bit WAV as pjmedia's writer leaves it when the process dies: the header
    written at the start (both sizes 0), the samples after it, maybe half a sample at the end.
    Returns the number of whole samples."""
    n = int(seconds * RATE)
    samples = (8000 * np.sin(2 * np.pi * hz * np.arange(n) / RATE)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 0)
    data[40:44] = struct.pack("<I", 0)
    path.write_bytes(bytes(data) + tail)
    return n


def test_repair_wav_header_keeps_every_whole_sample(tmp_path: Path) -> None:
    path = tmp_path / "part.wav"
    n = killed_wav(path, 1.5)
    with pytest.raises(wave.Error):  # RIFF size 0: not even a WAVE to a reader
        wave.open(str(path)).close()
    fixed = telephony.repair_wav_header(path)
    assert fixed.changed and fixed.data_bytes == 2 * n
    with wave.open(str(path)) as w:
        assert (w.getnframes(), w.getframerate(), w.getnchannels()) == (n, RATE, 1)
    assert not telephony.repair_wav_header(path).changed  # a sound file is left as it is
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    with pytest.raises(ValueError, match="not a RIFF/WAVE"):
        telephony.repair_wav_header(tmp_path / "junk.wav")


def test_recording_pairs_group_parts_by_recording() -> None:
    names = ["ab12-caller.wav", "ab12-agent.wav", "ab12-2-caller.wav", "ab12-2-agent.wav", "cd-caller.wav"]
    pairs = recovery.recording_pairs(Path(n) for n in names)
    assert [(p.name, p.call_id, p.caller is not None, p.agent is not None) for p in pairs] == [
        ("ab12", "ab12", True, True),
        ("ab12-2", "ab12", True, True),
        ("cd", "cd", True, False),
    ]


def test_a_lost_call_is_closed_with_the_durations_the_outbox_knows() -> None:
    row = {
        "call_id": "c1",
        "started_at": "2026-12-04T10:00:00.000Z",
        "caller": "5551234",
        "service_code": "K7M",
    }
    t0 = recovery.epoch(row["started_at"])
    trace = recovery.CallTrace(
        answered=t0 + 1, queued=t0 + 11, queue="sales", connected=t0 + 20, agent_id="1001", last=t0 + 20
    )
    closing = recovery.close_lost_call(row, trace, t0 + 50, lambda n: "***" + n[-4:])
    e = closing.event
    assert e is not None and e.cause == "server_lost" and e.sip_code == 0
    assert (e.total_seconds, e.ivr_seconds, e.wait_seconds, e.talk_seconds) == (50, 10, 9, 30)
    assert (e.queue, e.agent_id) == ("sales", "1001")
    assert e.summary["caller"] == "***1234" and e.summary["recovered"] is True
    assert (
        closing.fields["ended_at"] == "2026-12-04T10:00:50.000Z" and closing.fields["cause"] == "server_lost"
    )
    # never before the call's own newest event, whatever the sign of life says
    late = recovery.close_lost_call(row, recovery.CallTrace(last=t0 + 70), t0 + 50, str)
    assert late.event is not None and late.event.total_seconds == 70 and late.event.ivr_seconds == 0


def test_a_durable_call_ended_completes_the_record_without_a_second_event() -> None:
    row = {"call_id": "c1", "started_at": "2026-12-04T10:00:00.000Z"}
    t0 = recovery.epoch(row["started_at"])
    data = {"cause": "caller_hangup", "queue": None, "agent_id": None, "total_seconds": 4.0}
    data |= {
        "ivr_seconds": 3.0,
        "wait_seconds": 0.0,
        "talk_seconds": 0.0,
        "summary": {"ivr_path": ["greeting"]},
    }
    closing = recovery.close_lost_call(row, recovery.CallTrace(ended=(t0 + 4, data)), t0 + 60, str)
    assert closing.event is None
    assert closing.fields["cause"] == "caller_hangup" and closing.fields["ivr_path"] == ["greeting"]
    assert closing.fields["ended_at"] == "2026-12-04T10:00:04.000Z"


async def test_recover_closes_calls_and_finishes_recordings(tmp_path: Path) -> None:
    db, recordings = tmp_path / "hotline.db", tmp_path / "recordings"
    parts = recordings / ".parts"
    parts.mkdir(parents=True)
    outbox = cti_bridge.Outbox(db, retain_seconds=86400, retain_events=10**6)
    bus = cti_bridge.EventBus(outbox=outbox)
    store = CallStore(db)
    await store.open()
    now = time.time()

    def offered(call_id: str, seconds_ago: float) -> None:
        store.insert(
            call_id, caller="5551234", started_at=cti_bridge.iso_utc(now - seconds_ago), service_code="X"
        )

    # the previous run: one call in the IVR, one talking and recorded, one whose call.ended
    # was durable but whose record update was lost, and a pair of parts that is garbage
    offered("ivr", 30)
    offered("talk", 60)
    offered("done", 40)
    offered("junk", 20)
    bus.publish(hev.CallAnswered(call_id="talk"))
    bus.publish(hev.CallAnswered(call_id="ivr"))
    bus.publish(
        hev.CallEnded(
            call_id="done",
            cause="caller_hangup",
            sip_code=200,
            queue=None,
            agent_id=None,
            total_seconds=5.0,
            ivr_seconds=5.0,
            wait_seconds=0.0,
            talk_seconds=0.0,
            summary={},
        )
    )
    samples = killed_wav(parts / "talk-caller.wav", 2.0)
    killed_wav(parts / "talk-agent.wav", 1.0, hz=880.0, tail=b"")
    (parts / "junk-caller.wav").write_bytes(b"RIFF\x00\x00")
    killed_wav(parts / "junk-agent.wav", 0.5)
    killed_wav(recordings / "ivr-voicemail.wav", 0.7)
    await store.flush()
    bus.flush()
    last_seq = bus.seq

    published: list[Any] = []

    def publish(event: object) -> dict[str, Any]:
        published.append(event)
        return bus.publish(event)

    report = await recovery.recover(
        store=store, outbox=outbox, publish=publish, recordings=recordings, mask=lambda n: n
    )
    assert (report.calls_closed, report.calls_completed) == (3, 1)
    assert (report.recordings_repaired, report.recordings_failed, report.voicemails_repaired) == (1, 1, 1)
    assert not await store.open_calls()
    ended = {e.call_id: e for e in published if isinstance(e, hev.CallEnded)}
    assert set(ended) == {"ivr", "talk", "junk"} and all(e.cause == "server_lost" for e in ended.values())
    assert ended["talk"].total_seconds >= 59 and ended["ivr"].ivr_seconds > 0
    ready = {(e.call_id, e.kind): e for e in published if isinstance(e, hev.RecordingReady)}
    talk = ready[("talk", "call")]
    assert talk.repaired and talk.channels == 2 and talk.seconds == pytest.approx(samples / RATE)
    with wave.open(talk.path) as w:
        assert (w.getnchannels(), w.getnframes()) == (2, samples)
    sidecar = json.loads(Path(talk.sidecar).read_text())
    assert sidecar["repaired"] is True and sidecar["sha256"] == talk.sha256 == telephony.sha256_file(
        Path(talk.path)
    )
    voicemail = ready[("ivr", "voicemail")]
    assert voicemail.repaired and voicemail.seconds == pytest.approx(0.7)
    failed = [e for e in published if isinstance(e, hev.RecordingFailed)]
    assert [(e.call_id, e.kind) for e in failed] == [("junk", "call")] and "repair failed" in failed[0].error
    assert sorted(p.name for p in parts.iterdir()) == ["unrecoverable"]
    assert sorted(p.name for p in (parts / "unrecoverable").iterdir()) == [
        "junk-agent.wav",
        "junk-caller.wav",
    ]
    done = await store.get("done")
    assert done is not None and done["cause"] == "caller_hangup" and done["total_seconds"] == 5.0
    talk_row = await store.get("talk")
    assert talk_row is not None and talk_row["recording_sha256"] == talk.sha256
    # seq stays contiguous across the recovery, and a second start has nothing left to do
    bus.flush()
    assert [s for s, _, _ in outbox.read_after(0, 100)] == list(range(1, bus.seq + 1))
    assert bus.seq == last_seq + len(published)
    again = await recovery.recover(
        store=store, outbox=outbox, publish=publish, recordings=recordings, mask=lambda n: n
    )
    assert again == recovery.Report()
    await store.close()
    outbox.close()
