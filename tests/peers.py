"""Real SIP peers for end-to-end tests: SIPp scenarios and a headless baresip.

Everything binds to and talks to 127.0.0.1 only.

* :class:`Sipp` runs one of the scenarios in ``tests/sip/`` (callers and
  agent phones, see ``tests/sip/README.md``) and reports its exit code
  (0: every call succeeded, 1: at least one failed).
* :class:`Baresip` runs baresip as an auto-answering softphone that plays a
  WAV file and records what it hears.
* Helpers pick free ports, name the RFC 4733 DTMF pcaps, write WAV/pcap
  media and measure audio.

Needs the Debian packages ``sip-tester`` (sipp), ``baresip``, ``sox`` and
``espeak-ng`` (the last two for :func:`make_speech_wav`, which
:class:`Baresip` uses unless given a WAV). SIPp replays pcaps through a raw
socket, so the DTMF-by-RTP scenarios need root or CAP_NET_RAW.
"""

from __future__ import annotations

import array
import atexit
import contextlib
import math
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

LOCALHOST = "127.0.0.1"
SIP_DIR = Path(__file__).resolve().parent / "sip"
SIPP_PCAP_DIR = Path("/usr/share/sip-tester")
SIPP_BIN = "sipp"
BARESIP_BIN = "baresip"
BARESIP_MODULE_DIR = Path("/usr/lib/baresip/modules")

#: Values for every ``-key`` used by the scenarios in tests/sip/. SIPp refuses
#: to load a scenario that uses a key it was not given, so :class:`Sipp`
#: always passes all of them; the caller's ``keys`` override these.
DEFAULT_KEYS = {
    "caller": "caller",  # caller_*: From/Contact user
    "dtmf_delay": "2000",  # caller_*: ms from the ACK to the key press
    "dtmf_pcap": str(SIPP_PCAP_DIR / "dtmf_2833_1.pcap"),  # caller_dtmf, caller_hangup_early
    "dtmf_ms": "300",  # caller_dtmf, caller_hangup_early: ms the audio pauses for dtmf_pcap
    "digit": "1",  # caller_info_dtmf: Signal= of the INFO
    "talk_ms": "8000",  # caller_dtmf, caller_info_dtmf: ms from the key press to the BYE
    "hangup_ms": "1000",  # caller_hangup_early: ms from the key press; agent_hangup: from the ACK
    "answer_delay": "1000",  # agent_uas, agent_hangup: ms of ringing before the 200 OK
}

DTMF_DURATION_MS = 160  # key-down time of each digit in write_dtmf_pcap
DTMF_GAP_MS = 240  # silence after each digit in write_dtmf_pcap

_DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
_DTMF_PCAP_NAMES = {**{str(d): str(d) for d in range(10)}, "*": "star", "#": "pound"}


# --------------------------------------------------------------------------
# ports


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
        return True


def _free_port(kinds: tuple[int, ...], span: int) -> int:
    """A port p on 127.0.0.1 such that p .. p+span-1 are free for all ``kinds``."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kinds[0]) as sock:
            sock.bind((LOCALHOST, 0))
            base = sock.getsockname()[1]
        if base + span > 65535:
            continue
        if all(_bindable(p, kind) for p in range(base, base + span) for kind in kinds):
            return base
    raise RuntimeError(f"no run of {span} free port(s) found on {LOCALHOST}")


def free_udp_port(span: int = 1) -> int:
    """A free UDP port on 127.0.0.1 (the first of ``span`` consecutive free ones)."""
    return _free_port((socket.SOCK_DGRAM,), span)


def free_tcp_port() -> int:
    """A free TCP port on 127.0.0.1."""
    return _free_port((socket.SOCK_STREAM,), 1)


def free_sip_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (a SIP listener uses both)."""
    return _free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM), 1)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def port_is_bound(port: int, proto: str = "udp", pid: int | None = None) -> bool:
    """Whether ``port`` is bound (UDP) or listening (TCP), per /proc/net;
    with ``pid``, only sockets of that process count."""
    inodes = _socket_inodes(pid) if pid is not None else None
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if int(local.rsplit(":", 1)[1], 16) != port or (proto == "tcp" and state != "0A"):
                continue
            if inodes is None or inode in inodes:
                return True
    return False


