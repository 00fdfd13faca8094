"""The call script hotline and bare pjsua2 both run in the capacity benchmarks, and the
checks that prove each server did that work.

The script (from the caller's ACK, times in seconds):

* 0: the server plays GREETING (hello-world, 1.40 s), then MENU (please-try-again, 1.25 s);
  whole-call recording (`ivr` and `cps` modes) starts at answer and runs to hang-up;
* DIGIT_AT (3.5): the caller presses 1 (RFC 4733), in silence after the menu;
* the server plays AFTER_DIGIT (beep, 0.43 s), then HOLD (pls-hold-while-try, 2.42 s) again
  and again, a new player each time (hotline's queue node replays its hold prompt at each end);
* `full` mode: at the digit the caller is queued and an agent (SIPp UAS, echoing audio) is
  rung; once it answers the hold stops, caller and agent are bridged and both are recorded
  (one recorder each) until hang-up;
* HOLD_S after the ACK the caller hangs up. The caller sends a continuous -12 dBFS tone the
  whole call (the key press aside), so a gap in a recording is a media fault, not silence.

The prompts are Debian's recorded set (asterisk-core-sounds-en-wav), the same files for both.
"""

from __future__ import annotations

import math
import os
import time
import wave
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

STOCK = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
GREETING, MENU, AFTER_DIGIT, HOLD = "hello-world", "please-try-again", "beep", "pls-hold-while-try"
DIGIT = "1"
DIGIT_AT = 3.5  # seconds from the ACK to the key press
KEY_DOWN = 0.16  # seconds the key is held (no audio meanwhile, as on a phone)
TONE_DBFS = -12.0
SILENT_DBFS = -45.0  # a 10 ms frame below this is silent
MAX_GAP = 0.060  # seconds: a longer silence inside a recording is a media fault
HANGUP_TAIL = 0.5  # seconds at the end of a recording not checked for gaps (the caller's audio ends first)
AGENT_ANSWER_MS = 1000  # full mode: the agents ring this long before answering


def prompt(name: str) -> Path:
    return STOCK / f"{name}.wav"


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


@dataclass(frozen=True, slots=True)
class Script:
    """What one call asks of a server in a mode: `ivr` (whole-call recording, callers stay in
    the IVR's hold), `cps` (the same, short calls), `full` (queued and bridged to an agent,
    both sides recorded)."""

    mode: str
    hold: float  # seconds from the ACK to the BYE

    @property
    def players(self) -> int:
        """Players each answered call must have had at least: greeting, menu, beep, and the
        hold music, which restarts each time it ends (as hotline's queue node does it, so it
        can slip announcements in between). In `full` mode the hold may not start when the
        agent answers during the beep: three."""
        if self.mode == "full":
            return 3
        after_beep = self.hold - DIGIT_AT - wav_seconds(prompt(AFTER_DIGIT)) - 0.5
        return 3 + max(1, int(after_beep / wav_seconds(prompt(HOLD))))

    @property
    def recorders(self) -> int:
        return 2 if self.mode == "full" else 1

    @property
    def min_recorded(self) -> float:
        """Seconds each call's recording must last at least."""
        if self.mode == "full":  # from the bridge: digit, ring time, then talk
            return max(0.5, self.hold - DIGIT_AT - AGENT_ANSWER_MS / 1000 - 2.0)
        return max(0.5, self.hold - 1.0)  # from answer to hang-up

    @property
    def key_window(self) -> tuple[float, float] | None:
        """Where the key press lies in a whole-call recording, seconds after its first sound."""
        return None if self.mode == "full" else (DIGIT_AT - 0.25, DIGIT_AT + KEY_DOWN + 0.35)


def write_caller_pcap(path: Path, hold: float) -> Path:
    """The caller's RTP for one call (PCMU tone, the key laid in), replayed by SIPp per call."""
    from tests.peers import tone, write_call_pcap

    return write_call_pcap(path, tone(max(hold - 0.2, DIGIT_AT + 1.0), 440.0, TONE_DBFS), [(DIGIT_AT, DIGIT)])


# ------------------------------------------------------------------ work counts
@dataclass(frozen=True, slots=True)
class Work:
    """What a server says it did in one run."""

    answered: int  # calls answered
    players: int  # players created
    recorders: int  # recorders created
    wavs_finished: int  # recorder files closed complete


@dataclass
class WavReport:
    files: int = 0
    too_short: list[str] = field(default_factory=list)  # "name: seconds"
    faults: list[str] = field(default_factory=list)  # "name: gap of N ms at T s"
    longest_gap: float = 0.0  # seconds, over every file (key press window excluded)
    seconds: float = 0.0  # recorded audio in all files (per channel)


