"""telephony.tail.WavTail on WAV files written progressively from Python, as a recorder would."""

from __future__ import annotations

import os
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from telephony.tail import WavTail, WavTailError


def pcm_header(
    *,
    rate: int = 8000,
    channels: int = 1,
    bits: int = 16,
    tag: int = 1,
    data_len: int = 0,
    extra: bytes = b"",
) -> bytes:
    """A canonical 44-byte header as pjmedia's writer leaves it while recording: lengths 0.

    ``extra`` is inserted as whole chunks between fmt and data."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 0)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + extra
        + b"data"
        + struct.pack("<I", data_len)
    )


def samples(start: int, count: int) -> bytes:
    return (np.arange(start, start + count) % 30000).astype("<i2").tobytes()


class Growing:
    """Appends to a file with unbuffered writes, the way the patched writer flushes."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def write(self, data: bytes) -> None:
        assert os.write(self.fd, data) == len(data)

    def close(self) -> None:
        os.close(self.fd)


def test_missing_file_then_partial_header_then_samples(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    tail = WavTail(path)
    assert tail.read() == b""  # not created yet
    out = Growing(path)
    hdr = pcm_header()
    assert len(hdr) == 44
    assert tail.read() == b""  # empty file
    out.write(hdr[:10])
    assert tail.read() == b""  # not even RIFF/WAVE yet
    out.write(hdr[10:30])
    assert tail.read() == b""  # fmt chunk cut
    out.write(hdr[30:])
    assert tail.read() == b""  # header only
    assert (tail.data_offset, tail.sample_rate, tail.channels) == (44, 8000, 1)
    frame = samples(0, 160)
    out.write(frame)
    assert tail.read() == frame
    assert tail.read() == b""
    assert tail.frames_read == 160
    out.close()
    tail.close()


def test_partial_samples_are_held_back_until_whole(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    out = Growing(path)
    out.write(pcm_header())
    tail = WavTail(path)
    data = samples(100, 10)
    out.write(data[:3])  # one sample and a half
    assert tail.read() == data[:2]
    out.write(data[3:4])  # completes the second sample
    assert tail.read() == data[2:4]
    out.write(data[4:9])
    assert tail.read() == data[4:8]
    out.write(data[9:])
    assert tail.read() == data[8:]
    assert tail.bytes_read == len(data) and tail.frames_read == 10
    out.close()
    tail.close()


def test_header_lengths_are_ignored_and_the_final_header_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    out = Growing(path)
    out.write(pcm_header())  # lengths 0, as while recording
    tail = WavTail(path)
    got = [tail.read()]
    sent = []
    for i in range(20):
        frame = samples(160 * i, 160)
        sent.append(frame)
        out.write(frame)
        got.append(tail.read())
    # the writer closes: it fixes the RIFF and data lengths in place (file_on_destroy)
    data_len = 20 * 320
    os.pwrite(out.fd, struct.pack("<I", 36 + data_len), 4)
    os.pwrite(out.fd, struct.pack("<I", data_len), 40)
    out.close()
    got.append(tail.read())
    assert b"".join(got) == b"".join(sent)
    tail.close()
    # a tail opened on the finished file reads the same samples
    with WavTail(path) as again:
        assert again.read() == b"".join(sent)


def test_other_chunks_before_data_and_stereo(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    out = Growing(path)
    listing = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"  # odd size: padded
    hdr = pcm_header(rate=16000, channels=2, extra=listing)
    out.write(hdr)
    tail = WavTail(path)
    assert tail.read() == b""
    assert (tail.data_offset, tail.sample_rate, tail.channels, tail.block_align) == (len(hdr), 16000, 2, 4)
    data = samples(0, 8)  # 4 stereo frames
    out.write(data[:7])
    assert tail.read() == data[:4]  # one whole frame (4 bytes), not three samples
    out.write(data[7:])
    assert tail.read() == data[4:]
    assert tail.frames_read == 4
    out.close()
    tail.close()


def test_python_wave_writer_with_header_rewrites(tmp_path: Path) -> None:
    """wave rewrites the header lengths after each writeframes(); that must not matter."""
    path = tmp_path / "rec.wav"
    tail = WavTail(path)
    sent, got = [], []
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        for i in range(10):
            frame = samples(7 * i, 161)  # frames of an odd number of samples
            sent.append(frame)
            w.writeframes(frame)
            w._file.flush()  # type: ignore[attr-defined]  # as the patched pjmedia writer does
            got.append(tail.read())
    got.append(tail.read())
    assert b"".join(got) == b"".join(sent)
    tail.close()


def test_large_backlog_is_read_in_one_call(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    data = samples(0, 50_000)
    path.write_bytes(pcm_header() + data)
    with WavTail(path, max_read=4096) as tail:
        assert tail.read() == data
        assert tail.read() == b""


@pytest.mark.parametrize(
    "content",
    [
        b"RIFX" + b"\0" * 40,  # big-endian RIFF
        pcm_header(bits=8),
        pcm_header(tag=6),  # A-law
        b"RIFF\0\0\0\0WAVEdata\0\0\0\0",  # data before fmt
    ],
)
def test_rejects_what_is_not_16_bit_pcm(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "rec.wav"
    path.write_bytes(content)
    with WavTail(path) as tail, pytest.raises(WavTailError):
        tail.read()


def test_close(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    path.write_bytes(pcm_header() + samples(0, 4))
    tail = WavTail(path)
    assert len(tail.read()) == 8
    fd = tail._fd
    assert fd is not None
    tail.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    tail.close()  # twice is fine
    with pytest.raises(ValueError):
        tail.read()
