"""The health service's memory and counters, fed by NATS handlers, read by the web side."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry

from wasched.common.clock import utcnow
from wasched.common.events import Heartbeat, Outcome, Receipt, SenderStatus
from wasched.common.settings import Settings
from wasched.health.checks import CheckResult, evaluate
from wasched.health.metrics import Metrics
from wasched.health.page import render_page
from wasched.health.state import LiveState


class Monitor:
    def __init__(
        self,
        settings: Settings,
        nats_up: Callable[[], bool] = lambda: False,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings, self.clock, self.nats_up = settings, clock, nats_up
        self.state = LiveState(started_at=clock())
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry, self.state, settings, lambda: self.nats_up(), clock)

    def on_heartbeat(self, heartbeat: Heartbeat) -> None:
        cycle = self.state.on_heartbeat(heartbeat, self.clock())
        if cycle is not None:
            self.metrics.observe_cycle(cycle)

    def on_status(self, status: SenderStatus) -> None:
        self.state.on_status(status, self.clock())

    def on_outcome(self, outcome: Outcome) -> None:
        if self.state.on_outcome(outcome):
            self.metrics.count_outcome(outcome)

    def on_receipt(self, receipt: Receipt) -> None:
        if self.state.on_receipt(receipt):
            self.metrics.count_receipt(receipt)

    def checks(self) -> list[CheckResult]:
        return evaluate(self.state.poller, self.state.status, self.clock(), self.settings)

    def page(self) -> str:
        now = self.clock()
        results = evaluate(self.state.poller, self.state.status, now, self.settings)
        return render_page(self.state, results, now, self.settings, self.nats_up())
