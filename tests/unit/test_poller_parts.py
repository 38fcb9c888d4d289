"""Small pure parts of the poller: lease decisions, retry back-off, batching, heartbeat shape."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from wasched.common.topology import schedule_subject
from wasched.poller.batcher import Batcher
from wasched.poller.book import message_id_of, schedule_time
from wasched.poller.consumers import retry_delay
from wasched.poller.heartbeat import PollerState, details
from wasched.poller.lease import Sighting, lease_ttl, may_take_over, observe

TTL = 10.0


@pytest.mark.parametrize(
    ("revision", "holder", "seen", "now", "take"),
    [
        (None, None, None, 0.0, True),  # nobody holds it
        (5, "me", None, 0.0, True),  # ours (e.g. re-acquire after a blip)
        (5, "other", None, 0.0, False),  # first sighting: start counting
        (5, "other", Sighting(5, 0.0), 9.9, False),  # not stale yet
        (5, "other", Sighting(5, 0.0), 10.0, True),  # unchanged for a whole ttl
        (6, "other", Sighting(5, 0.0), 50.0, False),  # it moved: the holder is alive
    ],
)
def test_may_take_over(
    revision: int | None, holder: str | None, seen: Sighting | None, now: float, take: bool
) -> None:
    assert may_take_over(revision, holder, "me", seen, now, TTL) is take


def test_observe_restarts_the_clock_when_the_revision_moves() -> None:
    first = observe(5, None, 1.0)
    assert first == Sighting(5, 1.0)
    assert observe(5, first, 7.0) == first
    assert observe(6, first, 7.0) == Sighting(6, 7.0)
    assert observe(None, first, 7.0) is None


@pytest.mark.parametrize(("interval", "ttl"), [(60.0, 150.0), (1.0, 3.0), (0.2, 3.0), (10.0, 25.0)])
def test_lease_ttl_is_a_few_poll_intervals(interval: float, ttl: float) -> None:
    assert lease_ttl(interval) == ttl


@pytest.mark.parametrize(
    ("deliveries", "interval", "delay"),
    [
        (1, 60, 0.5),
        (2, 60, 1.0),
        (4, 60, 4.0),
        (12, 60, 60.0),
        (1, 1, 0.5),
        (5, 1, 1.0),
        (3, 0.1, 0.5),
    ],
)
def test_retry_delay_backs_off_up_to_a_poll_interval(
    deliveries: int, interval: float, delay: float
) -> None:
    assert retry_delay(deliveries, interval) == delay


def test_schedule_subjects_and_headers_read_back() -> None:
    assert message_id_of(schedule_subject("1735168500123_a1b2c3")) == "1735168500123_a1b2c3"
    assert message_id_of(schedule_subject("with space.and/dots")) == "with space.and/dots"
    assert message_id_of("wasched.sched.zz") is None
    at = schedule_time({"Nats-Schedule": "@at 2025-12-24T10:00:00.5+00:00"})
    assert at == datetime(2025, 12, 24, 10, 0, 0, 500000, tzinfo=UTC)
    assert schedule_time({"Nats-Schedule": "@every 5m"}) is None


async def test_batcher_runs_items_that_arrive_together_once() -> None:
    runs: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        runs.append(items)
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(run)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert runs == [[0, 1, 2, 3, 4]]
    assert await batcher.submit(7) == 70
    assert runs[-1] == [7]


async def test_batcher_expected_failure_reaches_every_caller_in_one_run() -> None:
    runs: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        runs.append(items)
        raise ConnectionError("S3 down")

    batcher: Batcher[int, int] = Batcher(run, expected=(ConnectionError,))
    outcomes = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert [str(o) for o in outcomes] == ["S3 down", "S3 down"]
    assert runs == [[1, 2]]  # not retried item by item: the store is down for all of them


async def test_batcher_isolates_a_poisonous_item() -> None:
    runs: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        runs.append(items)
        if 13 in items:
            raise ValueError("cannot handle 13")
        return items

    batcher: Batcher[int, int] = Batcher(run)
    outcomes = await asyncio.gather(
        *(batcher.submit(i) for i in (1, 13, 2)), return_exceptions=True
    )
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], ValueError)
    assert runs == [[1, 13, 2], [1], [13], [2]]


def test_heartbeat_has_every_field_of_the_contract() -> None:
    state = PollerState(active=True)
    state.rejected["wasched.schedule"] += 2
    found = details(state, {"network": 3})
    assert set(found) == {
        "total",
        "pending",
        "due",
        "overdue",
        "scheduledInNats",
        "oldestOverdueSeconds",
        "invalid",
        "ignored",
        "storeMode",
        "storeVersioning",
        "storeReachable",
        "editsRepaired",
        "etagHit",
        "cycleSeconds",
        "cycleCpuSeconds",
        "decided",
        "mirrorEntries",
        "mirrorBytes",
        "documentWrites",
        "lastWriteEvents",
        "lastWriteSeconds",
        "lastSuccessAt",
        "lastError",
        "documentProblem",
        "documentProblemSince",
        "active",
        "s3Errors",
        "rejectedEvents",
        "series",
    }
    assert found["rejectedEvents"] == {"wasched.schedule": 2}
    assert found["s3Errors"] == {"network": 3}
    assert found["active"] is True


def test_app_wires_without_connecting_and_documents_its_subjects() -> None:
    from wasched.common.settings import load_settings
    from wasched.poller.app import PollerApp

    settings = load_settings(_env_file=None, nats_url="nats://127.0.0.1:1", s3_bucket="wasched")
    spec = PollerApp(settings).app.schema.to_specification().to_jsonable()
    addresses = {channel["address"] for channel in spec["channels"].values()}
    assert addresses == {
        "wasched.fire",
        "wasched.outcome",
        "wasched.receipt",
        "wasched.schedule",
        "wasched.cancel",
        "wasched.due",
        "wasched.heartbeat.poller",
    }
    assert {"DueMessage", "Outcome", "Heartbeat"} <= set(spec["components"]["schemas"])


def test_heartbeat_names_the_soonest_series_with_their_next_occurrence() -> None:
    state = PollerState(active=True)
    state.series = [("bins", datetime(2026, 1, 5, 19, tzinfo=UTC))]
    assert details(state, {})["series"] == [{"id": "bins", "nextAt": "2026-01-05T19:00:00.000Z"}]
