"""Fence the lease: nothing an old leader does after a takeover may land.

A paused or partitioned poller can wake up with work in hand (a schedule read
before the pause, publishes nats-py buffered while disconnected). Two fences stop it:

- locally, every action first checks that the lease was renewed within its ttl by
  this process's own clock (`LeaseStale`: pause, the renewal loop decides the rest);
- on the server, each poller that takes over starts a *term*: one message on
  `wasched.poller.term`, written with compare-and-set on the previous term. Every
  publish of the active poller expects its term to be that subject's last message
  (`Nats-Expected-Last-Subject-Sequence[-Subject]`), so once a new term has begun the
  server refuses the old leader's publishes, however late they arrive (`Deposed`).
  S3 writes confirm the term with a read just before the PUT.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError

from wasched.common import topology
from wasched.poller.lease import Lease, LeaseRecord

EXPECTED_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
WRONG_LAST_SEQUENCE = 10071
PUBLISH_TIMEOUT = 5.0

T = TypeVar("T")


class LeaseStale(Exception):
    """The lease was not renewed lately (NATS away, or this process was paused): act later."""


class Deposed(Exception):
    """Another poller began a term after ours: this one must stop being active."""


class Fence:
    def __init__(self, js: JetStreamContext, lease: Lease, subject: str = topology.POLLER_TERM):
        self.js, self.lease, self.subject = js, lease, subject
        self.term: int | None = None

    async def begin(self) -> int:
        """Start our term after taking the lease: compare-and-set on the last term message."""
        record = LeaseRecord(holder=self.lease.holder).to_json()
        while True:
            last = await self.last_term()
            try:
                ack = await self.js.publish(
                    self.subject,
                    record,
                    stream=topology.STREAM,
                    timeout=PUBLISH_TIMEOUT,
                    headers={EXPECTED_SEQUENCE: str(last), "Nats-TTL": "never"},
                )
            except BadRequestError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    continue  # another term began between our read and our write: look again
                raise
            self.term = ack.seq
            return ack.seq

    def check(self) -> None:
        """Raise `LeaseStale` unless the lease is fresh by this process's own clock."""
        if self.term is None or not self.lease.fresh():
            raise LeaseStale("the lease was not renewed lately; not acting on it")

    def headers(self) -> dict[str, str]:
        """For every publish: refused by the server once another term has begun."""
        self.check()
        return {EXPECTED_SEQUENCE: str(self.term), EXPECTED_SUBJECT: self.subject}

    async def publish(self, sending: Awaitable[T]) -> T:
        """Await a publish made with `headers()`; a refusal for a newer term is `Deposed`."""
        try:
            return await sending
        except BadRequestError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise Deposed("another poller began a term; this one is no longer active") from exc
            raise

    async def confirm(self) -> None:
        """Before an S3 write: the lease is fresh and our term is still the last one."""
        self.check()
        if await self.last_term() != self.term:
            raise Deposed("another poller began a term; this one is no longer active")

    async def last_term(self) -> int:
        try:
            found = await self.js.get_last_msg(topology.STREAM, self.subject)
        except NotFoundError:
            return 0
        return found.seq or 0
