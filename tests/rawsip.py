"""A minimal SIP user agent over raw UDP, for messages no real peer would send.

SIPp and baresip only send well-formed SIP; the fault tests need INVITEs with
bytes that are not UTF-8, broken headers, floods that never ACK. This client
builds requests byte by byte, reads the responses it needs (status, To tag)
and can complete a call (ACK, BYE) so the server's call record closes. It binds
a loopback address of the test's choice (127.0.0.2, ... are distinct sources).
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from dataclasses import dataclass, field


@dataclass
class Response:
    code: int
    reason: bytes
    headers: dict[bytes, bytes]  # lower-case name -> the first value
    raw: bytes


@dataclass
class Dialog:
    call_id: bytes
    from_tag: bytes
    from_header: bytes
    to_header: bytes  # with the server's tag once answered
    request_uri: bytes
    cseq: int = 1
    branch: bytes = b""
    responses: list[Response] = field(default_factory=list)


def parse_response(data: bytes) -> Response | None:
    head, _, _body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    m = re.match(rb"SIP/2\.0 (\d{3}) ?(.*)", lines[0])
    if m is None:
        return None
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    return Response(int(m.group(1)), m.group(2), headers, data)


class RawSip:
    """One UDP socket on ``host`` (an ephemeral port) talking to the server at ``server``."""

    def __init__(self, server: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()
        self.backlog: list[bytes] = []  # datagrams read while waiting for another dialog

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def via(self, branch: bytes) -> bytes:
        return f"Via: SIP/2.0/UDP {self.host}:{self.port};rport;branch=".encode() + branch

    def invite(
        self,
        *,
        user: bytes = b"5550100",
        display: bytes = b"",
        call_id: bytes | None = None,
        to_user: bytes = b"hotline",
        extra_headers: tuple[bytes, ...] = (),
        sdp_session_name: bytes = b"-",
    ) -> Dialog:
        """Send an INVITE (with an audio offer) and return its dialog; read the answer with
        :meth:`wait`."""
        host, port = self.server
        call_id = call_id or secrets.token_hex(8).encode() + b"@rawsip"
        tag = secrets.token_hex(4).encode()
        uri = b"sip:" + to_user + f"@{host}:{port}".encode()
        from_header = (b'"' + display + b'" ' if display else b"") + (
            b"<sip:" + user + f"@{self.host}:{self.port}>;tag=".encode() + tag
        )
        to_header = b"<" + uri + b">"
        sdp = (
            f"v=0\r\no=rawsip 1 1 IN IP4 {self.host}\r\n".encode()
            + b"s="
            + sdp_session_name
            + f"\r\nc=IN IP4 {self.host}\r\nt=0 0\r\nm=audio 9 RTP/AVP 0 101\r\n".encode()
            + b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        )
        d = Dialog(
            call_id, tag, from_header, to_header, uri, branch=b"z9hG4bK" + secrets.token_hex(6).encode()
        )
        self.send(
            b"\r\n".join(
                [
                    b"INVITE " + uri + b" SIP/2.0",
                    self.via(d.branch),
                    b"Max-Forwards: 70",
                    b"From: " + from_header,
                    b"To: " + to_header,
                    b"Call-ID: " + call_id,
                    b"CSeq: 1 INVITE",
                    b"Contact: <sip:" + user + f"@{self.host}:{self.port}>".encode(),
                    b"Content-Type: application/sdp",
                    *extra_headers,
                    f"Content-Length: {len(sdp)}".encode(),
                    b"",
                    sdp,
                ]
            )
        )
        return d

    def wait(self, d: Dialog, codes: range | set[int], timeout: float = 5.0) -> Response | None:
        """Read until a response of ``d`` with a code in ``codes`` arrives (None on timeout).
        Responses to other dialogs are kept in :attr:`backlog`; server requests (BYE) are
        answered 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for data in list(self.backlog):
                r = parse_response(data)
                if r is not None and r.headers.get(b"call-id") == d.call_id:
                    self.backlog.remove(data)
                    if self._take(d, r, codes):
                        return r
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            if not data.startswith(b"SIP/2.0"):
                self._answer_request(data)
                continue
            r = parse_response(data)
            if r is None:
                continue
            if r.headers.get(b"call-id") != d.call_id:
                self.backlog.append(data)
                continue
            if self._take(d, r, codes):
                return r
        return None

    def _take(self, d: Dialog, r: Response, codes: range | set[int]) -> bool:
        d.responses.append(r)
        if r.code >= 200 and b"tag=" in r.headers.get(b"to", b""):
            d.to_header = r.headers[b"to"]
        return r.code in codes

    def _answer_request(self, data: bytes) -> None:
        """A BYE (or anything) from the server: 200 OK with its Via/From/To/Call-ID/CSeq."""
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        if head[0].startswith(b"ACK"):
            return
        keep = [line for line in head[1:] if line.split(b":", 1)[0].strip().lower() in KEEP]
        self.send(b"\r\n".join([b"SIP/2.0 200 OK", *keep, b"Content-Length: 0", b"", b""]))

    def ack(self, d: Dialog) -> None:
        self.send(
            b"\r\n".join(
                [
                    b"ACK " + d.request_uri + b" SIP/2.0",
                    self.via(b"z9hG4bK" + secrets.token_hex(6).encode()),
                    b"Max-Forwards: 70",
                    b"From: " + d.from_header,
                    b"To: " + d.to_header,
                    b"Call-ID: " + d.call_id,
                    b"CSeq: 1 ACK",
                    b"Content-Length: 0",
                    b"",
                    b"",
                ]
            )
        )

    def bye(self, d: Dialog) -> None:
        d.cseq += 1
        self.send(
            b"\r\n".join(
                [
                    b"BYE " + d.request_uri + b" SIP/2.0",
                    self.via(b"z9hG4bK" + secrets.token_hex(6).encode()),
                    b"Max-Forwards: 70",
                    b"From: " + d.from_header,
                    b"To: " + d.to_header,
                    b"Call-ID: " + d.call_id,
                    f"CSeq: {d.cseq} BYE".encode(),
                    b"Content-Length: 0",
                    b"",
                    b"",
                ]
            )
        )

    def call(self, timeout: float = 5.0, **invite: bytes) -> Dialog:
        """INVITE, wait for the 200 and ACK it: an answered call (raises if not answered)."""
        d = self.invite(**invite)  # type: ignore[arg-type]
        r = self.wait(d, range(200, 700), timeout)
        if r is None or r.code != 200:
            got = [x.code for x in d.responses]
            raise AssertionError(f"INVITE {d.call_id!r} not answered 200 (got {got})")
        self.ack(d)
        return d

    def hang_up(self, d: Dialog, timeout: float = 5.0) -> None:
        """BYE and wait for its 200."""
        self.bye(d)
        if self.wait(d, {200, 481}, timeout) is None:
            raise AssertionError(f"BYE {d.call_id!r} not answered")


KEEP = {b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq"}
