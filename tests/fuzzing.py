"""Fuzz material for the live server (issue 11): SIP messages, CTI lines and flow files.

- **SIP**: ``tests/fuzz/sip/*.sip``, a corpus written for hotline in the categories of
  RFC 4475's torture tests (valid but tortuous, invalid, transaction layer, application
  layer, backward compatibility) plus our own (bytes that are not UTF-8, control
  characters, size), and :func:`sip_mutations`, seeded random mutations of them.
- **CTI**: :func:`cti_garbage`, lines no client should send: random bytes, broken and
  hostile JSON (deep nesting, huge numbers, lone surrogates), commands with arguments
  of every wrong type.
- **Flows**: :func:`flow_mutations`, seeded mutations of real flow files: lines
  dropped, duplicated, swapped or cut, values replaced with hostile ones.

Everything is deterministic for a seed, so a failure is reproduced by its seed and index.
``tests/test_fuzz.py`` runs a bounded set against a live server in the suite;
``bench/fuzz.py`` runs the long version.
"""

from __future__ import annotations

import contextlib
import json
import random
import secrets
from collections.abc import Iterator
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "fuzz" / "sip"


# ----------------------------------------------------------------------------- SIP
def fill(template: bytes, *, host: str, port: int, src: str, sport: int) -> bytes:
    """A corpus template as it goes on the wire: fresh Call-ID, tag and branch; LF line ends
    become CRLF (unless the file is named ``*-rawlf.sip``); ``$LEN`` is the length of the
    body that follows it."""
    fields = {
        b"$HOST": host.encode(),
        b"$PORT": str(port).encode(),
        b"$SRC": src.encode(),
        b"$SPORT": str(sport).encode(),
        b"$CALLID": secrets.token_hex(8).encode() + b"@fuzz",
        b"$TAG": secrets.token_hex(4).encode(),
        b"$BRANCH": b"z9hG4bK" + secrets.token_hex(6).encode(),
    }
    data = template
    for key, value in fields.items():
        data = data.replace(key, value)
    return data


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _lengths(data: bytes) -> bytes:
    while (at := data.find(b"$LEN")) >= 0:
        blank = data.find(b"\r\n\r\n", at)
        if blank < 0:
            blank = data.find(b"\n\n", at)
            body = len(data) - (blank + 2) if blank >= 0 else 0
        else:
            body = len(data) - (blank + 4)
        data = data[:at] + str(max(body, 0)).encode() + data[at + 4 :]
    return data


def sip_corpus(*, host: str, port: int, src: str, sport: int) -> list[tuple[str, bytes]]:
    """(name, message) for every corpus file, ready to send from ``src:sport``."""
    out = []
    for path in sorted(CORPUS.glob("*.sip")):
        data = fill(path.read_bytes(), host=host, port=port, src=src, sport=sport)
        if not path.stem.endswith("-rawlf"):
            data = _crlf(data)
        out.append((path.stem, _lengths(data)))
    return out


HOSTILE_BYTES = [
    b"\x00",
    b"\xff\xfe",
    b"\xf9",
    b"\xc3",  # half a UTF-8 sequence
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\r",
    b"\n",
    b"\r\n\r\n",
    b":",
    b";",
    b"<",
    b">",
    b'"',
    b"%",
    b"%00",
    b" " * 50,
    b"\t",
    b"\x1b[2J",
    b"A" * 2000,
    b"9" * 40,
    b"-1",
    b"sip:",
    b"@",
]


