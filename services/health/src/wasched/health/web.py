"""HTTP side: /ping, /health, /metrics and the status page.

The page can show a WhatsApp linking QR code, so with `HEALTH_TOKEN` set it
needs the token (bearer header or `?token=`). /metrics and /health stay open
for scrapers unless `HEALTH_PROTECT_ALL` is set; /ping is always open.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from wasched.common.clock import format_utc
from wasched.common.settings import Settings
from wasched.health.checks import healthy
from wasched.health.metrics import exposition
from wasched.health.monitor import Monitor

PAGE, HEALTH, METRICS, PING = "/", "/health", "/metrics", "/ping"
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
}


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authorized(token: str | None, header: str | None, query_token: str | None) -> bool:
    """No token configured: open. Otherwise the bearer header or `?token=` must match."""
    if not token:
        return True
    offered = bearer(header) or query_token
    return offered is not None and hmac.compare_digest(offered.encode(), token.encode())


def protected(path: str, settings: Settings) -> bool:
    if settings.health_token is None or path == PING:
        return False
    return path == PAGE or settings.health_protect_all


Handler = Callable[[Request], Awaitable[Response]]


def _guard(settings: Settings, path: str, handler: Handler) -> Handler:
    token = settings.health_token.get_secret_value() if settings.health_token else None

    async def guarded(request: Request) -> Response:
        if protected(path, settings) and not authorized(
            token, request.headers.get("authorization"), request.query_params.get("token")
        ):
            return PlainTextResponse(
                "a token is needed: send `Authorization: Bearer <HEALTH_TOKEN>` or add ?token=",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="wasched"', "Cache-Control": "no-store"},
            )
        return await handler(request)

    return guarded


def create_web(
    monitor: Monitor,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    async def ping(_: Request) -> Response:
        return PlainTextResponse("pong")

    async def health(_: Request) -> Response:
        results = monitor.checks()
        ok = healthy(results)
        body = {
            "status": "ok" if ok else "failing",
            "checkedAt": format_utc(monitor.clock()),
            "failing": [r.name for r in results if not r.ok],
            "checks": [r.as_dict() for r in results],
        }
        return JSONResponse(
            body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"}
        )

    async def metrics(request: Request) -> Response:
        data, content_type = exposition(monitor.registry, request.headers.get("accept"))
        return Response(data, headers={"Content-Type": content_type})

    async def page(_: Request) -> Response:
        return HTMLResponse(monitor.page(), headers=_PAGE_HEADERS)

    settings = monitor.settings
    routes = [
        Route(path, _guard(settings, path, handler), methods=["GET", "HEAD"])
        for path, handler in ((PING, ping), (HEALTH, health), (METRICS, metrics), (PAGE, page))
    ]
    return Starlette(routes=routes, lifespan=lifespan)
