"""Reading JSON bodies from HTTP peers (the CRM profile lookup, a flow's `lookup`): bounded
and made safe where they enter, like SIP headers (telephony/sanitize.py) and CTI lines
(cti_bridge.load_json).

A peer's body is read up to :data:`MAX_BODY` bytes (after decompression, so a gzip bomb
stops there too), parsed within the CTI limits on nesting and number size, and every
string is made encodable (an escaped lone surrogate ``"\\udcf9"`` becomes the text
``\\udcf9``), so nothing downstream can fail on what a peer sent.
"""

from __future__ import annotations

from typing import Any

import aiohttp

import cti_bridge

MAX_BODY = 1 << 20  # bytes of one HTTP response body


async def read_json(resp: aiohttp.ClientResponse, limit: int = MAX_BODY) -> Any:
    """The response's JSON body; raises ValueError (too big, not JSON, beyond a limit)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise cti_bridge.JsonLimitError(f"the body is larger than {limit} bytes (the limit)")
        chunks.append(chunk)
    return cti_bridge.json_safe(cti_bridge.load_json(b"".join(chunks), max_bytes=limit))