def _mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    lines = data.split(b"\r\n")
    head_end = lines.index(b"") if b"" in lines else len(lines)
    op = rng.choice(
        [
            "flip",
            "insert",
            "delete",
            "duplicate",
            "truncate",
            "value",
            "swap",
            "length",
            "startline",
            "repeat",
        ]
    )
    if op == "flip":
        buf = bytearray(data)
        for _ in range(rng.randint(1, 12)):
            i = rng.randrange(len(buf))
            buf[i] = rng.randrange(256)
        return op, bytes(buf)
    if op == "insert":
        i = rng.randrange(len(data) + 1)
        return op, data[:i] + rng.choice(HOSTILE_BYTES) + data[i:]
    if op == "delete":
        i = rng.randrange(len(data))
        return op, data[:i] + data[i + rng.randint(1, 60) :]
    if op == "truncate":
        return op, data[: rng.randrange(len(data))]
    if op == "length":
        value = rng.choice([b"0", b"-5", b"99999999999999999999", b"1", b"abc", b"4096", b""])
        return op, b"\r\n".join(
            (b"Content-Length: " + value) if line.lower().startswith(b"content-length") else line
            for line in lines
        )
    if head_end <= 2:
        return "flip", data[::-1]
    k = rng.randrange(1, head_end)
    if op == "duplicate":
        lines[k:k] = [lines[k]] * rng.randint(1, 40)
    elif op == "swap":
        j = rng.randrange(0, head_end)
        lines[k], lines[j] = lines[j], lines[k]
    elif op == "value":
        name = lines[k].split(b":", 1)[0]
        lines[k] = name + b": " + b"".join(rng.choice(HOSTILE_BYTES) for _ in range(rng.randint(1, 6)))
    elif op == "startline":
        parts = lines[0].split(b" ")
        parts[rng.randrange(len(parts))] = rng.choice([*HOSTILE_BYTES, b"INVITE", b"SIP/3.0", b"sip:x@[::1"])
        lines[0] = b" ".join(parts)
    elif op == "repeat":
        lines.insert(k, b"X-Repeat: " + b"x," * rng.randint(100, 3000))
    return op, b"\r\n".join(lines)


def sip_mutations(
    seed: int, count: int, *, host: str, port: int, src: str, sport: int
) -> Iterator[tuple[str, bytes]]:
    """``count`` mutated messages: each a corpus message with one to three mutations.
    The name says which file, which mutations and the index (reproduce with the seed)."""
    rng = random.Random(seed)
    corpus = sip_corpus(host=host, port=port, src=src, sport=sport)
    for n in range(count):
        name, data = rng.choice(corpus)
        ops = []
        for _ in range(rng.randint(1, 3)):
            op, data = _mutate(data, rng) if data else ("empty", b"\r\n")
            ops.append(op)
        yield f"{n}:{name}:{'+'.join(ops)}", data


# ----------------------------------------------------------------------------- CTI
COMMANDS = [
    "auth",
    "subscribe",
    "ping",
    "agent.login",
    "agent.ready",
    "agent.not_ready",
    "agent.logout",
    "agent.end_wrap_up",
    "call.hangup",
    "call.answer",
    "call.hold",
    "call.retrieve",
    "call.transfer",
    "call.set_variables",
    "call.recording",
    "queue.status",
    "queue.set_priority",
    "call.make",
    "flow.reload",
    "flow.emergency",
]
ARGS = [
    "agent",
    "call_id",
    "queue",
    "to",
    "priority",
    "reason",
    "events",
    "since",
    "variables",
    "action",
    "on",
]


