"""Prometheus metrics in an explicit registry.

Outcomes and receipts are counted as they are consumed. Everything the other
services report in heartbeats is read at scrape time by `LiveCollector`, so a
gauge shows the latest report and a cumulative total can carry over restarts.
Labels hold only bounded vocabularies: never a phone number, id or text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from wasched.common.clock import TimeFormatError, parse_utc, utcnow
from wasched.common.events import Outcome, Receipt, SenderState
from wasched.common.messages import ErrorKind, Status
from wasched.common.settings import Settings
from wasched.health import checks
from wasched.health.state import LiveState, Seen, age, number

LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
CYCLE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
FINAL = (Status.SENT, Status.FAILED, Status.EXPIRED, Status.CANCELLED)
RECEIPT_KINDS = ("delivered", "read", "played")
SENDER_STATES: tuple[str, ...] = get_args(SenderState)


class Metrics:
    """The counters fed by handlers, plus the scrape-time collector."""

    def __init__(
        self,
        registry: CollectorRegistry,
        state: LiveState,
        settings: Settings,
        nats_up: Callable[[], bool],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.registry = registry
        self.messages = Counter(
            "wasched_messages",
            "Messages that reached a final status, by status and error kind",
            ["status", "error_kind"],
            registry=registry,
        )
        self.receipts = Counter(
            "wasched_receipts", "Delivery and read receipts", ["kind"], registry=registry
        )
        self.lateness = Histogram(
            "wasched_send_lateness_seconds",
            "Seconds between a message's scheduled time and WhatsApp accepting it",
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.cycle = Histogram(
            "wasched_poll_cycle_seconds",
            "Duration of successful poll cycles",
            buckets=CYCLE_BUCKETS,
            registry=registry,
        )
        self._zero_series()
        registry.register(LiveCollector(state, settings, nats_up, clock))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

    def _zero_series(self) -> None:
        """Expose 0 before the first event, so rate() and alerts work from the start."""
        for status in FINAL:
            self.messages.labels(status.value, "")
        for kind in ErrorKind:
            self.messages.labels(Status.FAILED.value, kind.value)
        self.messages.labels(Status.EXPIRED.value, ErrorKind.EXPIRED.value)
        for receipt in RECEIPT_KINDS:
            self.receipts.labels(receipt)

    def count_outcome(self, outcome: Outcome) -> None:
        if outcome.status not in FINAL:
            return
        kind = outcome.error_kind.value if outcome.error_kind else ""
        self.messages.labels(outcome.status.value, kind).inc()
        if outcome.status is Status.SENT and outcome.lateness_seconds is not None:
            self.lateness.observe(max(0.0, outcome.lateness_seconds))

    def count_receipt(self, receipt: Receipt) -> None:
        self.receipts.labels(receipt.kind).inc()

    def observe_cycle(self, seconds: float) -> None:
        self.cycle.observe(seconds)


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """Prometheus text, or OpenMetrics when the scraper asks for it."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


class LiveCollector(Collector):
    def __init__(
        self,
        state: LiveState,
        settings: Settings,
        nats_up: Callable[[], bool],
        clock: Callable[[], datetime],
    ) -> None:
        self._state, self._settings, self._nats_up, self._clock = state, settings, nats_up, clock

    def collect(self) -> Iterable[Metric]:
        return live_families(self._state, self._clock(), self._settings, self._nats_up())


def live_families(
    state: LiveState, now: datetime, settings: Settings, nats_up: bool
) -> list[Metric]:
    """Gauges and carried-over totals from the latest heartbeats and sender status."""
    return [
        *_poller_gauges(state.poller),
        *_sender_gauges(state, now),
        _components(state, now, settings, nats_up),
        _ages(state, now),
        _check_gauge(state, now, settings),
        _interval(settings),
        _counter(
            "wasched_s3_errors",
            "S3 errors reported by the poller",
            "kind",
            state.s3_errors.totals(),
        ),
        _counter(
            "wasched_rejected_events",
            "Malformed or refused inbound events",
            "subject",
            state.rejected.totals(),
        ),
    ]


IGNORED_REASONS = ("no_status", "unknown_status", "bad_id", "occurrence_id")
"""The poller's reasons (a fixed set: labels never carry message ids or text)."""

_POLLER_GAUGES = (
    ("wasched_pending_messages", "Pending messages in the stored document", "pending"),
    ("wasched_overdue_messages", "Pending messages past their scheduled time", "overdue"),
    (
        "wasched_oldest_overdue_seconds",
        "How late the most overdue pending message is",
        "oldestOverdueSeconds",
    ),
    (
        "wasched_scheduled_in_nats",
        "Messages handed to NATS as scheduled messages",
        "scheduledInNats",
    ),
)