def wait_port_bound(port: int, proto: str = "udp", timeout: float = 10.0, pid: int | None = None) -> None:
    """Wait until :func:`port_is_bound`; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while not port_is_bound(port, proto, pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing bound {proto} port {port} within {timeout}s")
        time.sleep(0.05)


# --------------------------------------------------------------------------
# media


def dtmf_pcap(digit: str) -> Path:
    """The pcap shipped with sip-tester holding one RFC 4733 key press.

    ``/usr/share/sip-tester/dtmf_2833_<d>.pcap`` (``star``/``pound`` for * and
    #): 10 packets, payload type 101, about 150 ms. Pass it to the caller
    scenarios as ``keys={"dtmf_pcap": str(dtmf_pcap("2"))}``.
    """
    return SIPP_PCAP_DIR / f"dtmf_2833_{_DTMF_PCAP_NAMES[digit]}.pcap"


def write_dtmf_pcap(
    path: Path,
    digits: str,
    *,
    duration_ms: int = DTMF_DURATION_MS,
    gap_ms: int = DTMF_GAP_MS,
    payload_type: int = 101,
) -> Path:
    """Write a pcap of RFC 4733 telephone-events for ``digits`` (0-9 * # A-D).

    One event per digit: a packet every 20 ms while the key is down, the
    end-of-event packet three times, then ``gap_ms`` of nothing. SIPp
    replays it with the same timing, so it lasts about
    ``len(digits) * (duration_ms + gap_ms)`` ms; pass that as the
    ``dtmf_ms`` key (or use :func:`dtmf_keys`).
    """
    ssrc, seq, rtp_ts, t_us = 0x484F544C, 1000, 16000, 0
    packets = []
    for digit in digits:
        event = _DTMF_EVENTS[digit.upper()]
        steps = max(1, duration_ms // 20)
        for i in range(1, steps + 1):
            end = i == steps
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, i * 160)
            header = struct.pack("!BBHII", 0x80, (0x80 if i == 1 else 0) | payload_type, seq, rtp_ts, ssrc)
            for _ in range(3 if end else 1):  # the end packet is sent three times
                packets.append((t_us, header + payload))
            seq += 1
            t_us += 20_000
        rtp_ts += (steps * 20 + gap_ms) * 8
        t_us += gap_ms * 1000
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # LINKTYPE_ETHERNET
        for t, rtp in packets:
            udp = struct.pack("!HHHH", 5000, 5000, 8 + len(rtp), 0) + rtp
            loopback = socket.inet_aton(LOCALHOST)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, loopback, loopback)
            frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
            out.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(frame), len(frame)))
            out.write(frame)
    return path


def ulaw_encode(pcm: Any) -> bytes:
    """G.711 mu-law of int16 samples (numpy), as in the ITU reference encoder."""
    import numpy as np

    x = np.asarray(pcm, dtype=np.int32)
    sign = (x < 0).astype(np.int32)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~((sign << 7) | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def write_audio_pcap(path: Path, pcm8k: Any) -> Path:
    """Write 8 kHz int16 audio as a pcap of PCMU RTP packets (20 ms each, in real time), which
    SIPp's ``play_pcap_audio`` sends with the same timing. The caller's whole timeline (silence
    included) goes in one pcap, so what the server hears and when is fixed by the test."""
    data = ulaw_encode(pcm8k)
    ssrc, seq, rtp_ts = 0x53504B52, 2000, 8000
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # LINKTYPE_ETHERNET
        loopback = socket.inet_aton(LOCALHOST)
        for i in range(0, len(data) - 159, 160):
            header = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | 0, seq & 0xFFFF, rtp_ts, ssrc)
            rtp = header + data[i : i + 160]
            udp = struct.pack("!HHHH", 5000, 5000, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, loopback, loopback)
            frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
            t = (i // 160) * 20_000
            out.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(frame), len(frame)))
            out.write(frame)
            seq += 1
            rtp_ts += 160
    return path


def write_call_pcap(
    path: Path,
    pcm8k: Any,
    keys: list[tuple[float, str]] = (),  # type: ignore[assignment]
    *,
    duration_ms: int = DTMF_DURATION_MS,
    gap_ms: int = DTMF_GAP_MS,
    payload_type: int = 101,
) -> Path:
    """A caller's whole timeline as one RTP stream: 8 kHz int16 audio as PCMU, with RFC 4733
    key presses laid in (``keys``: (start second, digits)). As a phone does it: one SSRC, the
    audio stops while a key is down, the event keeps its start timestamp, its end packet goes
    three times. SIPp's ``play_pcap_audio`` (caller_speech.xml) sends it in real time."""
    data = ulaw_encode(pcm8k)
    frames = len(data) // 160
    events: dict[int, tuple[int, int, int, int]] = {}  # frame -> (event, step, steps, start frame)
    for start, digits in keys:
        frame = round(start * 50)
        for digit in digits:
            steps = max(1, duration_ms // 20)
            for i in range(1, steps + 1):
                events[frame + i - 1] = (_DTMF_EVENTS[digit.upper()], i, steps, frame)
            frame += steps + gap_ms // 20
    ssrc, seq = 0x43414C4C, 3000
    loopback = socket.inet_aton(LOCALHOST)
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # LINKTYPE_ETHERNET

        def packet(t_us: int, rtp: bytes) -> None:
            udp = struct.pack("!HHHH", 5000, 5000, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, loopback, loopback)
            frame_bytes = b"\x00" * 12 + b"\x08\x00" + ip + udp
            out.write(
                struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame_bytes), len(frame_bytes))
            )
            out.write(frame_bytes)

        for n in range(frames):
            t_us, ts = n * 20_000, 8000 + n * 160
            if n in events:
                event, step, steps, first = events[n]
                end = step == steps
                body = struct.pack("!BBH", event, (0x80 if end else 0) | 10, step * 160)
                marker = 0x80 if step == 1 else 0
                header = struct.pack(
                    "!BBHII", 0x80, marker | payload_type, seq & 0xFFFF, 8000 + first * 160, ssrc
                )
                for _ in range(3 if end else 1):
                    packet(t_us, header + body)
            else:
                header = struct.pack("!BBHII", 0x80, 0x80 if n == 0 else 0, seq & 0xFFFF, ts, ssrc)
                packet(t_us, header + data[n * 160 : (n + 1) * 160])
            seq += 1
    return path


def tone(seconds: float, freq: float = 600.0, dbfs: float = -12.0) -> Any:
    """A sine tone at 8 kHz, int16 (numpy)."""
    import numpy as np

    n = np.arange(int(seconds * 8000))
    return (10 ** (dbfs / 20) * 32767 * np.sin(2 * np.pi * freq * n / 8000)).astype("<i2")


def korean_speech(text: str, *, wpm: int = 175) -> Any:
    """espeak-ng Korean for ``text`` at 8 kHz int16 (numpy), made at test time."""
    import io

    import numpy as np
    import soxr

    wav = subprocess.run(
        ["espeak-ng", "-v", "ko", "-s", str(wpm), "--stdout", text], check=True, capture_output=True
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return soxr.resample(x, rate, 8000).astype("<i2")


def english_speech(text: str, *, gain_db: float = 0.0, tempo: float = 1.0, pitch_cents: int = 0) -> Any:
    """Festival's HTS voice (cmu_us_slt) for ``text`` at 8 kHz int16 (numpy), made at test time;
    optionally louder (dB), faster (tempo factor) and higher (cents) with sox. Far more
    natural than espeak-ng for recognizers (platform notes)."""
    import io

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run(
            ["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", str(raw)],
            input=text.encode(),
            check=True,
            capture_output=True,
        )
        effects = ["gain", str(gain_db)] if gain_db else []
        effects += ["tempo", str(tempo)] if tempo != 1.0 else []
        effects += ["pitch", str(pitch_cents)] if pitch_cents else []
        subprocess.run(["sox", str(raw), "-r", "8000", "-b", "16", "-c", "1", str(out), *effects], check=True)
        with wave.open(io.BytesIO(out.read_bytes())) as w:
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


def voiced_end(pcm: Any, threshold_db: float = -40.0) -> float:
    """Seconds from the start of ``pcm`` (8 kHz int16) to the end of its last 20 ms frame at or
    above ``threshold_db`` (where the last word ends)."""
    import numpy as np

    n = len(pcm) // 160
    frames = np.asarray(pcm[: n * 160], dtype=np.float64).reshape(n, 160) / 32768.0
    level = 10 * np.log10(np.maximum(np.mean(frames * frames, axis=1), 1e-12))
    loud = np.nonzero(level >= threshold_db)[0]
    return float((loud[-1] + 1) * 0.02) if loud.size else 0.0


def speech_timeline(parts: list[tuple[float, Any]], total: float) -> Any:
    """``total`` seconds of silence with each (start second, int16 audio) part laid in."""
    import numpy as np

    out = np.zeros(int(total * 8000), dtype="<i2")
    for start, pcm in parts:
        a = int(start * 8000)
        out[a : a + len(pcm)] = pcm[: len(out) - a]
    return out


def dtmf_keys(digits: str, workdir: Path) -> dict[str, str]:
    """The ``dtmf_pcap``/``dtmf_ms`` keys for caller_dtmf/caller_hangup_early.

    One digit: sip-tester's pcap (:func:`dtmf_pcap`). Several: a pcap written
    into ``workdir`` by :func:`write_dtmf_pcap`.
    """
    if len(digits) == 1:
        return {"dtmf_pcap": str(dtmf_pcap(digits)), "dtmf_ms": DEFAULT_KEYS["dtmf_ms"]}
    Path(workdir).mkdir(parents=True, exist_ok=True)
    safe = digits.replace("*", "s").replace("#", "p")
    path = write_dtmf_pcap(Path(workdir) / f"dtmf_{safe}.pcap", digits)
    return {"dtmf_pcap": str(path), "dtmf_ms": str(len(digits) * (DTMF_DURATION_MS + DTMF_GAP_MS))}


def write_tone_wav(
    path: Path, seconds: float, freq: float = 440.0, rate: int = 8000, amplitude: float = 0.3
) -> Path:
    """Write a mono 16-bit sine-tone WAV (stdlib only)."""
    samples = array.array(
        "h",
        (
            int(amplitude * 32767 * math.sin(2 * math.pi * freq * n / rate))
            for n in range(int(seconds * rate))
        ),
    )
    if sys.byteorder == "big":
        samples.byteswap()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def make_speech_wav(path: Path, text: str, seconds: float, rate: int = 8000) -> Path:
    """Write ``text`` spoken by espeak-ng, repeated to last at least ``seconds``,
    as a mono 16-bit WAV at ``rate`` Hz (the format baresip's aufile wants)."""
    raw = Path(f"{path}.espeak.wav")
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-w", str(raw), text],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with wave.open(str(raw), "rb") as spoken:
        length = spoken.getnframes() / spoken.getframerate()
    repeats = max(0, math.ceil(seconds / length) - 1)
    sox_format = ["-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer"]
    subprocess.run(["sox", str(raw), *sox_format, str(path), "repeat", str(repeats)], check=True)
    raw.unlink()
    return path


def wav_rms(path: Path, start: float = 0.0, seconds: float | None = None) -> float:
    """RMS level of a 16-bit WAV (first channel), from 0.0 (silence) to 1.0."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit WAV files are supported")
        rate, channels = wav.getframerate(), wav.getnchannels()
        wav.setpos(min(wav.getnframes(), int(start * rate)))
        frames = wav.readframes(wav.getnframes() if seconds is None else int(seconds * rate))
    samples = array.array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()
    samples = samples[::channels]
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768


def tone_level(path: Path, freq: float, start: float = 0.0, seconds: float | None = None) -> float:
    """The amplitude (0..1) of one frequency in a 16-bit WAV (first channel; the right one of a
    stereo file with :func:`tone_level_right`): the median over 40 ms frames of a single-bin DFT,
    so a tone at that frequency stands out from speech and from tones at other frequencies."""
    return _tone_level(path, freq, start, seconds, 0)


def tone_level_right(path: Path, freq: float, start: float = 0.0, seconds: float | None = None) -> float:
    return _tone_level(path, freq, start, seconds, 1)


def _tone_level(path: Path, freq: float, start: float, seconds: float | None, channel: int) -> float:
    import numpy as np

    with wave.open(str(path), "rb") as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        wav.setpos(min(wav.getnframes(), int(max(0.0, start) * rate)))
        frames = wav.readframes(wav.getnframes() if seconds is None else int(seconds * rate))
    x = np.frombuffer(frames, dtype="<i2").astype(np.float64)[channel::channels] / 32768.0
    size = int(0.04 * rate)  # 40 ms frames: a jitter buffer's dropped or repeated frame breaks no more
    count = len(x) // size
    if count == 0:
        return 0.0
    frames2 = x[: count * size].reshape(count, size)
    probe = np.exp(-2j * np.pi * freq * np.arange(size) / rate)
    return float(np.median(2.0 * np.abs(frames2 @ probe) / size))


# --------------------------------------------------------------------------
# processes


def _stop_process(proc: subprocess.Popen, grace: float) -> int:
    """Give ``proc`` ``grace`` s to exit, then SIGTERM it, then SIGKILL it;
    return its exit code."""
    for escalate in (proc.terminate, proc.kill):
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            escalate()
    return proc.wait()


_started: list[subprocess.Popen] = []


@atexit.register
def _stop_leftovers() -> None:
    """Stop peers a test left running (e.g. one that failed before its
    stop()), so none outlives the test session."""
    for proc in _started:
        if proc.poll() is None:
            proc.terminate()
            _stop_process(proc, 2)


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return text if len(text) <= limit else "...\n" + text[-limit:]


class Sipp:
    """A SIPp process running one scenario of tests/sip/.

    ``scenario`` is a scenario name (``"caller_dtmf"``) or a path to an XML
    file. UAC scenarios need ``remote`` (``"127.0.0.1:5060"``); UAS scenarios
    (``agent_*``) leave it out and listen on :attr:`local_port` (the server
    dials :attr:`uri`). :meth:`start` returns once SIPp has bound its SIP
    port. SIPp runs with tests/sip/ as its working directory (rtp_stream
    resolves caller_audio.ulaw against it), without a TTY and without stdin;
    its logs go to ``workdir`` as
    ``<name>_{stdout,errors,messages,screen,calldebug}.log`` and
    ``<name>_stat.csv``. ``timeout`` (s) is handed to SIPp (-timeout with
    -timeout_error), so a stuck scenario ends by itself with exit code 255.
    ``keys`` override :data:`DEFAULT_KEYS`.

    Usage::

        with Sipp("agent_uas", tmp_path, rtp_echo=True) as agent:  # starts it
            caller = Sipp("caller_dtmf", tmp_path, remote=f"127.0.0.1:{port}",
                          service="hotline", keys={"talk_ms": 3000}).start()
            assert caller.wait(30) == 0, caller.summary()
            assert agent.wait(10) == 0, agent.summary()
    """

    def __init__(
        self,
        scenario: str | Path,
        workdir: Path,
        *,
        remote: str | None = None,
        keys: dict[str, object] | None = None,
        local_port: int | None = None,
        media_port: int | None = None,
        transport: str = "udp",
        service: str | None = None,
        calls: int = 1,
        rate: float = 10.0,
        rtp_echo: bool = False,
        timeout: float = 60,
        name: str | None = None,
        local_host: str = LOCALHOST,
    ):
        path = Path(scenario)
        self.scenario = path if path.suffix == ".xml" else SIP_DIR / f"{scenario}.xml"
        if not self.scenario.is_file():
            raise FileNotFoundError(self.scenario)
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be 'udp' or 'tcp', not {transport!r}")
        self.workdir = Path(workdir)
        self.transport = transport
        self.local_host = local_host  # 127.0.0.2, ...: another source address on loopback
        self.local_port = local_port or (free_udp_port() if transport == "udp" else free_sip_port())
        # SIPp binds the media port and media port + 2 (video echo).
        self.media_port = media_port or free_udp_port(span=3)
        self.name = name or f"{self.scenario.stem}_{self.local_port}"
        self.keys = {**DEFAULT_KEYS, **{k: str(v) for k, v in (keys or {}).items()}}
        self.returncode: int | None = None
        self.stdout_log = self.workdir / f"{self.name}_stdout.log"
        self.error_log = self.workdir / f"{self.name}_errors.log"
        self.message_log = self.workdir / f"{self.name}_messages.log"
        self.screen_log = self.workdir / f"{self.name}_screen.log"
        self.calldebug_log = self.workdir / f"{self.name}_calldebug.log"
        self.stat_csv = self.workdir / f"{self.name}_stat.csv"
        args = [SIPP_BIN, "-sf", str(self.scenario)] + ([remote] if remote else [])
        args += ["-i", local_host, "-mi", local_host, "-p", str(self.local_port), "-mp", str(self.media_port)]
        args += ["-t", "u1" if transport == "udp" else "t1", "-m", str(calls), "-r", str(rate)]
        args += ["-nostdin", "-aa", "-timeout", str(int(timeout)), "-timeout_error"]
        args += ["-trace_err", "-error_file", str(self.error_log)]
        args += ["-trace_msg", "-message_file", str(self.message_log)]
        args += ["-trace_screen", "-screen_file", str(self.screen_log)]
        args += ["-trace_calldebug", "-calldebug_file", str(self.calldebug_log)]
        args += ["-trace_stat", "-stf", str(self.stat_csv)]
        if service:
            args += ["-s", service]
        if rtp_echo:
            args.append("-rtp_echo")
        for key, value in self.keys.items():
            args += ["-key", key, value]
        self.args = args
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        """The SIP URI that reaches this SIPp (for UAS scenarios)."""
        return f"sip:agent@{self.local_host}:{self.local_port};transport={self.transport}"

    def start(self, ready_timeout: float = 10.0) -> Sipp:
        """Start SIPp and wait until it has bound its SIP port."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.stdout_log, "wb") as out:
            self.proc = subprocess.Popen(
                self.args, cwd=SIP_DIR, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        _started.append(self.proc)
        deadline = time.monotonic() + ready_timeout
        while not port_is_bound(self.local_port, self.transport, self.proc.pid):
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise RuntimeError(f"sipp exited at start-up\n{self.summary()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"sipp did not bind port {self.local_port}\n{self.summary()}")
            time.sleep(0.05)
        return self

    def wait(self, timeout: float | None = None) -> int:
        """Wait for SIPp to exit and return its exit code.

        0: all calls succeeded; 1: at least one failed; 255: fatal error or
        the -timeout was reached; 97/99: see ``sipp -h``. If it still runs
        after ``timeout`` s it is stopped and TimeoutError (with
        :meth:`summary`) is raised.
        """
        if self.proc is None:
            raise RuntimeError("sipp was not started")
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise TimeoutError(f"sipp still running after {timeout}s\n{self.summary()}") from None
        return self.returncode

    def stop(self) -> int | None:
        """End SIPp if it still runs (SIGTERM, then SIGKILL) and return its
        exit code (0 after a SIGTERM, whatever the calls did: check
        :meth:`stats`); None if it was never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            self.returncode = _stop_process(self.proc, 5)
        else:
            self.returncode = self.proc.returncode
        return self.returncode

    def stats(self) -> dict[str, str]:
        """The last row of the -trace_stat CSV (e.g. ``SuccessfulCall(C)``,
        ``FailedCall(C)``), or {} if SIPp wrote none."""
        try:
            rows = [line.split(";") for line in self.stat_csv.read_text().splitlines() if line]
        except FileNotFoundError:
            return {}
        return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) > 1 else {}

    def errors(self) -> list[str]:
        """Entries of SIPp's error log, minus the routine "receive timeout ...
        jumping to label" lines the scenarios' 100 ms timing ticks produce."""
        text = _tail(self.error_log, 10**7)
        entries = re.split(r"(?=\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d+\t)", text)
        return [
            e.strip()
            for e in entries
            if e.strip() and "jumping to label" not in e and "The following events occurred" not in e
        ]

    def summary(self) -> str:
        """Command line, exit code, final screen, errors and call debug info,
        for assertion messages."""
        parts = [
            f"sipp {self.scenario.name} (exit code {self.returncode})",
            "command: " + " ".join(self.args),
            f"logs in {self.workdir} ({self.name}_*)",
            "--- screen ---",
            _tail(self.screen_log, 6000),
            "--- errors ---",
            "\n".join(self.errors()[-20:]),
            "--- calldebug ---",
            _tail(self.calldebug_log),
            "--- stdout ---",
            _tail(self.stdout_log, 1500),
        ]
        return "\n".join(parts)

    def __enter__(self) -> Sipp:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Baresip:
    """baresip 1.0.0 as a headless, auto-answering agent softphone.

    A config directory ``<workdir>/<name>/`` holds ``config`` and
    ``accounts`` (``<sip:USER@127.0.0.1>;regint=0;answermode=auto``: no
    registration). SIP listens on 127.0.0.1:PORT over UDP and TCP; RTP uses
    ``rtp_ports`` on 127.0.0.1. Only the modules needed are loaded: stdio
    (commands on stdin), menu (auto answer, /hangup, /quit, REFER
    handling), account, g711 (PCMU/PCMA only), aufile (plays ``audio``),
    aubridge (a null audio player) and sndfile (records every call to
    ``<confdir>/rec/dump-<time>-dec.wav`` = heard and ``...-enc.wav`` = sent).

    baresip 1.0.0 hangs up a call when aufile reaches the end of the WAV, so
    ``audio`` must outlast the longest call (by default 120 s of espeak-ng
    speech is made); a WAV of N seconds gives an agent that hangs up after
    about N seconds. aufile needs 8000 Hz mono 16-bit for PCMU. Recordings
    are named after the second their call started: two calls to one instance
    within a second share (and garble) one pair of files. In-dialog requests
    must go to baresip's Contact, whose user part is ``USER-0x<address>``.
    """

    READY_LINE = "baresip is ready."

    def __init__(
        self,
        workdir: Path,
        *,
        user: str = "agent1",
        port: int | None = None,
        audio: Path | None = None,
        rtp_ports: tuple[int, int] | None = None,
        answermode: str = "auto",
        name: str | None = None,
        registrar: str | None = None,
        password: str = "",
        transport: str = "udp",
        mediaenc: str = "",
        cafile: Path | None = None,
        regint: int = 60,
        local_ip: str = LOCALHOST,
        verbose: bool = False,
    ):
        """``registrar`` ("127.0.0.1:5060") makes it register there as ``user`` with
        ``password`` over ``transport`` (udp, tcp, tls; ``cafile`` trusts the server's
        certificate) every ``regint`` s; ``mediaenc`` ("srtp", "srtp-mand") encrypts media;
        ``local_ip`` is the address it binds (127.0.0.2 ... for a second source address);
        ``verbose`` logs every SIP message (baresip -s)."""
        self.user = user
        self.registrar = registrar
        self.password = password
        self.transport = transport
        self.mediaenc = mediaenc
        self.cafile = cafile
        self.regint = regint
        self.local_ip = local_ip
        self.verbose = verbose
        self.port = port or free_sip_port()
        self.name = name or f"baresip_{user}_{self.port}"
        self.confdir = Path(workdir) / self.name
        self.audio = Path(audio) if audio else self.confdir / "play.wav"
        if rtp_ports is None:
            first = free_udp_port(span=20)
            rtp_ports = (first, first + 19)
        self.rtp_ports = rtp_ports
        self.answermode = answermode
        self.record_dir = self.confdir / "rec"
        self.log_path = self.confdir / "baresip.log"
        self.proc: subprocess.Popen | None = None

    @property
    def contact(self) -> str:
        """The URI the server should dial to reach this agent."""
        return f"sip:{self.user}@{LOCALHOST}:{self.port}"

    def _config(self) -> str:
        lo, hi = self.rtp_ports
        return "\n".join(
            [
                "poll_method\t\tepoll",
                f"sip_listen\t\t{self.local_ip}:{self.port}",
                f"net_interface\t\t{self.local_ip}",
                *([f"sip_cafile\t\t{self.cafile}"] if self.cafile else []),
                *(["module\t\t\tsrtp.so"] if self.mediaenc else []),
                "call_local_timeout\t120",
                "call_max_calls\t\t4",
                "audio_player\t\taubridge,nil",
                f"audio_source\t\taufile,{self.audio}",
                "audio_alert\t\taubridge,nil",
                "ausrc_srate\t\t8000",
                "auplay_srate\t\t8000",
                "ausrc_channels\t\t1",
                "auplay_channels\t\t1",
                "audio_level\t\tno",
                f"rtp_ports\t\t{lo}-{hi}",
                "rtp_stats\t\tno",
                "jitter_buffer_delay\t5-10",
                f"module_path\t\t{BARESIP_MODULE_DIR}",
                "module\t\t\tstdio.so",
                "module\t\t\tg711.so",
                "module\t\t\taufile.so",
                "module\t\t\taubridge.so",
                "module\t\t\tsndfile.so",
                "module_tmp\t\taccount.so",
                "module_app\t\tmenu.so",
                "statmode_default\toff",
                "ringback_disabled\tyes",
                f"snd_path\t\t{self.record_dir}",
                "",
            ]
        )

    def start(self, timeout: float = 10.0) -> Baresip:
        """Write the config, start baresip and wait until it is ready and
        its SIP port is bound."""
        self.record_dir.mkdir(parents=True, exist_ok=True)
        if not self.audio.exists():
            make_speech_wav(self.audio, f"This is {self.user} speaking. How can I help you?", 120)
        (self.confdir / "config").write_text(self._config())
        (self.confdir / "accounts").write_text(self.account_line() + "\n")
        command = ["stdbuf", "-oL", BARESIP_BIN, "-s"] if self.verbose else [BARESIP_BIN]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*command, "-f", str(self.confdir)],
                cwd=self.confdir,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _started.append(self.proc)
        try:
            self.wait_for(re.escape(self.READY_LINE), timeout)
            if self.local_ip == LOCALHOST:  # port_is_bound looks at the port only
                wait_port_bound(self.port, "udp", timeout, self.proc.pid)
                wait_port_bound(self.port, "tcp", timeout, self.proc.pid)
        except (TimeoutError, RuntimeError):
            self.stop()
            raise
        return self

    def account_line(self) -> str:
        """The ``accounts`` file line: a registering account, or a bare listening one."""
        extra = f";mediaenc={self.mediaenc}" if self.mediaenc else ""
        if self.registrar is None:
            return (
                f"<sip:{self.user}@{LOCALHOST}>;regint=0;answermode={self.answermode};"
                f"audio_codecs=PCMU,PCMA{extra}"
            )
        return (
            f"<sip:{self.user}@{self.registrar};transport={self.transport}>;auth_pass={self.password};"
            f"regint={self.regint};answermode={self.answermode};audio_codecs=PCMU,PCMA{extra}"
        )

    def log(self) -> str:
        """Everything baresip printed so far."""
        return _tail(self.log_path, 10**7)

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match:
        """Wait until the log matches the regular expression ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"baresip exited ({self.proc.returncode}) before logging "
                    f"{pattern!r}\n{_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"baresip did not log {pattern!r} within {timeout}s\n{_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def command(self, line: str) -> None:
        """Send a menu command such as ``/hangup`` or ``/dial sip:...``."""
        if self.proc is None or self.proc.stdin is None:
            raise RuntimeError("baresip was not started")
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def received_audio(self) -> list[Path]:
        """WAV files of the audio heard, one per call, oldest first."""
        return sorted(self.record_dir.glob("dump-*-dec.wav"))

    def sent_audio(self) -> list[Path]:
        """WAV files of the audio sent, one per call, oldest first."""
        return sorted(self.record_dir.glob("dump-*-enc.wav"))

    def stop(self, timeout: float = 5.0) -> int | None:
        """Quit baresip (``/quit``, then SIGTERM, then SIGKILL); return its exit code.

        Active calls are hung up (BYE) and the recordings are closed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):  # baresip may be exiting already
                self.command("/quit")
            _stop_process(self.proc, timeout)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        return self.proc.returncode

    def __enter__(self) -> Baresip:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def dial(server: Any, scenario: str, workdir: Path, **kw: Any) -> Sipp:
    """A SIPp caller (not started yet) running ``scenario`` against ``server`` (a
    HotlineProcess), calling its service number."""
    return Sipp(scenario, workdir, remote=f"{LOCALHOST}:{server.sip_port}", service="hotline", **kw)


class SipProbe:
    """Hand-made SIP requests over UDP from ``local_ip`` (127.0.0.x): a REGISTER or INVITE,
    answered with digest credentials when challenged (MD5, no qop, as Kamailio's
    ``auth_challenge(realm, "0")`` asks), for checking what an edge refuses."""

    def __init__(self, remote: tuple[str, int], local_ip: str = LOCALHOST) -> None:
        self.remote = remote
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((local_ip, 0))
        self.local = self.sock.getsockname()
        self._n = 0

    def close(self) -> None:
        self.sock.close()

    def request(
        self,
        method: str,
        user: str,
        *,
        to_user: str | None = None,
        authorization: str = "",
        call_id: str | None = None,
        cseq: int = 1,
        body: str = "",
    ) -> str:
        """The request's text (From user ``user``; R-URI/To ``to_user``, default ``user``)."""
        self._n += 1
        host = f"{self.remote[0]}:{self.remote[1]}"
        ip, port = self.local
        target = to_user or user
        ruri = f"sip:{host}" if method == "REGISTER" else f"sip:{target}@{host}"
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK-probe{self._n}-{time.monotonic_ns()};rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{host}>;tag=probe{self._n}",
            f"To: <sip:{target}@{host}>",
            f"Call-ID: {call_id or f'probe-{self._n}-{time.monotonic_ns()}'}@{ip}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{user}@{ip}:{port}>",
        ]
        if method == "REGISTER":
            lines.append("Expires: 60")
        if authorization:
            name = "Authorization" if method == "REGISTER" else "Proxy-Authorization"
            lines.append(f"{name}: {authorization}")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def send(self, text: str) -> None:
        self.sock.sendto(text.encode(), self.remote)

    def response(self, timeout: float = 2.0) -> tuple[int, str] | None:
        """The next final response (status, text); None if nothing came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535).decode(errors="replace")
            except TimeoutError:
                return None
            status = int(data.split(" ", 2)[1]) if data.startswith("SIP/2.0 ") else 0
            if status >= 200:
                return status, data
        return None

    @staticmethod
    def digest(challenge: str, method: str, uri: str, user: str, password: str) -> str:
        """An Authorization value answering the WWW-/Proxy-Authenticate in ``challenge``."""
        import hashlib

        starts = ("www-authenticate", "proxy-authenticate")
        header = next(line for line in challenge.split("\r\n") if line.lower().startswith(starts))
        fields = dict(re.findall(r'(\w+)="([^"]*)"', header))
        realm, nonce = fields["realm"], fields["nonce"]

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        answer = md5(f"{md5(f'{user}:{realm}:{password}')}:{nonce}:{md5(f'{method}:{uri}')}")
        return (
            f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{answer}", algorithm=MD5'
        )

    def register(self, user: str, password: str, timeout: float = 2.0) -> int | None:
        """REGISTER, answer the challenge; the final status (None: no answer)."""
        call_id = f"reg-{time.monotonic_ns()}"
        self.send(self.request("REGISTER", user, call_id=call_id))
        first = self.response(timeout)
        if first is None or first[0] != 401:
            return None if first is None else first[0]
        uri = f"sip:{self.remote[0]}:{self.remote[1]}"
        auth = self.digest(first[1], "REGISTER", uri, user, password)
        self.send(self.request("REGISTER", user, call_id=call_id, cseq=2, authorization=auth))
        final = self.response(timeout)
        return None if final is None else final[0]
