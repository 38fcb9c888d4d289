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
