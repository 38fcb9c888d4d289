"""A request names where its answer goes; wasched answers only on a reply inbox.

`Wasched-Reply-To` is written by whoever sent the request. Without a check, a
client could name `wasched.outcome` (which the sender and poller may publish
to) and have wasched store a message there on its behalf.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from tests.support.waiting import eventually
from wasched.common import topology
from wasched.common.events import Reply
from wasched.common.requests import reply


async def test_answers_go_only_to_inboxes(nc: NATS) -> None:
    seen: dict[str, list[bytes]] = {}

    async def record(msg: Msg) -> None:
        seen.setdefault(msg.subject, []).append(msg.data)

    for subject in (topology.OUTCOME, topology.SENDER_STATUS, "_INBOX.client.abc"):
        await nc.subscribe(subject, cb=record)
    answer = Reply(ok=True, id="m1")
    await reply(nc, {topology.REPLY_HEADER: topology.OUTCOME}, answer)
    await reply(nc, {topology.REPLY_HEADER: topology.SENDER_STATUS}, answer)
    await reply(nc, {topology.REPLY_HEADER: "_INBOX.client.abc"}, answer)
    await nc.flush()
    await eventually(lambda: "_INBOX.client.abc" in seen, what="the answer on the inbox")
    await asyncio.sleep(0)  # anything published before the inbox answer has arrived by now
    assert set(seen) == {"_INBOX.client.abc"}
