"""The floor's web pages, served on the CTI HTTP port: `/agent` and `/wallboard`.

Plain HTML and JavaScript (no build step, nothing from a CDN) talking the CTI protocol over
the WebSocket at `/cti`. :func:`add_routes` is the one hook the HTTP server calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent
PAGES = {"/agent": "agent.html", "/wallboard": "wallboard.html"}
HEADERS = {
    "Cache-Control": "no-store",
    # everything is served from here; the token never leaves for another origin
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / name, headers=HEADERS)

    return serve


async def _asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in (".js", ".css") or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers=HEADERS)


def add_routes(app: web.Application) -> None:
    """`/agent`, `/wallboard` and their scripts and style under `/web/`."""
    for route, name in PAGES.items():
        app.router.add_get(route, _page(name))
    app.router.add_get("/web/{name}", _asset)
