"""What the poller publishes, declared as FastStream publishers so AsyncAPI documents them.

Schedules (`wasched.sched.<hex id>`) go through `broker.publish` instead: their
subject differs per message and only `broker.publish` takes a `Schedule`.
"""

from __future__ import annotations

from dataclasses import dataclass

from faststream.nats import JStream, NatsBroker
from faststream.nats.publisher.usecase import LogicPublisher

from wasched.common import topology
from wasched.common.events import DueMessage, Heartbeat, Outcome


@dataclass(frozen=True, slots=True)
class Outputs:
    due: LogicPublisher
    outcome: LogicPublisher
    heartbeat: LogicPublisher


def declare_outputs(
    broker: NatsBroker, stream: JStream, lane: topology.Lane = topology.REAL
) -> Outputs:
    return Outputs(
        due=broker.publisher(
            lane.due,
            stream=stream,
            schema=DueMessage,
            description="A pending message whose time has come (Nats-Msg-Id `due:<id>:<version>`).",
        ),
        outcome=broker.publisher(
            lane.outcome,
            stream=stream,
            schema=Outcome,
            description="Outcomes the poller decides itself: expired, validation, cancelled.",
        ),
        heartbeat=broker.publisher(
            topology.heartbeat_subject("poller"),
            schema=Heartbeat,
            description="Live state every 5 s and after every poll (core NATS, not stored).",
        ),
    )
