"""Admission of incoming calls per source address: a pure core (time is an argument).

An INVITE flood from one address (3,000 INVITEs in 10 s, never ACKed) used to fill
``[sip] max_calls`` with half-open calls that pjsip keeps for 32 s, so real callers
got 486 for most of a minute after the flood ended (issue 11). The endpoint asks
:meth:`Admission.offer` before it reports a new call; a source over a limit gets
``486 Busy Here`` at once, and nothing else of the server sees that INVITE. Limits,
each per source address:

- ``unconfirmed``: calls not yet confirmed (no ACK yet, or still ringing). This is
  what stops a flood that never ACKs: it can hold at most this many slots.
- ``calls``: calls up at once, so one source never takes the whole server: the
  slots above it stay for the other sources.
- ``rate``/``burst``: new INVITEs per second (a token bucket), so a source that does
  complete its calls cannot churn through them faster than this.

And for every source: a call we answered whose ACK has not come
``handshake_timeout`` seconds later is given up (:meth:`expired`), and its slot
counts for nobody any more.

Behind a proxy (Kamailio) every INVITE comes from the proxy's address; the endpoint
then takes the source from the ``X-Hotline-Source`` header (:func:`source_of`), but
only for packets from a configured trusted proxy.

Why 486 and not 503: a proxy that load-balances (Kamailio's dispatcher) may take a
503 as "this server is down" and stop sending it anybody's calls, which would turn
one abusive source into an outage for all.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field

SOURCE_HEADER = "X-Hotline-Source"  # "ip:port" of the original sender, set by a trusted proxy
MAX_IDLE_SOURCES = 4096  # remembered sources with no call up; beyond it, idle ones are forgotten

_HEADER = re.compile(rf"^{SOURCE_HEADER}[ \t]*:[ \t]*(\S+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    calls: int  # calls up at once from one source
    unconfirmed: int  # calls from one source not yet confirmed (ringing, or answered and not ACKed)
    rate: float  # new INVITEs per second from one source, sustained ...
    burst: int  # ... after a burst of this many
    handshake_timeout: float  # seconds from our 2xx to the ACK; then the call is given up


@dataclass(frozen=True, slots=True)
class Refuse:
    code: int  # SIP status to answer with
    reason: str  # its reason phrase, naming the limit
    limit: str  # which limit: "calls", "unconfirmed" or "rate"
    first: bool = False  # the source's first refusal since the last take_refusals()


@dataclass(slots=True)
class _Source:
    calls: set[str] = field(default_factory=set)  # legs up
    unconfirmed: set[str] = field(default_factory=set)  # legs not yet confirmed
    tokens: float = 0.0  # INVITEs it may still send at once
    at: float = 0.0  # when `tokens` was computed, seconds
    refused: int = 0  # INVITEs refused since the last report


def address(host_port: str) -> str:
    """The address of an ``ip:port`` (``[v6]:port`` too); a bare address is returned as is."""
    text = host_port.strip()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        return text.rsplit(":", 1)[0]
    return text


def valid_address(text: str) -> str | None:
    """``text`` as a normalized IP address, or None."""
    try:
        return str(ipaddress.ip_address(address(text)))
    except ValueError:
        return None


def source_of(packet_source: str, message: str, trusted: Collection[str]) -> tuple[str, str | None]:
    """(source address, problem). The packet's source address, unless it comes from a trusted
    proxy that names the original sender in X-Hotline-Source; a trusted packet without a
    valid header counts as from the proxy, and ``problem`` says why."""
    src = address(packet_source)
    if src not in trusted:
        return src, None
    head = message.split("\r\n\r\n", 1)[0]
    m = _HEADER.search(head)
    if m is None:
        return src, f"no {SOURCE_HEADER} header"
    original = valid_address(m.group(1))
    if original is None:
        return src, f"{SOURCE_HEADER} {m.group(1)[:64]!r} is not ip:port"
    return original, None


class Admission:
    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self._sources: dict[str, _Source] = {}
        self._leg_source: dict[str, str] = {}
        self._handshakes: deque[tuple[float, str]] = deque()  # (deadline, leg), deadlines in order
        self._answered: dict[str, float] = {}  # leg -> its handshake deadline

    def offer(self, leg: str, source: str, now: float) -> Refuse | None:
        """A new INVITE from ``source`` for ``leg``: None admits it (and counts it)."""
        lim = self.limits
        s = self._sources.get(source)
        if s is None:
            if len(self._sources) >= MAX_IDLE_SOURCES:
                self._forget_idle()
            s = self._sources[source] = _Source(tokens=float(lim.burst), at=now)
        s.tokens = min(float(lim.burst), s.tokens + (now - s.at) * lim.rate)
        s.at = now
        refuse = None
        if len(s.unconfirmed) >= lim.unconfirmed:
            refuse = Refuse(486, "Busy Here (too many unanswered calls from your address)", "unconfirmed")
        elif len(s.calls) >= lim.calls:
            refuse = Refuse(486, "Busy Here (too many calls from your address)", "calls")
        elif s.tokens < 1.0:
            refuse = Refuse(486, "Busy Here (calls from your address arrive too fast)", "rate")
        if refuse is not None:
            s.refused += 1
            return dataclasses.replace(refuse, first=True) if s.refused == 1 else refuse
        s.tokens -= 1.0
        s.calls.add(leg)
        s.unconfirmed.add(leg)
        self._leg_source[leg] = source
        return None

    def answered(self, leg: str, now: float) -> None:
        """We sent a 2xx: the ACK is due within handshake_timeout."""
        if leg in self._leg_source and leg not in self._answered:
            deadline = now + self.limits.handshake_timeout
            self._answered[leg] = deadline
            self._handshakes.append((deadline, leg))

    def confirmed(self, leg: str) -> None:
        """The ACK came."""
        source = self._leg_source.get(leg)
        if source is not None:
            self._sources[source].unconfirmed.discard(leg)
        self._answered.pop(leg, None)

    def ended(self, leg: str) -> None:
        source = self._leg_source.pop(leg, None)
        self._answered.pop(leg, None)
        if source is not None:
            s = self._sources[source]
            s.calls.discard(leg)
            s.unconfirmed.discard(leg)

    def next_deadline(self) -> float | None:
        while self._handshakes and self._answered.get(self._handshakes[0][1]) != self._handshakes[0][0]:
            self._handshakes.popleft()  # confirmed or ended meanwhile
        return self._handshakes[0][0] if self._handshakes else None

    def expired(self, now: float) -> list[str]:
        """Legs answered more than handshake_timeout ago without an ACK. They no longer count
        for their source: the caller of this gives them up."""
        out = []
        while (deadline := self.next_deadline()) is not None and deadline <= now:
            _, leg = self._handshakes.popleft()
            out.append(leg)
            self.ended(leg)
        return out

    def take_refusals(self) -> dict[str, int]:
        """Sources refused since the last call, with how many INVITEs (for one log line each)."""
        out = {src: s.refused for src, s in self._sources.items() if s.refused}
        for src in out:
            self._sources[src].refused = 0
        return out

    def load(self, source: str) -> tuple[int, int]:
        """(calls up, unconfirmed) for ``source``."""
        s = self._sources.get(source)
        return (len(s.calls), len(s.unconfirmed)) if s is not None else (0, 0)

    def _forget_idle(self) -> None:
        """Bound the memory a flood of spoofed source addresses can take: forget sources
        with no call up (their bucket refills to full anyway after burst/rate seconds)."""
        for src in [src for src, s in self._sources.items() if not s.calls and not s.refused]:
            del self._sources[src]
