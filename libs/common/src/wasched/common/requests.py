"""Request-reply over JetStream subjects, for the CLI and other systems.

A plain NATS request to a stream subject is answered by JetStream's PubAck,
so the caller publishes durably with `Wasched-Reply-To: <inbox>` and waits
there for the consumer's `Reply`.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from wasched.common.events import Event, Reply
from wasched.common.topology import REPLY_HEADER

log = logging.getLogger("wasched.requests")


class NoAnswer(TimeoutError):
    """Nothing answered in time: is wasched running?"""


async def request(
    nc: NATS, subject: str, event: Event, msg_id: str | None, timeout: float = 10.0
) -> Reply:
    inbox = nc.new_inbox()
    answer: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

    async def on_reply(msg: Msg) -> None:
        if not answer.done():
            answer.set_result(Reply.model_validate_json(msg.data))

    sub = await nc.subscribe(inbox, cb=on_reply, max_msgs=1)
    try:
        headers = {REPLY_HEADER: inbox}
        if msg_id:
            headers["Nats-Msg-Id"] = msg_id
        await nc.jetstream().publish(subject, event.to_json(), headers=headers, timeout=timeout)
        return await asyncio.wait_for(answer, timeout)
    except TimeoutError as exc:
        raise NoAnswer(f"no answer on {subject} within {timeout:.0f}s") from exc
    finally:
        await sub.unsubscribe()


REPLY_PREFIX = "_INBOX."
"""Answers go only under here: the header is the caller's to write, and must not make
wasched publish on one of its own subjects (e.g. `wasched.outcome`) on the caller's behalf."""


def answerable(subject: str) -> bool:
    return subject.startswith(REPLY_PREFIX) and " " not in subject


async def reply(nc: NATS, headers: dict[str, str] | None, answer: Reply) -> None:
    """Answer a request if the caller asked for one on an inbox (no-op otherwise)."""
    inbox = (headers or {}).get(REPLY_HEADER)
    if inbox and answerable(inbox):
        await nc.publish(inbox, answer.to_json())
    elif inbox:
        log.warning("not answering on %r: answers go only to %s… inboxes", inbox[:80], REPLY_PREFIX)