def _hostile_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(14)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**31, 2**63, -(2**63), 10**30, 1.5, -0.0, 1e308])
    if kind == 3:
        return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randint(0, 20)))
    if kind == 4:
        return rng.choice(["", " ", "1001", "sales", "*", "call.*", "sip:x@127.0.0.1:9", "../../etc/passwd"])
    if kind == 5:
        return "x" * rng.randint(1000, 20000)
    if kind == 6 and depth < 3:
        return [_hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    if kind == 7 and depth < 3:
        return {rng.choice([*ARGS, "", "é", "\u0000"]): _hostile_value(rng, depth + 1) for _ in range(3)}
    if kind == 8:
        return "\u0000\u001b[31m\u2028\ufeff"
    return rng.choice(["1001", "sales", "nobody", "0123456789abcdef", "start", "pause"])


def cti_garbage(seed: int, count: int) -> Iterator[bytes]:
    """``count`` lines (each ending in a newline) that a CTI server must answer with an error,
    or carry out harmlessly, and never crash on."""
    rng = random.Random(seed)
    for _ in range(count):
        kind = rng.randrange(12)
        if kind == 0:
            line = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300))).replace(b"\n", b" ")
        elif kind == 1:
            line = b"[" * rng.randint(33, 20000) + b"]" * rng.randint(0, 5)
        elif kind == 2:
            line = b'{"id": 1, "cmd": "ping", "n": ' + b"9" * rng.randint(33, 20000) + b"}"
        elif kind == 3:
            line = b'{"id": 2, "cmd": "agent.not_ready", "agent": "1001", "reason": "\\udcf9\\ud800"}'
        elif kind == 4:
            line = rng.choice([b"NaN", b"Infinity", b'{"id": 3, "cmd": "ping", "x": -Infinity}', b"1e999"])
        elif kind == 5:
            line = json.dumps({"id": rng.randrange(10), "cmd": rng.choice(COMMANDS)})[
                : rng.randint(1, 30)
            ].encode()
        elif kind == 6:
            line = json.dumps(_hostile_value(rng)).encode()
        elif kind == 7:
            line = b'{"id": 4, "cmd": "ping", "s": "' + bytes([0xF9, 0xFF, 0xC3]) + b'"}'
        elif kind == 8:
            line = b"x" * rng.choice([70_000, 65_536, 65_535])
        else:
            obj: dict[str, object] = {
                "id": _hostile_value(rng),
                "cmd": rng.choice([*COMMANDS, "", "x" * 300]),
            }
            for _ in range(rng.randint(0, 4)):
                obj[rng.choice(ARGS)] = _hostile_value(rng)
            line = json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        yield line + b"\n"


# --------------------------------------------------------------------------- flows
HOSTILE_VALUES = [
    "",
    "~",
    "null",
    "[]",
    "{}",
    "-1",
    "1e999",
    "9" * 5000,
    "'" + "x" * 100_000 + "'",
    '"(' * 300 + '"',
    '"' + "(" * 500 + "true" + ")" * 500 + '"',
    '"' + " or ".join(["a == 1"] * 600) + '"',
    '"{' * 50 + '"',
    "&anchor [*anchor]",
    "*nosuchanchor",
    "!!python/object/apply:os.system ['true']",
    '"\\ud800"',
    '"\\x00\\x1b"',
    "[" * 2000 + "]" * 2000,
    "{a: {b: {c: {d: {e: {f: {g: {h: 1}}}}}}}}",
    "sip:",
    "http://",
    "nowhere",
    "true",
    "0.000001",
    "|\n  multi\n  line",
]


def flow_mutations(seed: int, count: int, sources: dict[str, str]) -> Iterator[tuple[str, str]]:
    """``count`` mutated flow texts, (name, text), from ``sources`` (name -> YAML text)."""
    rng = random.Random(seed)
    names = sorted(sources)
    for n in range(count):
        name = rng.choice(names)
        lines = sources[name].splitlines()
        ops = []
        for _ in range(rng.randint(1, 4)):
            if not lines:
                lines = ["{"]
            op = rng.choice(["drop", "duplicate", "swap", "value", "indent", "cut", "key", "bytes"])
            k = rng.randrange(len(lines))
            if op == "drop":
                del lines[k]
            elif op == "duplicate":
                lines[k:k] = [lines[k]] * rng.randint(1, 5)
            elif op == "swap":
                j = rng.randrange(len(lines))
                lines[k], lines[j] = lines[j], lines[k]
            elif op == "value" and ":" in lines[k]:
                key = lines[k].split(":", 1)[0]
                lines[k] = f"{key}: {rng.choice(HOSTILE_VALUES)}"
            elif op == "indent":
                lines[k] = " " * rng.choice([1, 3, 7, 40]) + lines[k]
            elif op == "cut":
                lines = lines[:k]
            elif op == "key" and ":" in lines[k]:
                indent = lines[k][: len(lines[k]) - len(lines[k].lstrip())]
                key = rng.choice(
                    ["type", "next", "if", "prompt", "queue", "nodes", "start", "cases", "x" * 500]
                )
                lines[k] = f"{indent}{key}: {lines[k].split(':', 1)[1]}"
            elif op == "bytes":
                i = rng.randrange(len(lines[k]) + 1)
                lines[k] = (
                    lines[k][:i] + rng.choice(["\x00", "\t", "\ufeff", "\u2028", "é", "\x85"]) + lines[k][i:]
                )
            ops.append(op)
        yield f"{n}:{name}:{'+'.join(ops)}", "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- drivers
