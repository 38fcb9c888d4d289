"""HTTP routes and the token guard, over ASGI (the NATS side is fed directly)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from wasched.common.events import Heartbeat, SenderStatus
from wasched.common.settings import load_settings
from wasched.health.monitor import Monitor
from wasched.health.web import authorized, bearer, create_web

TOKEN = "s3cret-token"
GOOD_POLLER = {"overdue": 0, "storeReachable": True, "storeMode": "conditional"}


@pytest.mark.parametrize(
    ("token", "header", "query", "allowed"),
    [
        (None, None, None, True),
        (TOKEN, None, None, False),
        (TOKEN, f"Bearer {TOKEN}", None, True),
        (TOKEN, f"bearer   {TOKEN}  ", None, True),
        (TOKEN, "Bearer wrong", None, False),
        (TOKEN, f"Basic {TOKEN}", None, False),
        (TOKEN, None, TOKEN, True),
        (TOKEN, None, "wrong", False),
        (TOKEN, "Bearer wrong", TOKEN, False),  # the header, when sent, is what counts
    ],
)
def test_authorized(
    token: str | None, header: str | None, query: str | None, allowed: bool
) -> None:
    assert authorized(token, header, query) is allowed


def test_bearer_parsing() -> None:
    assert bearer("Bearer abc") == "abc"
    assert bearer("Bearer ") is None
    assert bearer(None) is None


async def client_for(monitor: Monitor) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_web(monitor)), base_url="http://health"
    )


@pytest.fixture
async def open_client() -> AsyncIterator[tuple[Monitor, httpx.AsyncClient]]:
    monitor = Monitor(load_settings(_env_file=None), nats_up=lambda: True)
    async with await client_for(monitor) as client:
        yield monitor, client


async def test_ping_health_metrics_and_page_without_token(
    open_client: tuple[Monitor, httpx.AsyncClient],
) -> None:
    monitor, client = open_client
    assert (await client.get("/ping")).text == "pong"
    sick = await client.get("/health")
    assert sick.status_code == 503
    assert sick.json()["failing"] == [
        "poller_heartbeat",
        "sender_state",
        "overdue_messages",
        "store_reachable",
        "schedule_document",
    ]
    monitor.on_heartbeat(Heartbeat(service="poller", details=GOOD_POLLER))
    monitor.on_status(SenderStatus(state="connected", transport="dryrun"))
    well = await client.get("/health")
    assert well.status_code == 200, well.json()
    assert well.json()["status"] == "ok" and len(well.json()["checks"]) == 5
    metrics = await client.get("/metrics")
    assert "wasched_whatsapp_connected 1.0" in metrics.text
    page = await client.get("/")
    assert page.status_code == 200 and "connected" in page.text
    assert page.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("protect_all", "path", "status_without_token"),
    [
        (False, "/", 401),
        (False, "/health", 503),
        (False, "/metrics", 200),
        (False, "/ping", 200),
        (True, "/", 401),
        (True, "/health", 401),
        (True, "/metrics", 401),
        (True, "/ping", 200),
    ],
)
async def test_token_guard(protect_all: bool, path: str, status_without_token: int) -> None:
    settings = load_settings(_env_file=None, health_token=TOKEN, health_protect_all=protect_all)
    async with await client_for(Monitor(settings)) as client:
        bare = await client.get(path)
        assert bare.status_code == status_without_token
        if bare.status_code == 401:
            assert bare.headers["www-authenticate"].startswith("Bearer")
            assert TOKEN not in bare.text
        with_header = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        with_query = await client.get(path, params={"token": TOKEN})
        wrong = await client.get(path, params={"token": "nope"})
        assert with_header.status_code != 401 and with_query.status_code != 401
        assert wrong.status_code == status_without_token


# ---- a visit with ?token= (a link from a phone) ---------------------------------------------


async def test_a_token_in_the_url_sets_a_cookie_and_redirects_to_a_clean_url() -> None:
    settings = load_settings(_env_file=None, health_token=TOKEN)
    async with await client_for(Monitor(settings)) as client:
        visit = await client.get("/", params={"token": TOKEN, "theme": "dark"})
        assert visit.status_code == 303
        assert visit.headers["location"] == "/?theme=dark"
        cookie = visit.headers["set-cookie"]
        assert TOKEN not in cookie and TOKEN not in visit.text
        for attribute in ("HttpOnly", "SameSite=lax", "Path=/"):
            assert attribute.lower() in cookie.lower()
        assert visit.headers["cache-control"] == "no-store"
        page = await client.get("/?theme=dark")  # the client keeps the cookie, as a browser does
        assert page.status_code == 200
        client.cookies.clear()
        assert (await client.get("/")).status_code == 401


async def test_a_wrong_token_in_the_url_sets_no_cookie() -> None:
    settings = load_settings(_env_file=None, health_token=TOKEN)
    async with await client_for(Monitor(settings)) as client:
        visit = await client.get("/", params={"token": "guess"})
        assert visit.status_code == 401
        assert "set-cookie" not in visit.headers
        client.cookies.set("wasched_session", TOKEN)
        assert (await client.get("/")).status_code == 401


async def test_the_cookie_stops_working_when_the_token_changes() -> None:
    first = load_settings(_env_file=None, health_token=TOKEN)
    async with await client_for(Monitor(first)) as client:
        visit = await client.get("/", params={"token": TOKEN})
        cookies = dict(visit.cookies)
    assert cookies
    rotated = load_settings(_env_file=None, health_token="a-new-token")
    async with await client_for(Monitor(rotated)) as client:
        for name, value in cookies.items():
            client.cookies.set(name, value)
        assert (await client.get("/")).status_code == 401


# ---- /health shows no phone numbers -------------------------------------------------------------


async def test_health_json_masks_phone_numbers(
    open_client: tuple[Monitor, httpx.AsyncClient],
) -> None:
    monitor, client = open_client
    monitor.on_heartbeat(
        Heartbeat(
            service="poller",
            details={
                **GOOD_POLLER,
                "storeReachable": False,
                "lastError": "bad row +44 7957 189696",
            },
        )
    )
    monitor.on_status(
        SenderStatus(state="logged_out", transport="neonize", detail="447957189696 was logged out")
    )
    body = (await client.get("/health")).text
    assert "189696" not in body.replace("…9696", "")
    assert "7957" not in body
    assert "…9696" in body
