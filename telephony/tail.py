"""Read a WAV file while a recorder is still writing it ("record-and-tail").

pjsua2 2.12.1 has no per-frame Python tap, so caller audio reaches Python through a file: an
``AudioMediaRecorder`` writes a WAV on tmpfs and :class:`WavTail` reads what has been appended
since the last call. No pjsua2 here; ``read()`` never blocks, so the event loop can poll many
files every 10-20 ms.

What the file looks like while it grows (pjmedia's WAV writer, and Python's ``wave``):

* The header is complete before the first sample with our patched writer
  (telephony/build/patches/0001-wav-writer-flush-per-frame.patch); the stock writer holds it
  back, with the first 4 KB of samples.
* The RIFF and data lengths in the header are 0 (pjmedia) or stale (``wave``) until the writer
  closes the file. They are ignored: the samples run from the end of the header to the current
  end of the file.
* The end of the file can fall inside a sample (a write seen half done). Only whole sample
  frames (``block_align`` bytes: 2 for mono 16-bit) are returned; the rest is returned by a
  later ``read()``.
"""

from __future__ import annotations

import os
import struct

__all__ = ["WavTail", "WavTailError"]

_MAX_HEADER = 1 << 16  # bytes searched for the data chunk; pjmedia's PCM header is 44
_FMT_PCM = 1
_FMT_EXTENSIBLE = 0xFFFE


class WavTailError(ValueError):
    """The file is not a 16-bit PCM WAV (checked once its header is complete)."""


class WavTail:
    """Incremental reader of one growing 16-bit PCM WAV file.

    ``read()`` returns the bytes of the whole sample frames appended since the previous
    ``read()`` (little-endian int16, interleaved if stereo), or ``b""``: when nothing new has
    arrived, when the file does not exist yet, or when its header is still incomplete.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_read: int = 1 << 16) -> None:
        self.path = os.fspath(path)
        self.max_read = max(2, max_read)  # bytes per pread; read() loops while they come full
        self._fd: int | None = None
        self._closed = False
        self._pos = 0  # file offset of the next byte to return
        self.data_offset: int | None = None  # where the samples start (44 for pjmedia PCM)
        self.sample_rate: int | None = None
        self.channels: int | None = None
        self.block_align = 2  # bytes per sample frame; from the header once it is parsed
        self.bytes_read = 0  # sample bytes returned so far

    @property
    def frames_read(self) -> int:
        """Sample frames returned so far (samples per channel)."""
        return self.bytes_read // self.block_align

    def read(self) -> bytes:
        if self._closed:
            raise ValueError(f"WavTail({self.path!r}) is closed")
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except FileNotFoundError:
                return b""
        if self.data_offset is None and not self._parse_header():
            return b""
        chunks = []
        while True:
            chunk = os.pread(self._fd, self.max_read, self._pos)
            if not chunk:
                break
            chunks.append(chunk)
            self._pos += len(chunk)
            if len(chunk) < self.max_read:
                break
        data = b"".join(chunks)
        extra = len(data) % self.block_align
        if extra:  # a sample frame cut by the end of the file: return it next time
            data = data[:-extra]
            self._pos -= extra
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        self._closed = True
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> WavTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self.close()

    def _parse_header(self) -> bool:
        """Find the data chunk. False while the header is not all there yet."""
        assert self._fd is not None
        head = os.pread(self._fd, _MAX_HEADER, 0)  # until the header is complete
        if len(head) < 12:
            return False
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise WavTailError(f"{self.path}: not a RIFF/WAVE file")
        off = 12
        fmt: tuple[int, int, int, int, int] | None = None
        while True:
            if off + 8 > len(head):
                if len(head) < _MAX_HEADER:
                    return False  # the header is still being written
                raise WavTailError(f"{self.path}: no data chunk in the first {_MAX_HEADER} bytes")
            cid, size = head[off : off + 4], struct.unpack_from("<I", head, off + 4)[0]
            if cid == b"data":
                break
            if cid == b"fmt ":
                if size < 16:
                    raise WavTailError(f"{self.path}: fmt chunk of {size} bytes")
                if off + 8 + 16 > len(head):
                    return False
                tag, channels, rate, _byte_rate, align, bits = struct.unpack_from("<HHIIHH", head, off + 8)
                fmt = (tag, channels, rate, align, bits)
            off += 8 + size + (size & 1)  # chunks are padded to an even size
        if fmt is None:
            raise WavTailError(f"{self.path}: data chunk before any fmt chunk")
        tag, channels, rate, align, bits = fmt
        if tag not in (_FMT_PCM, _FMT_EXTENSIBLE) or bits != 16 or channels < 1 or align != 2 * channels:
            raise WavTailError(
                f"{self.path}: want 16-bit PCM, got format {tag:#x}, {bits} bits, "
                f"{channels} channel(s), block align {align}"
            )
        self.sample_rate, self.channels, self.block_align = rate, channels, align
        self.data_offset = self._pos = off + 8
        return True
