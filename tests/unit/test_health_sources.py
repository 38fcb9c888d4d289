"""Which live signals the health service believes (pure)."""

from __future__ import annotations

import pytest

from wasched.health.sources import heartbeat_refusal, status_refusal


@pytest.mark.parametrize(
    ("subject", "service", "headers", "reply", "refused"),
    [
        ("wasched.heartbeat.poller", "poller", None, None, None),
        ("wasched.heartbeat.sender", "sender", {"Traceparent": "00-x"}, None, None),
        ("wasched.heartbeat.sender", "poller", None, None, "claims to be from 'poller'"),
        ("wasched.heartbeat.poller", "poller", {"Nats-Stream": "WASCHED"}, None, "stream"),
        ("wasched.heartbeat.poller", "poller", {"Nats-Scheduler": "x"}, None, "stream"),
        ("wasched.heartbeat.poller", "poller", None, "$JS.ACK.WASCHED.c.1.1.1.1.0", "stream"),
    ],
)
def test_heartbeats_are_believed_only_from_their_own_subject_and_not_from_a_stream(
    subject: str,
    service: str,
    headers: dict[str, str] | None,
    reply: str | None,
    refused: str | None,
) -> None:
    why = heartbeat_refusal(subject, service, headers, reply)
    assert (why is None) if refused is None else (why is not None and refused in why)


def test_a_status_republished_from_a_stream_is_refused() -> None:
    assert status_refusal(None, None) is None
    assert status_refusal({"Nats-Sequence": "3"}, None) is not None
