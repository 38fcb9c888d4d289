"""Which live signals to believe: only what a service published itself, on its own subject.

The server already lets only the `sender` user publish its status and heartbeat,
and only the poller its heartbeat (docs/security.md). What the health service can
still tell apart on its own it refuses here: a heartbeat whose `service` is not
the one its subject names, and a signal that came out of a stream (a republish
or a schedule, which the server performs without checking who asked for it).
"""

from __future__ import annotations

from collections.abc import Mapping

from wasched.common.topology import HEARTBEAT_PREFIX

STREAM_MARKS = ("Nats-Stream", "Nats-Sequence", "Nats-Scheduler", "Nats-Schedule-Next")
"""Headers the server sets on messages it delivers or republishes from a stream."""


def from_a_stream(headers: Mapping[str, str] | None, reply: str | None) -> bool:
    return any(mark in (headers or {}) for mark in STREAM_MARKS) or (reply or "").startswith(
        "$JS.ACK."
    )


def heartbeat_refusal(
    subject: str, service: str, headers: Mapping[str, str] | None, reply: str | None
) -> str | None:
    """Why a heartbeat is not believed, or None."""
    if from_a_stream(headers, reply):
        return "it came out of a stream, not from a service"
    named = subject.removeprefix(HEARTBEAT_PREFIX)
    if service != named:
        return f"it claims to be from {service!r} on the {named!r} subject"
    return None


def status_refusal(headers: Mapping[str, str] | None, reply: str | None) -> str | None:
    if from_a_stream(headers, reply):
        return "it came out of a stream, not from the sender"
    return None
