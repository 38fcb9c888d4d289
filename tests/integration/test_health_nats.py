"""The health service against a real nats-server, fed the events the poller and sender publish."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

from tests.support.waiting import eventually
from tests.unit.test_health_page import QR, page_qr
from wasched.cli.servers import NatsServer, free_port
from wasched.common import topology
from wasched.common.events import Event, Heartbeat, Outcome, Receipt, SenderStatus
from wasched.common.messages import ErrorKind, Status
from wasched.common.settings import Settings, load_settings
from wasched.health.app import HealthService, running

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
TOKEN = "integration-token"
STALE = 2.0
GOOD_POLLER = {"pending": 1, "overdue": 0, "storeReachable": True, "storeMode": "conditional"}


def health_settings(nats_url: str, **extra: object) -> Settings:
    base: dict[str, object] = {
        "nats_url": nats_url,
        "health_host": "127.0.0.1",
        "health_port": free_port(),
        "poll_interval_seconds": 1,
        "health_stale_seconds": STALE,
        "overdue_alert_seconds": 30,
    }
    return load_settings(_env_file=None, **{**base, **extra})


@asynccontextmanager
async def health(settings: Settings) -> AsyncIterator[tuple[HealthService, httpx.AsyncClient]]:
    async with (
        running(settings) as service,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.health_port}", timeout=5) as client,
    ):
        yield service, client


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in parse_om(response.text)
        for s in family.samples
    }


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float | None:
    return (await scrape(client)).get((name, frozenset(labels.items())))


async def messages(client: httpx.AsyncClient, status: str, kind: str = "") -> float | None:
    return await metric(client, "wasched_messages_total", status=status, error_kind=kind)


async def publish_durably(js: JetStreamContext, subject: str, event: Event, msg_id: str) -> None:
    await js.publish(subject, event.to_json(), headers={"Nats-Msg-Id": msg_id})


async def outcome(js: JetStreamContext, ident: str, status: Status, **extra: Any) -> None:
    event = Outcome(id=ident, status=status, **extra)
    await publish_durably(js, topology.OUTCOME, event, f"outcome:{ident}:{status.value}")


@asynccontextmanager
async def beating(beat: Callable[[], Awaitable[None]], every: float) -> AsyncIterator[None]:
    """Publish like a live service until the block exits."""

    async def loop() -> None:
        while True:
            await beat()
            await asyncio.sleep(every)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def poller_beat(nc: NATS, details: dict[str, Any]) -> Callable[[], Awaitable[None]]:
    async def beat() -> None:
        event = Heartbeat(service="poller", details=details)
        await nc.publish(topology.heartbeat_subject("poller"), event.to_json())

    return beat


def sender_beat(nc: NATS, state: str = "connected", **extra: Any) -> Callable[[], Awaitable[None]]:
    async def beat() -> None:
        status = SenderStatus(state=state, transport="dryrun", **extra)  # type: ignore[arg-type]
        await nc.publish(topology.SENDER_STATUS, status.to_json())

    return beat


async def health_json(client: httpx.AsyncClient) -> tuple[int, list[str]]:
    response = await client.get("/health")
    return response.status_code, response.json()["failing"]


async def test_outcomes_are_counted_once_across_a_restart_of_the_health_service(
    nats_url: str, js: JetStreamContext
) -> None:
    settings = health_settings(nats_url)
    async with health(settings) as (_, client):
        await outcome(js, "m1", Status.SENT, lateness_seconds=0.2, to="447957189696")
        await outcome(js, "m1", Status.SENT, lateness_seconds=0.2)  # duplicate publish
        await outcome(js, "m2", Status.SENT, lateness_seconds=3.5)
        await outcome(js, "m3", Status.FAILED, error_kind=ErrorKind.NOT_ON_WHATSAPP)
        receipt = Receipt(id="m1", kind="read", at=Outcome(id="x", status=Status.SENT).at)
        await publish_durably(js, topology.RECEIPT, receipt, "receipt:m1:read")

        async def counted() -> bool:
            read = await metric(client, "wasched_receipts_total", kind="read")
            return await messages(client, "sent") == 2 and read == 1

        await eventually(counted, what="2 sent and 1 read counted")
        assert await messages(client, "failed", "not_on_whatsapp") == 1
        assert await metric(client, "wasched_send_lateness_seconds_count") == 2
        assert await metric(client, "wasched_send_lateness_seconds_bucket", le="0.25") == 1
        assert await metric(client, "wasched_send_lateness_seconds_bucket", le="5.0") == 2

    # Down: outcomes keep coming and must be counted when it is back, the old ones not again.
    await outcome(js, "m4", Status.SENT, lateness_seconds=0.1)
    await outcome(js, "m5", Status.EXPIRED, error_kind=ErrorKind.EXPIRED)
    async with health(settings) as (_, client):
        await outcome(js, "marker", Status.CANCELLED)  # delivered after everything before it

        async def marker_counted() -> bool:
            return await messages(client, "cancelled") == 1

        await eventually(marker_counted, what="the marker outcome counted")
        assert await messages(client, "sent") == 1
        assert await messages(client, "expired", "expired") == 1
        assert await messages(client, "failed", "not_on_whatsapp") == 0
        page = (await client.get("/")).text
        assert "marker" in page and "m4" in page and "m1" not in page

        async def all_acked() -> bool:
            info = await js.consumer_info(topology.STREAM, topology.HEALTH_OUTCOME)
            return info.num_ack_pending == 0 and info.num_pending == 0

        await eventually(all_acked, what="every outcome acked by the health consumer")


async def test_health_turns_503_when_the_poller_falls_silent_and_back_when_it_returns(
    nats_url: str, nc: NATS
) -> None:
    async with health(health_settings(nats_url)) as (_, client), beating(sender_beat(nc), 0.5):
        async with beating(poller_beat(nc, GOOD_POLLER), 0.3):
            await eventually(lambda: _is(client, 200), what="/health 200 while all beat")
            assert await metric(client, "wasched_component_up", component="poller") == 1
        silent_since = time.monotonic()
        status, failing = await eventually(lambda: _failing(client), timeout=STALE + 5)
        waited = time.monotonic() - silent_since
        assert status == 503 and failing == ["poller_heartbeat"]
        assert waited <= STALE + 1.5, f"503 only after {waited:.1f}s (bound {STALE}s)"
        assert await metric(client, "wasched_component_up", component="poller") == 0
        async with beating(poller_beat(nc, GOOD_POLLER), 0.3):
            await eventually(lambda: _is(client, 200), what="/health 200 again")


async def test_health_turns_503_when_a_pending_message_is_overdue_beyond_the_threshold(
    nats_url: str, nc: NATS
) -> None:
    """The "two silent hours" case: everything alive, yet a message is not going out."""
    late = {**GOOD_POLLER, "overdue": 1, "oldestOverdueSeconds": 7200}
    async with health(health_settings(nats_url)) as (_, client), beating(sender_beat(nc), 0.5):
        async with beating(poller_beat(nc, late), 0.3):
            await eventually(
                lambda: _failing_only(client, ["overdue_messages"]), what="503 for overdue only"
            )
            body = (await client.get("/health")).json()
            overdue = next(c for c in body["checks"] if c["name"] == "overdue_messages")
            assert "oldest by 7200s (limit 30s)" in overdue["detail"]
            assert await metric(client, "wasched_oldest_overdue_seconds") == 7200
        async with beating(poller_beat(nc, GOOD_POLLER), 0.3):
            await eventually(lambda: _is(client, 200), what="/health 200 once sent")


async def test_counting_resumes_after_nats_restarts(
    nats_url: str, nats_server_proc: NatsServer, js: JetStreamContext, nc: NATS
) -> None:
    async with health(health_settings(nats_url)) as (service, client):
        await outcome(js, "before", Status.SENT)
        await eventually(lambda: _sent(client, 1), what="first outcome counted")
        nats_server_proc.stop()
        await eventually(lambda: not service.monitor.nats_up(), what="disconnect noticed")
        assert await metric(client, "wasched_component_up", component="nats") == 0
        nats_server_proc.start()
        await eventually(lambda: nc.is_connected and service.monitor.nats_up(), timeout=15)
        await outcome(js, "after", Status.SENT)
        await eventually(lambda: _sent(client, 2), timeout=20, what="outcome after restart counted")


async def test_pairing_qr_from_nats_is_on_the_page_behind_the_token(
    nats_url: str, nc: NATS
) -> None:
    settings = health_settings(nats_url, health_token=TOKEN)
    async with health(settings) as (_, client):
        await sender_beat(nc, "pairing", qr=QR, pair_code="WXYZ-1234")()
        assert (await client.get("/")).status_code == 401
        assert (await client.get("/metrics")).status_code == 200  # scrapers stay open

        visit = await client.get("/", params={"token": TOKEN})  # a link with the token
        assert visit.status_code == 303  # sets the session cookie, which the client keeps

        async def shows_qr() -> str | None:
            page = await client.get("/")
            return page.text if 'id="qr"' in page.text else None

        html = await eventually(shows_qr, what="QR on the page")
        assert page_qr(html) == [QR]
        assert "WXYZ-1234" in html
        assert await metric(client, "wasched_whatsapp_state", state="pairing") == 1

        await sender_beat(nc, "connected")()

        async def linked() -> bool:
            page = await client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
            return 'id="qr"' not in page.text and ">connected<" in page.text

        await eventually(linked, what="page shows connected, no QR")


async def _is(client: httpx.AsyncClient, status: int) -> bool:
    return (await client.get("/health")).status_code == status


async def _failing(client: httpx.AsyncClient) -> tuple[int, list[str]] | None:
    status, failing = await health_json(client)
    return (status, failing) if status == 503 else None


async def _failing_only(client: httpx.AsyncClient, names: list[str]) -> bool:
    return await health_json(client) == (503, names)


async def _sent(client: httpx.AsyncClient, count: int) -> bool:
    return await messages(client, "sent") == count


pytestmark = pytest.mark.timeout(60)
