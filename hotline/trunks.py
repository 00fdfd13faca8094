"""Carrier trunks ([[trunks]]): how callbacks and click-to-dial reach a customer."""

from __future__ import annotations

from typing import Any

from .config import Config


def customer_dial(config: Config, number: str) -> tuple[str, str]:
    """(SIP URI, trunk name or "") for calling ``number`` (a SIP URI is dialled as it is), as
    the call controller dials customers: through ``[callbacks] trunk`` on its account (its
    credentials answer the carrier's challenges), otherwise ``[callbacks] dial_uri``."""
    if number.startswith(("sip:", "sips:")):
        return number, ""
    return customer_dial_uri(config).format(number=number), config.callbacks.trunk


def customer_dial_uri(config: Config) -> str:
    """The template ``{number}`` -> SIP URI the call controller dials customers with: the
    ``[callbacks] trunk``'s host, or ``[callbacks] dial_uri``."""
    name = config.callbacks.trunk
    if not name:
        return config.callbacks.dial_uri
    trunk = next(t for t in config.trunks if t.name == name)
    return f"sip:{{number}}@{trunk.host};transport={trunk.transport}"


def trunk_specs(config: Config) -> tuple[Any, ...]:
    """The endpoint's view of [[trunks]]: behind the proxy, a registration's Contact is the
    proxy's public address, so the carrier's calls come in through the edge."""
    import telephony

    from .proxy import public_host

    contact = f"{public_host(config)}:{config.sip.port}" if config.proxy is not None else ""
    return tuple(
        telephony.trunk_spec(
            name=t.name,
            host=t.host,
            username=t.username,
            password=t.password,
            realm=t.realm,
            register=t.register,
            registrar=t.registrar,
            expires=t.expires,
            transport=t.transport,
            from_user=t.from_user,
            contact_host=contact,
        )
        for t in config.trunks
    )
