"""Start-up checks of what the configuration exposes to the network. Pure: config in, findings out.

A bank hotline runs on an open network. A CTI token with the shipped secret, or a
short one, on an address other than loopback hands call control to anyone who can
reach the port, so ``hotline run`` refuses to start (exit 2) and says how to fix it.
On loopback (127.0.0.0/8, ::1, ``localhost``) any secret is allowed: only local
processes can connect there, as in development and the tests.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

MIN_SECRET_LENGTH = 16  # characters; shorter secrets are refused off loopback
#: secrets shipped in config.toml or examples, or that people type when asked for one
KNOWN_DEFAULTS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "secret",
        "password",
        "admin",
        "hotline",
        "token",
        "test-token",
        "s3cret",
    }
)


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # stable: "config.weak_secret" (refuses to start) or "sip.all_interfaces" (a notice)
    message: str  # what is wrong and how to fix it; never contains a secret


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only accepts local connections. "" and 0.0.0.0 / :: mean
    every interface; a host name other than localhost may resolve anywhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cti_addresses(host: str, http_port: int, http_host: str) -> list[str]:
    """The addresses the CTI listeners bind, from [cti] host, http_port and http_host: the
    socket (and TLS), and the HTTP port when it is on."""
    hosts = [host]
    if http_port:
        hosts.append(http_host or host)
    return list(dict.fromkeys(hosts))


def weak_secrets(tokens: Sequence[tuple[str, str]], addresses: Sequence[str]) -> list[Finding]:
    """One finding per (name, secret) token whose secret is a known default or shorter than
    MIN_SECRET_LENGTH, when any of the CTI ``addresses`` is not loopback."""
    public = [h for h in addresses if not is_loopback(h)]
    if not public:
        return []
    where = ", ".join(f"'{h}'" if h else "'' (every interface)" for h in public)
    findings = []
    for name, secret in tokens:
        if secret.lower() in KNOWN_DEFAULTS:
            why = "uses a well-known default secret"
        elif len(secret) < MIN_SECRET_LENGTH:
            why = f"has a secret of {len(secret)} characters (at least {MIN_SECRET_LENGTH} needed)"
        else:
            continue
        findings.append(
            Finding(
                "config.weak_secret",
                f"[[cti.tokens]] '{name}' {why}, and the CTI port listens on {where}, which is "
                f"not loopback. Fix: set its secret to a random string of {MIN_SECRET_LENGTH}+ "
                "characters (e.g. the output of `openssl rand -hex 24`), or bind [cti] host "
                "(and http_host) to 127.0.0.1",
            )
        )
    return findings


def notices(sip_host: str) -> list[Finding]:
    """Things an operator should know at start-up but that are not wrong."""
    out = []
    if sip_host in ("0.0.0.0", "::", ""):
        out.append(
            Finding(
                "sip.all_interfaces",
                f"SIP and RTP listen on every interface ([sip] host = '{sip_host}', the default); "
                "set [sip] host to one address to accept calls only there",
            )
        )
    return out
