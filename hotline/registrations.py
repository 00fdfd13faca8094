"""Registrations and the edge guard, as hotline sees them: a pure core.

The adapter (:mod:`hotline.proxy`) reads Kamailio's location table and the guard's
``blocked``/``flooding`` tables every ``[proxy] poll_interval`` seconds and hands each
snapshot here with the wall-clock ``now``; what changed comes back as events. No I/O,
no clock reads: tests step ``now``.

- :class:`RegistrationTable` diffs contacts into ``agent.registered`` / ``agent.unregistered``.
- :class:`GuardTable` diffs blocked and flooding source addresses into :class:`GuardChange`.
- :func:`agents_to_park` says which logged-in agents must go not_ready ("unregistered").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

EXPIRY_SLACK = 2.0  # seconds: a contact gone this close to its expiry counts as expired


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    """One phone registered for an AOR (a row of Kamailio's location table)."""

    uri: str  # the Contact the phone registered
    expires: float  # epoch seconds when the registration lapses
    user_agent: str  # the phone's User-Agent header
    received: str  # where the REGISTER came from, "sip:ip:port;transport=..." ("" if direct)
    transport: str  # udp, tcp or tls (from the socket it arrived on)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRegistered:
    """An agent's softphone registered (or moved to another contact)."""

    wire: ClassVar[str] = "agent.registered"
    agent_id: str  # the agent (its id is the SIP username)
    contact: str  # the Contact URI the phone registered
    user_agent: str  # the phone's User-Agent
    transport: str  # udp, tcp or tls
    source: str  # the address the REGISTER came from, "ip:port"
    expires: float  # seconds the registration lasts from now, unless refreshed


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentUnregistered:
    """An agent's softphone is no longer registered."""

    wire: ClassVar[str] = "agent.unregistered"
    agent_id: str  # the agent
    contact: str  # the Contact URI that is gone
    user_agent: str  # the phone's User-Agent
    reason: str  # "expired" (not refreshed in time) or "unregistered" (the phone said so)
    registered: bool  # true when the agent still has another phone registered


RegistrationEvent = AgentRegistered | AgentUnregistered


def _source(received: str, uri: str) -> str:
    """'sip:127.0.0.1:40312;transport=tls' -> '127.0.0.1:40312' (the contact's host if direct)."""
    text = received or uri
    text = text.split(":", 1)[1] if text.startswith(("sip:", "sips:")) else text
    text = text.split("@", 1)[1] if "@" in text else text
    return text.split(";", 1)[0]


class RegistrationTable:
    """What is registered, per agent, as of the last snapshot."""

    def __init__(self, agents: Iterable[str]) -> None:
        self.agents = frozenset(agents)  # AORs that are agents; others are ignored
        self._contacts: dict[str, dict[str, Contact]] = {}

    def update(self, snapshot: Mapping[str, Sequence[Contact]], now: float) -> list[RegistrationEvent]:
        """The whole location table now (AOR -> contacts); events for what changed."""
        out: list[RegistrationEvent] = []
        for aor in sorted(self.agents):
            before = self._contacts.get(aor, {})
            after = {c.uri: c for c in snapshot.get(aor, ())}
            for uri, gone in before.items():
                if uri not in after:
                    reason = "expired" if gone.expires <= now + EXPIRY_SLACK else "unregistered"
                    out.append(
                        AgentUnregistered(
                            agent_id=aor,
                            contact=uri,
                            user_agent=gone.user_agent,
                            reason=reason,
                            registered=bool(after),
                        )
                    )
            for uri, new in after.items():
                if uri not in before:
                    out.append(
                        AgentRegistered(
                            agent_id=aor,
                            contact=uri,
                            user_agent=new.user_agent,
                            transport=new.transport,
                            source=_source(new.received, uri),
                            expires=max(0.0, round(new.expires - now, 1)),
                        )
                    )
            if after:
                self._contacts[aor] = after
            else:
                self._contacts.pop(aor, None)
        return out

    def is_registered(self, agent_id: str) -> bool:
        return bool(self._contacts.get(agent_id))

    def contacts(self, agent_id: str) -> list[Contact]:
        return list(self._contacts.get(agent_id, {}).values())


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardChange:
    """A source address started or stopped being held off by the edge guard."""

    kind: str  # "blocked" (failed authentications) or "flood" (over a rate limit)
    source: str  # the IP address
    active: bool  # true: it started; false: it is over
    value: int  # failed authentications (blocked) or requests in the window (flood)


class GuardTable:
    """Blocked and flooding sources as of the last snapshot."""

    def __init__(self) -> None:
        self._seen: dict[str, dict[str, int]] = {"blocked": {}, "flood": {}}

    def update(self, blocked: Mapping[str, int], flooding: Mapping[str, int]) -> list[GuardChange]:
        out: list[GuardChange] = []
        for kind, now in (("blocked", blocked), ("flood", flooding)):
            before = self._seen[kind]
            out += [
                GuardChange(kind=kind, source=ip, active=True, value=n)
                for ip, n in sorted(now.items())
                if ip not in before
            ]
            out += [
                GuardChange(kind=kind, source=ip, active=False, value=n)
                for ip, n in sorted(before.items())
                if ip not in now
            ]
            self._seen[kind] = dict(now)
        return out

    def active(self, kind: str) -> dict[str, int]:
        return dict(self._seen[kind])


PARK_STATES = frozenset({"available", "wrap_up"})  # states an unregistered agent is moved out of


def agents_to_park(states: Mapping[str, str], registering: Iterable[str], registered: set[str]) -> list[str]:
    """Agents who ring at their registered AOR, are available or in wrap-up, and have no
    phone registered: they go not_ready ("unregistered"). Level-triggered, so an agent
    whose phone lapsed mid-call is parked once the call is over."""
    return sorted(a for a in registering if states.get(a) in PARK_STATES and a not in registered)