#: log events that mean the server mishandled input (a bug), whatever the input was
BUG_EVENTS = {
    "telephony_event_handler_failed",
    "cti_command_crashed",
    "event_repaired",
    "event_sink_failed",
    "call_record_write_failed",
    "cti_outbox_write_failed",
    "flow_watch_failed",
    "flow_compiler_failed",
}


def bugs_in_log(events: list[dict[str, object]], text: str) -> list[object]:
    """What in a server log shows a bug: a traceback, or one of BUG_EVENTS."""
    found: list[object] = [e for e in events if e.get("event") in BUG_EVENTS or "exc_info" in e]
    if "Traceback (most recent call last)" in text:
        found.append("a Traceback in the log")
    return found


def send_sip(
    messages: list[tuple[str, bytes]], *, port: int, src: str, sport: int, tcp_every: int = 5
) -> dict[str, int]:
    """Send each message to 127.0.0.1:``port`` over UDP from ``src:sport`` (every
    ``tcp_every``-th over a fresh TCP connection too); count the status codes answered."""
    import socket
    import time

    codes: dict[str, int] = {}
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((src, sport))
    udp.setblocking(False)

    def drain() -> None:
        while True:
            try:
                data = udp.recv(65535)
            except BlockingIOError:
                return
            key = data[8:11].decode("latin-1") if data.startswith(b"SIP/2.0 ") else "request"
            codes[key] = codes.get(key, 0) + 1

    for n, (_name, data) in enumerate(messages):
        try:
            udp.sendto(data[:65000], ("127.0.0.1", port))
        except OSError:
            codes["send_failed"] = codes.get("send_failed", 0) + 1
        if tcp_every and n % tcp_every == 0:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2) as tcp:
                tcp.sendall(data)
                tcp.settimeout(0.05)
                with contextlib.suppress(OSError):
                    tcp.recv(65535)
        drain()
        time.sleep(0.002)
    time.sleep(0.5)
    drain()
    udp.close()
    return codes


async def send_cti(
    lines: list[bytes], *, port: int, token: str, src: str, connections: int = 4
) -> dict[str, int]:
    """Send the lines over ``connections`` authenticated CTI connections from ``src``,
    paced under the flood limit; count the error codes answered (and 'ok'). A session the
    server closes (auth failures in the garbage, a flood) is reopened."""
    import asyncio

    counts: dict[str, int] = {}

    def count(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    async def read(reader: asyncio.StreamReader, closed: asyncio.Event) -> None:
        while line := await reader.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                count("unparsable_reply")
                continue
            if msg.get("event") == "session.closed":
                count(f"closed:{msg['data']['reason']}")
                closed.set()
            elif "ok" in msg:
                count("ok" if msg["ok"] else msg["error"]["code"])
        closed.set()

    async def session(chunk: list[bytes]) -> None:
        i = 0
        while i < len(chunk):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(src, 0), limit=1 << 22
            )
            writer.write(json.dumps({"id": "auth", "cmd": "auth", "token": token}).encode() + b"\n")
            await writer.drain()
            await reader.readline()
            closed = asyncio.Event()
            reading = asyncio.create_task(read(reader, closed))
            while i < len(chunk) and not closed.is_set():
                writer.write(chunk[i])
                i += 1
                if i % 100 == 0:
                    await writer.drain()
                    await asyncio.sleep(0.6)  # 100 lines per 0.6 s: under the 200/s flood limit
            with contextlib.suppress(OSError):
                await writer.drain()
            await asyncio.sleep(0.3)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reading, 2)
            reading.cancel()

    share = (len(lines) + connections - 1) // connections
    await asyncio.gather(*(session(lines[k * share : (k + 1) * share]) for k in range(connections)))
    return counts
