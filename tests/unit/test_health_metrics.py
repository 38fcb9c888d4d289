"""/metrics content, fed through the same Monitor the NATS handlers use (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from wasched.common.events import Heartbeat, Outcome, Receipt, SenderStatus
from wasched.common.messages import ErrorKind, Status
from wasched.common.settings import load_settings
from wasched.health.metrics import LATENESS_BUCKETS, exposition
from wasched.health.monitor import Monitor

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
Key = tuple[str, frozenset[tuple[str, str]]]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def monitor(clock: Clock) -> Monitor:
    settings = load_settings(_env_file=None, poll_interval_seconds=10)
    return Monitor(settings, nats_up=lambda: True, clock=clock)


def scrape(monitor: Monitor) -> dict[Key, float]:
    """Parse the OpenMetrics exposition with prometheus-client's strict parser."""
    data, content_type = exposition(monitor.registry, OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in parse_om(data.decode())
        for s in family.samples
    }


def value(samples: dict[Key, float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def poller_beat(**details: object) -> Heartbeat:
    base = {
        "pending": 5,
        "overdue": 1,
        "oldestOverdueSeconds": 12.5,
        "scheduledInNats": 4,
        "storeMode": "conditional",
        "storeReachable": True,
        "cycleSeconds": 0.2,
        "lastSuccessAt": "2025-12-24T09:59:58.000Z",
        "s3Errors": {},
        "rejectedEvents": {},
    }
    return Heartbeat(service="poller", details={**base, **details})


def test_outcomes_count_by_status_and_kind_once_each(monitor: Monitor) -> None:
    events = [
        Outcome(id="a", status=Status.SENT, lateness_seconds=0.03),
        # redelivered: the same (id, status) again
        Outcome(id="a", status=Status.SENT, lateness_seconds=0.03),
        Outcome(id="b", status=Status.SENT, lateness_seconds=0.4),
        Outcome(id="c", status=Status.SENT, lateness_seconds=7),
        Outcome(id="d", status=Status.FAILED, error_kind=ErrorKind.NOT_ON_WHATSAPP),
        Outcome(id="e", status=Status.EXPIRED, error_kind=ErrorKind.EXPIRED),
        Outcome(id="f", status=Status.CANCELLED),
        Outcome(id="g", status=Status.PENDING),
    ]
    for event in events:
        monitor.on_outcome(event)
    monitor.on_receipt(Receipt(id="a", kind="delivered", at=monitor.clock()))
    monitor.on_receipt(Receipt(id="a", kind="delivered", at=monitor.clock()))
    monitor.on_receipt(Receipt(id="a", kind="read", at=monitor.clock()))
    s = scrape(monitor)
    assert value(s, "wasched_messages_total", status="sent", error_kind="") == 3
    assert value(s, "wasched_messages_total", status="failed", error_kind="not_on_whatsapp") == 1
    assert value(s, "wasched_messages_total", status="failed", error_kind="interrupted") == 0
    assert value(s, "wasched_messages_total", status="expired", error_kind="expired") == 1
    assert value(s, "wasched_messages_total", status="cancelled", error_kind="") == 1
    assert not any(k[0] == "wasched_messages_total" and ("status", "pending") in k[1] for k in s)
    assert value(s, "wasched_receipts_total", kind="delivered") == 1
    assert value(s, "wasched_receipts_total", kind="read") == 1
    assert value(s, "wasched_send_lateness_seconds_count") == 3
    assert value(s, "wasched_send_lateness_seconds_sum") == pytest.approx(7.43)
    assert value(s, "wasched_send_lateness_seconds_bucket", le="0.05") == 1
    assert value(s, "wasched_send_lateness_seconds_bucket", le="0.5") == 2
    assert value(s, "wasched_send_lateness_seconds_bucket", le="10.0") == 3


def test_lateness_buckets_span_50ms_to_a_day() -> None:
    assert LATENESS_BUCKETS[0] == 0.05
    assert LATENESS_BUCKETS[-1] == 86400
    assert list(LATENESS_BUCKETS) == sorted(LATENESS_BUCKETS)


def test_poller_heartbeat_becomes_gauges(monitor: Monitor) -> None:
    monitor.on_heartbeat(poller_beat())
    s = scrape(monitor)
    assert value(s, "wasched_pending_messages") == 5
    assert value(s, "wasched_overdue_messages") == 1
    assert value(s, "wasched_oldest_overdue_seconds") == 12.5
    assert value(s, "wasched_scheduled_in_nats") == 4
    assert value(s, "wasched_store_conditional_writes") == 1
    stamp = datetime(2025, 12, 24, 9, 59, 58, tzinfo=UTC).timestamp()
    assert value(s, "wasched_poll_last_success_timestamp_seconds") == stamp
    assert value(s, "wasched_component_up", component="poller") == 1
    assert value(s, "wasched_component_up", component="store") == 1
    monitor.on_heartbeat(poller_beat(storeMode="merge"))
    assert value(scrape(monitor), "wasched_store_conditional_writes") == 0


def test_ignored_messages_are_a_gauge_by_reason(monitor: Monitor) -> None:
    monitor.on_heartbeat(poller_beat(ignored={"unknown_status": 2, "no_status": 1}))
    s = scrape(monitor)
    assert value(s, "wasched_messages_ignored", reason="unknown_status") == 2
    assert value(s, "wasched_messages_ignored", reason="no_status") == 1
    assert value(s, "wasched_messages_ignored", reason="bad_id") == 0


def test_a_poll_cycle_is_observed_once_however_often_it_heartbeats(
    monitor: Monitor, clock: Clock
) -> None:
    for _ in range(3):
        monitor.on_heartbeat(poller_beat(lastSuccessAt="2025-12-24T10:00:00Z", cycleSeconds=0.2))
    monitor.on_heartbeat(poller_beat(lastSuccessAt="2025-12-24T10:01:00Z", cycleSeconds=3.0))
    s = scrape(monitor)
    assert value(s, "wasched_poll_cycle_seconds_count") == 2
    assert value(s, "wasched_poll_cycle_seconds_sum") == pytest.approx(3.2)


def test_cumulative_counters_survive_a_poller_restart(monitor: Monitor) -> None:
    seen = []
    for errors in ({"timeout": 2}, {"timeout": 5, "auth": 1}, {"timeout": 1}, {"timeout": 3}):
        monitor.on_heartbeat(poller_beat(s3Errors=errors, rejectedEvents={"wasched.send": 1}))
        seen.append(value(scrape(monitor), "wasched_s3_errors_total", kind="timeout"))
    assert seen == [2, 5, 5 + 1, 5 + 3]  # 5 before the restart, then 1 → 3 in the new run
    s = scrape(monitor)
    assert value(s, "wasched_s3_errors_total", kind="auth") == 1
    monitor.on_heartbeat(
        Heartbeat(service="sender", details={"rejectedEvents": {"wasched.send": 4}})
    )
    assert value(scrape(monitor), "wasched_rejected_events_total", subject="wasched.send") == 1 + 4


def test_whatsapp_state_is_one_hot_and_goes_dark_when_silent(
    monitor: Monitor, clock: Clock
) -> None:
    monitor.on_status(SenderStatus(state="pairing", qr="2@x"))
    s = scrape(monitor)
    on = [k for k, v in s.items() if k[0] == "wasched_whatsapp_state" and v == 1]
    assert on == [("wasched_whatsapp_state", frozenset({("state", "pairing")}))]
    assert value(s, "wasched_whatsapp_connected") == 0
    monitor.on_status(SenderStatus(state="connected"))
    s = scrape(monitor)
    assert value(s, "wasched_whatsapp_connected") == 1
    assert value(s, "wasched_whatsapp_state", state="connected") == 1
    assert value(s, "wasched_whatsapp_state", state="pairing") == 0
    clock.advance(60)
    s = scrape(monitor)
    assert value(s, "wasched_whatsapp_connected") == 0
    assert value(s, "wasched_component_up", component="sender") == 0
    assert value(s, "wasched_health_check_ok", check="sender_state") == 0


def test_component_down_after_the_staleness_bound(monitor: Monitor, clock: Clock) -> None:
    monitor.on_heartbeat(poller_beat())
    clock.advance(29)  # poll interval 10 s → stale after 30 s
    assert value(scrape(monitor), "wasched_component_up", component="poller") == 1
    clock.advance(2)
    s = scrape(monitor)
    assert value(s, "wasched_component_up", component="poller") == 0
    assert value(s, "wasched_heartbeat_age_seconds", component="poller") == 31


def test_no_phone_numbers_ids_or_text_in_labels(monitor: Monitor) -> None:
    phone, ident, text = "447957189696", "order-4711-secret", "Happy birthday Anna"
    monitor.on_outcome(Outcome(id=ident, status=Status.SENT, to=phone, error=text))
    monitor.on_outcome(
        Outcome(
            id=ident,
            status=Status.FAILED,
            to=phone,
            error=f"{phone}: {text}",
            error_kind=ErrorKind.NOT_ON_WHATSAPP,
        )
    )
    monitor.on_receipt(Receipt(id=ident, kind="read", at=monitor.clock()))
    monitor.on_status(SenderStatus(state="disconnected", detail=f"{phone} {text}"))
    monitor.on_heartbeat(
        poller_beat(s3Errors={phone: 1, text: 2}, rejectedEvents={ident: 1, "wasched.cancel": 2})
    )
    labels = {v for key in scrape(monitor) for _, v in key[1]}
    for secret in (phone, "9696", text, "Anna", "secret"):
        assert not any(secret in label for label in labels), (secret, labels)


def test_both_expositions_parse(monitor: Monitor) -> None:
    monitor.on_heartbeat(poller_beat(s3Errors={"timeout": 1}))
    monitor.on_status(SenderStatus(state="connected"))
    monitor.on_outcome(Outcome(id="a", status=Status.SENT, lateness_seconds=1))
    data, content_type = exposition(monitor.registry, "text/plain")
    assert content_type.startswith("text/plain")
    names = {family.name for family in parse_text(data.decode())}
    assert {"wasched_messages", "wasched_s3_errors", "process_cpu_seconds"} <= names
    om, _ = exposition(monitor.registry, OPENMETRICS)
    assert om.decode().endswith("# EOF\n")
    names = {family.name for family in parse_om(om.decode())}
    required = {
        "wasched_messages", "wasched_receipts", "wasched_send_lateness_seconds",
        "wasched_pending_messages", "wasched_overdue_messages", "wasched_oldest_overdue_seconds",
        "wasched_scheduled_in_nats", "wasched_poll_cycle_seconds",
        "wasched_poll_last_success_timestamp_seconds", "wasched_s3_errors",
        "wasched_store_conditional_writes", "wasched_whatsapp_state", "wasched_whatsapp_connected",
        "wasched_rejected_events", "wasched_component_up", "process_cpu_seconds",
    }  # fmt: skip
    assert required <= names, required - names


def test_the_poll_interval_is_exported_so_alerts_can_scale_with_it(monitor: Monitor) -> None:
    """`WaschedPollerSilent` compares the last successful poll with the interval."""
    assert value(scrape(monitor), "wasched_poll_interval_seconds") == 10
