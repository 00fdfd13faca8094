"""WAV helpers that never touch pjsua2: durations, stereo merge, tones, checksums."""

from __future__ import annotations

import hashlib
import os
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def _read_mono(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        rate, channels = w.getframerate(), w.getnchannels()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if channels > 1:
        samples = samples[::channels]
    return samples, rate


@dataclass(frozen=True, slots=True)
class StereoResult:
    path: Path
    seconds: float  # duration
    channels: int  # always 2
    sha256: str  # of the final file
    peak_left: int  # largest absolute sample, caller side
    peak_right: int  # agent side


def merge_stereo(left: Path, right: Path, out: Path) -> StereoResult:
    """Interleave two mono recordings (caller left, agent right) into one stereo WAV.

    Both recorders start on the same conference-bridge tick, so their starts
    align; the shorter one is padded with silence at the end.
    """
    a, rate_a = _read_mono(left)
    b, rate_b = _read_mono(right)
    if rate_a != rate_b:
        raise ValueError(f"sample rates differ: {rate_a} vs {rate_b}")
    n = max(len(a), len(b))
    stereo = np.zeros((n, 2), dtype="<i2")
    stereo[: len(a), 0] = a
    stereo[: len(b), 1] = b
    tmp = out.with_suffix(".partial")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate_a)
        w.writeframes(stereo.tobytes())
    tmp.replace(out)
    return StereoResult(
        path=out,
        seconds=n / rate_a,
        channels=2,
        sha256=sha256_file(out),
        peak_left=int(np.abs(a.astype(np.int32)).max(initial=0)),
        peak_right=int(np.abs(b.astype(np.int32)).max(initial=0)),
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_tone(path: Path, *, hz: float = 440.0, seconds: float = 0.5, rate: int = 8000) -> Path:
    """A plain tone: what a caller hears when a prompt cannot be synthesized."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


@dataclass(frozen=True, slots=True)
class WavRepair:
    path: Path
    data_bytes: int  # audio bytes kept (a trailing partial sample frame is cut off)
    changed: bool  # the header's sizes were wrong and have been rewritten


def repair_wav_header(path: Path) -> WavRepair:
    """Make a WAV that its writer never closed readable: set the RIFF size and the data
    chunk's size from the file's length, keeping every whole sample frame written.

    A recorder killed mid-call (kill -9, power loss) leaves the header as it was written
    at the start, with both sizes 0, which no player opens. Raises ValueError for a file
    that is not a RIFF/WAVE with a ``fmt `` and a ``data`` chunk.
    """
    with path.open("r+b") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path}: not a RIFF/WAVE file")
        offset, block_align = 12, 0
        while True:
            f.seek(offset)
            chunk = f.read(8)
            if len(chunk) < 8:
                raise ValueError(f"{path}: no data chunk")
            cid, clen = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(16)
                if len(fmt) < 16:
                    raise ValueError(f"{path}: the fmt chunk is cut short")
                block_align = struct.unpack("<H", fmt[12:14])[0]
            if cid == b"data":
                break
            offset += 8 + clen + (clen & 1)
        if block_align == 0:
            raise ValueError(f"{path}: no fmt chunk before the data")
        data_at = offset + 8
        available = max(0, size - data_at)
        data_bytes = available - available % block_align
        riff = data_at + data_bytes - 8
        changed = (clen, struct.unpack("<I", head[4:8])[0]) != (
            data_bytes,
            riff,
        ) or size != data_at + data_bytes
        if changed:
            f.truncate(data_at + data_bytes)
            f.seek(4)
            f.write(struct.pack("<I", riff))
            f.seek(offset + 4)
            f.write(struct.pack("<I", data_bytes))
            f.flush()
            os.fsync(f.fileno())
    return WavRepair(path=path, data_bytes=data_bytes, changed=changed)