def _poller_gauges(poller: Seen | None) -> list[Metric]:
    details = poller.event.details if poller else {}
    out: list[Metric] = []
    for name, doc, key in _POLLER_GAUGES:
        family = GaugeMetricFamily(name, doc)
        value = number(details, key)
        if value is None and key == "oldestOverdueSeconds" and number(details, "overdue") == 0:
            value = 0.0
        if value is not None:
            family.add_metric([], value)
        out.append(family)
    last = GaugeMetricFamily(
        "wasched_poll_last_success_timestamp_seconds", "Unix time of the last successful poll"
    )
    stamp = _timestamp(details.get("lastSuccessAt"))
    if stamp is not None:
        last.add_metric([], stamp)
    ignored = GaugeMetricFamily(
        "wasched_messages_ignored",
        "Messages the poller leaves alone (no status, unknown status, unusable id), by reason",
        labels=["reason"],
    )
    reported = details.get("ignored")
    if isinstance(reported, dict):
        for reason in IGNORED_REASONS:
            count = reported.get(reason, 0)
            ignored.add_metric([reason], float(count) if isinstance(count, int | float) else 0.0)
    conditional = GaugeMetricFamily(
        "wasched_store_conditional_writes",
        "1 when the store supports conditional PUT, 0 when merging",
    )
    if details.get("storeMode") in ("conditional", "merge"):
        conditional.add_metric([], 1.0 if details["storeMode"] == "conditional" else 0.0)
    return [*out, last, ignored, conditional]


def _sender_gauges(state: LiveState, now: datetime) -> list[Metric]:
    current = _fresh_state(state, now)
    one_hot = GaugeMetricFamily(
        "wasched_whatsapp_state",
        "WhatsApp connection state (1 for the current one)",
        labels=["state"],
    )
    for name in SENDER_STATES:
        one_hot.add_metric([name], 1.0 if name == current else 0.0)
    connected = GaugeMetricFamily("wasched_whatsapp_connected", "1 when the sender is connected")
    connected.add_metric([], 1.0 if current == "connected" else 0.0)
    in_flight = GaugeMetricFamily(
        "wasched_sender_in_flight", "Sends handed to WhatsApp, unanswered"
    )
    value = number(state.sender.event.details, "inFlight") if state.sender else None
    if value is not None:
        in_flight.add_metric([], value)
    return [one_hot, connected, in_flight]


def _fresh_state(state: LiveState, now: datetime) -> str | None:
    status = state.status
    if status is None or age(status, now) > checks.SENDER_STALE_SECONDS:
        return None
    return status.event.state


def _components(state: LiveState, now: datetime, settings: Settings, nats_up: bool) -> Metric:
    poller_up = state.poller is not None and age(state.poller, now) <= checks.stale_after(settings)
    sender_seen = [s for s in (state.status, state.sender) if s is not None]
    sender_up = any(age(s, now) <= checks.SENDER_STALE_SECONDS for s in sender_seen)
    store_up = (
        poller_up
        and state.poller is not None
        and (state.poller.event.details.get("storeReachable") is True)
    )
    family = GaugeMetricFamily(
        "wasched_component_up", "1 when a component is heard from and working", labels=["component"]
    )
    for name, up in (
        ("poller", poller_up),
        ("sender", sender_up),
        ("store", store_up),
        ("nats", nats_up),
    ):
        family.add_metric([name], 1.0 if up else 0.0)
    return family


def _ages(state: LiveState, now: datetime) -> Metric:
    family = GaugeMetricFamily(
        "wasched_heartbeat_age_seconds",
        "Seconds since a component was last heard",
        labels=["component"],
    )
    for name, seen in (("poller", state.poller), ("sender", state.status or state.sender)):
        if seen is not None:
            family.add_metric([name], age(seen, now))
    return family


def _check_gauge(state: LiveState, now: datetime, settings: Settings) -> Metric:
    family = GaugeMetricFamily(
        "wasched_health_check_ok", "1 when a /health check passes", labels=["check"]
    )
    for result in checks.evaluate(state.poller, state.status, now, settings):
        family.add_metric([result.name], 1.0 if result.ok else 0.0)
    return family


def _interval(settings: Settings) -> Metric:
    """POLL_INTERVAL_SECONDS (the same `.env` as the poller's), so alerts scale with it."""
    family = GaugeMetricFamily(
        "wasched_poll_interval_seconds", "How often the poller is configured to poll"
    )
    family.add_metric([], settings.poll_interval_seconds)
    return family


def _counter(name: str, doc: str, label: str, totals: dict[str, float]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(totals.items()):
        family.add_metric([key], value)
    return family


def _timestamp(value: object) -> float | None:
    try:
        return parse_utc(value).timestamp()
    except TimeFormatError:
        return None