def silent_runs(samples: np.ndarray, rate: int = 8000) -> tuple[float, float, list[tuple[float, float]]]:
    """(first sound, last sound, [(start, length)] of silent runs between them), seconds,
    from 10 ms frames below SILENT_DBFS."""
    n = rate // 100
    frames = samples[: len(samples) // n * n].astype(np.float64).reshape(-1, n)
    if not len(frames):
        return 0.0, 0.0, []
    rms = np.sqrt((frames**2).mean(axis=1)) / 32768.0
    voiced = rms > 10 ** (SILENT_DBFS / 20)
    idx = np.flatnonzero(voiced)
    if not len(idx):
        return 0.0, 0.0, []
    first, last = int(idx[0]), int(idx[-1])
    runs, start = [], None
    for i in range(first, last + 1):
        if not voiced[i] and start is None:
            start = i
        elif voiced[i] and start is not None:
            runs.append((start / 100, (i - start) / 100))
            start = None
    return first / 100, last / 100, runs


def check_wav(path: Path, script: Script, report: WavReport) -> None:
    with wave.open(str(path), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels)
    report.files += 1
    seconds = len(data) / rate
    report.seconds += seconds
    if seconds < script.min_recorded:
        report.too_short.append(f"{path.name}: {seconds:.2f} s")
    for ch in range(channels):
        first, _last, runs = silent_runs(data[:, ch], rate)
        for start, length in runs:
            window = script.key_window
            if window is not None and start < first + window[1] and start + length > first + window[0]:
                continue  # the key press: the caller sends no audio while the key is down
            if start + length > seconds - HANGUP_TAIL:
                continue  # the caller's tone stops 0.2 s before the BYE
            report.longest_gap = max(report.longest_gap, length)
            if length > MAX_GAP + 1e-9:
                report.faults.append(f"{path.name}[{ch}]: gap of {1000 * length:.0f} ms at {start:.2f} s")


def check_wavs(paths: Iterable[Path], script: Script) -> WavReport:
    report = WavReport()
    for p in paths:
        check_wav(p, script, report)
    return report


def work_problems(side: str, work: Work, succeeded: int, files: int, script: Script) -> list[str]:
    """Why a run does not count: a server that did less than the calls it answered asked for.
    ``succeeded``: calls SIPp completed; ``files``: finished recording files on disk
    (hotline: one stereo file per bridged call; bare: one mono file per recorder)."""
    out = []
    answered = max(work.answered, succeeded)
    if work.answered < succeeded:
        out.append(f"{side}: answered {work.answered} calls but SIPp completed {succeeded}")
    for what, have, per in (
        ("players", work.players, script.players),
        ("recorders", work.recorders, script.recorders),
        ("finished WAVs", work.wavs_finished, script.recorders),
    ):
        if have < per * answered:
            out.append(f"{side}: {have} {what} for {answered} answered calls (needs {per} each)")
    want_files = answered * (1 if side == "hotline" else script.recorders)
    if files < want_files:
        out.append(
            f"{side}: {files} recording files on disk for {answered} answered calls (needs {want_files})"
        )
    return out


# --------------------------------------------------------------- CPU and memory
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _ticks(stat: str) -> tuple[str, int]:
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat.rsplit(")", 1)[1].split()
    return comm, int(fields[11]) + int(fields[12])  # utime + stime


def thread_ticks(pid: int) -> dict[int, tuple[str, int]]:
    """tid -> (thread name, CPU ticks so far) from /proc/<pid>/task/*/stat."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = _ticks((task / "stat").read_text())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


@dataclass
class CpuWindow:
    """CPU over a window: the process (% of one core), each thread (by name, % of one core),
    the whole machine (% of all cores)."""

    seconds: float = 0.0
    process_pct: float = 0.0
    threads: list[tuple[str, float]] = field(default_factory=list)  # busiest first
    machine_pct: float = 0.0

    @property
    def busiest(self) -> tuple[str, float]:
        return self.threads[0] if self.threads else ("", 0.0)


class CpuSampler:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.t0 = time.monotonic()
        self.threads0 = thread_ticks(pid)
        self.machine0 = machine_ticks()

    def stop(self) -> CpuWindow:
        """CPU per thread, summed by name: "main" is the process's first thread (hotline's
        asyncio loop and the pjsua2 pump; bare's pump), "pj:clock" the conference bridge,
        "pj:media" the RTP I/O (names from telephony/build/patches/0003), "python" the
        other Python threads (hotline: thread-pool jobs, SQLite)."""
        t1, threads1, machine1 = time.monotonic(), thread_ticks(self.pid), machine_ticks()
        dt = t1 - self.t0
        by_name: dict[str, float] = {}
        for tid, (name, ticks) in threads1.items():
            before = self.threads0.get(tid, (name, 0))[1]
            label = "main" if tid == self.pid else name
            by_name[label] = by_name.get(label, 0.0) + 100 * (ticks - before) / CLK_TCK / dt
        per = sorted(by_name.items(), key=lambda x: -x[1])
        busy = machine1[0] - self.machine0[0]
        total = max(1, machine1[1] - self.machine0[1])
        return CpuWindow(
            seconds=dt,
            process_pct=sum(p for _, p in per),
            threads=per,
            machine_pct=100 * busy / total,
        )


SATURATED_MACHINE = 95.0  # % of all cores busy
SATURATED_THREAD = 90.0  # % of one core for one server thread


SINGLE_THREADS = ("main", "pj:clock", "pj:media")  # one thread each: none can use a second core


def saturation(window: CpuWindow) -> str:
    """Why the CPU counts as saturated over the window, or ""."""
    if window.machine_pct >= SATURATED_MACHINE:
        return f"machine {window.machine_pct:.0f} % busy (all cores)"
    for name, pct in window.threads:
        if name in SINGLE_THREADS and pct >= SATURATED_THREAD:
            return f"thread {name} at {pct:.0f} % of a core"
    return ""


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]
