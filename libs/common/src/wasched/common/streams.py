"""Bring the JetStream streams to their declared configs, moving subjects between them.

Round 1 kept the request subjects (`wasched.send`, `.schedule`, `.cancel`) on the
stream that allows message schedules; round 2 moves them to a stream of their own.
`converge` reads first and writes only what differs, one step per pass, re-reading
after each, so two services declaring at once, or a restart half-way, end in the
same place. Requests stored but not yet consumed when the subjects move are copied
to the new stream (keeping their ids), then the old durable consumers are deleted.

A NATS user that may not manage streams cannot take a step: its request is denied
(nats-py reports a timeout) and it waits until a user that may (the poller) has.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TypeVar

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import StreamConfig, StreamInfo
from nats.js.errors import BadRequestError, NotFoundError

log = logging.getLogger("wasched.topology")

RETRY_SECONDS = 1.0
REPORT_SECONDS = 60.0
WRITE_SECONDS = 2.0
"""A denied request is never answered; give up on a write this soon and re-read (a write
that was merely slow has happened by the next pass, which then finds nothing to do)."""
_DENIED = (NatsTimeoutError, TimeoutError)
"""What a denied JetStream API request looks like to nats-py (plus a permissions error_cb)."""
_COMPARED = ("duplicate_window", "max_age", "max_bytes", "discard")

T = TypeVar("T")


async def patiently(what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """Retry `attempt` while NATS denies it (or does not answer), saying so once a minute."""
    said: float | None = None
    while True:
        try:
            return await attempt()
        except _DENIED:
            now = time.monotonic()
            if said is None or now - said >= REPORT_SECONDS:
                said = now
                log.warning(
                    "could not %s (this NATS user may not, or NATS is slow); "
                    "waiting for the poller to do it",
                    what,
                )
            await asyncio.sleep(RETRY_SECONDS)


async def converge(
    js: JetStreamContext, main: StreamConfig, inbound: StreamConfig, consumers: Mapping[str, str]
) -> None:
    """Make `main` and `inbound` match their configs; `consumers` are the durables (→ filter
    subject) that lived on `main` for subjects that now belong to `inbound`."""

    async def done() -> bool:
        try:
            return await _step(js, main, inbound, consumers)
        except BadRequestError as exc:  # another service took the same step meanwhile
            log.debug("declaring the streams raced with another service: %s", exc)
            return False

    while not await patiently(f"declare the NATS streams {main.name}, {inbound.name}", done):
        pass


async def _step(
    js: JetStreamContext, main: StreamConfig, inbound: StreamConfig, consumers: Mapping[str, str]
) -> bool:
    """Take the first step still needed; True when there is none."""
    for config in (main, inbound):  # main first: it must give the moved subjects up
        assert config.name is not None
        info = await _info(js, config.name)
        if info is None:
            await asyncio.wait_for(js.add_stream(config), WRITE_SECONDS)
            log.info("created the NATS stream %s", config.name)
            return False
        if not current(info.config, config):
            await asyncio.wait_for(js.update_stream(_keep_replicas(config, info)), WRITE_SECONDS)
            log.info("updated the NATS stream %s: subjects %s", config.name, config.subjects)
            return False
    return not await _carry_over(js, main, inbound, consumers)


def current(have: StreamConfig, want: StreamConfig) -> bool:
    """The settings wasched chooses are in place (replicas may be higher than asked)."""
    if set(have.subjects or []) != set(want.subjects or []):
        return False
    if (have.num_replicas or 1) < (want.num_replicas or 1):
        return False
    for flag in ("allow_msg_schedules", "allow_msg_ttl"):
        if bool(getattr(have, flag)) != bool(getattr(want, flag)):
            return False
    return all(getattr(have, name) == getattr(want, name) for name in _COMPARED)


def _keep_replicas(config: StreamConfig, info: StreamInfo) -> StreamConfig:
    have = info.config.num_replicas or 1
    if (config.num_replicas or 1) >= have:
        return config
    return dataclasses.replace(config, num_replicas=have)


async def _info(js: JetStreamContext, name: str) -> StreamInfo | None:
    try:
        return await js.stream_info(name)
    except NotFoundError:
        return None


async def _carry_over(
    js: JetStreamContext, main: StreamConfig, inbound: StreamConfig, consumers: Mapping[str, str]
) -> bool:
    """Copy what each old durable on `main` had not acknowledged, then delete it.

    True when something was carried over (the caller re-reads, then finds nothing).
    """
    assert main.name is not None
    found = False
    for durable, subject in consumers.items():
        try:
            info = await js.consumer_info(main.name, durable)
        except NotFoundError:
            continue
        if info.config.filter_subject not in (inbound.subjects or []):
            continue
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        copied = await _copy(js, main.name, subject, (floor or 0) + 1)
        await js.delete_consumer(main.name, durable)
        log.info(
            "moved %s to %s: %d request(s) not yet consumed were copied over",
            subject,
            inbound.name,
            copied,
        )
        found = True
    return found


async def _copy(js: JetStreamContext, stream: str, subject: str, start: int) -> int:
    copied, seq = 0, start
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq, next=True, subject=subject)
        except NotFoundError:
            return copied
        assert msg.seq is not None and msg.time is not None
        headers = dict(msg.headers or {})
        headers.setdefault("Nats-Msg-Id", f"moved:{stream}:{msg.seq}")
        data = keep_id(subject, msg.data or b"", msg.seq, msg.time)
        await js.publish(subject, data, headers=headers)
        copied, seq = copied + 1, msg.seq + 1


def keep_id(subject: str, data: bytes, seq: int, stored_at: datetime) -> bytes:
    """A send request without an id is sent under one derived from where it was stored
    (the sender's `inbound.generated_id`); a copy is stored elsewhere, so it carries that id."""
    if not subject.endswith(".send"):
        return data
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return data
    if not isinstance(body, dict) or body.get("id"):
        return data
    body["id"] = f"send-{int(stored_at.timestamp() * 1000)}-{seq}"
    return json.dumps(body, ensure_ascii=False).encode()
