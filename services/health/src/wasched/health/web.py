"""HTTP side: /ping, /health, /metrics and the status page.

The page can show a WhatsApp linking QR code, so with `HEALTH_TOKEN` set it
needs the token: a bearer header, or a visit with `?token=`, which sets a
session cookie and redirects to the same URL without the token (so it stays out
of the browser's history and the address bar). Without a token the service
serves only on a loopback address (`bind_refusal`). /metrics and /health stay
open for scrapers unless `HEALTH_PROTECT_ALL` is set; /ping is always open.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from wasched.common.clock import format_utc
from wasched.common.settings import Settings
from wasched.health.checks import healthy
from wasched.health.metrics import exposition
from wasched.health.monitor import Monitor
from wasched.health.page import scrub

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


COOKIE = "wasched_session"
COOKIE_DAYS = 30


def session_value(token: str) -> str:
    """What the cookie holds: derived from the token, never the token itself; a new token
    ends every session."""
    return hmac.new(token.encode(), b"wasched status page session", hashlib.sha256).hexdigest()


def authorized(
    token: str | None, header: str | None, query_token: str | None, cookie: str | None = None
) -> bool:
    """No token configured: open. Otherwise the bearer header, `?token=` or the session
    cookie must match (the header, when sent, is what counts)."""
    if not token:
        return True
    offered = bearer(header) or query_token
    if offered is not None:
        return hmac.compare_digest(offered.encode(), token.encode())
    return cookie is not None and hmac.compare_digest(
        cookie.encode(), session_value(token).encode()
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def bind_refusal(settings: Settings) -> str | None:
    """Why the service must not start: an open status page hands out the WhatsApp account."""
    if settings.health_token is not None or is_loopback(settings.health_host):
        return None
    return (
        f"refusing to serve on HEALTH_HOST={settings.health_host} without HEALTH_TOKEN: "
        "whoever reaches the status page could scan its QR code and link their own phone; "
        "set HEALTH_TOKEN (or HEALTH_TOKEN_FILE), or HEALTH_HOST=127.0.0.1"
    )


def protected(path: str, settings: Settings) -> bool:
    if settings.health_token is None or path == PING:
        return False
    return path == PAGE or settings.health_protect_all


Handler = Callable[[Request], Awaitable[Response]]


def _guard(settings: Settings, path: str, handler: Handler) -> Handler:
    token = settings.health_token.get_secret_value() if settings.health_token else None

    async def guarded(request: Request) -> Response:
        if not protected(path, settings):
            return await handler(request)
        offered = request.query_params.get("token")
        if not authorized(
            token, request.headers.get("authorization"), offered, request.cookies.get(COOKIE)
        ):
            return PlainTextResponse(
                "a token is needed: send `Authorization: Bearer <HEALTH_TOKEN>` or add ?token=",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="wasched"', "Cache-Control": "no-store"},
            )
        if path == PAGE and offered is not None and token:
            return _start_session(request, token)
        return await handler(request)

    return guarded


def _start_session(request: Request, token: str) -> Response:
    """The same page without `?token=`, with a cookie that lets the browser in."""
    rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    location = request.url.path + (f"?{urlencode(rest)}" if rest else "")
    response = RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(
        COOKIE,
        session_value(token),
        max_age=COOKIE_DAYS * 86400,
        path="/",
        httponly=True,
        samesite="lax",  # sent when a link from a chat app opens the page; the page only reads
        secure=secure,
    )
    return response


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
            "checks": [{**r.as_dict(), "detail": scrub(r.detail)} for r in results],
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
