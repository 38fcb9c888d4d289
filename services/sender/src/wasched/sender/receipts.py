"""Receipts: WhatsApp reports delivered/read by *its* message id; we report by ours.

The mapping is written when a send succeeds: in memory (receipts often come
within a second) and in the `wasched-waid` KV bucket, whose entries expire
after 30 days, so read receipts that come days later or after a restart are
still reported. The ledger entry keeps `waMessageId` too, but is keyed by our
id, so it cannot answer this lookup without a scan.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from wasched.common.events import Receipt
from wasched.common.topology import RECEIPT, WA_ID_BUCKET, bucket, ledger_key, msg_id_header
from wasched.sender.transport import ReceiptSeen

log = logging.getLogger("wasched.sender.receipts")
INDEX_TTL_SECONDS = 30 * 86400
MEMORY_SIZE = 10_000


async def open_index_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    return await bucket(js, WA_ID_BUCKET, ttl=INDEX_TTL_SECONDS, replicas=replicas)


class ReceiptIndex:
    def __init__(self, kv: KeyValue, size: int = MEMORY_SIZE) -> None:
        self._kv = kv
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._size = size

    async def remember(self, wa_message_id: str, message_id: str) -> None:
        self._memory[wa_message_id] = message_id
        if len(self._memory) > self._size:
            self._memory.popitem(last=False)
        try:
            await self._kv.put(ledger_key(wa_message_id), message_id.encode())
        except Exception as exc:  # receipts are a nicety; the send itself is recorded already
            log.warning("could not store WhatsApp id %s for receipts: %s", wa_message_id, exc)

    async def lookup(self, wa_message_id: str) -> str | None:
        if wa_message_id in self._memory:
            return self._memory[wa_message_id]
        try:
            entry = await self._kv.get(ledger_key(wa_message_id))
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return entry.value.decode() if entry.value else None


async def publish_receipts(js: JetStreamContext, index: ReceiptIndex, seen: ReceiptSeen) -> int:
    """Publish one `Receipt` per message of ours; returns how many were ours."""
    ours = 0
    for wa_id in seen.wa_message_ids:
        message_id = await index.lookup(wa_id)
        if message_id is None:
            log.debug("receipt for a message we did not send (%s)", wa_id)
            continue
        receipt = Receipt(id=message_id, kind=seen.kind, at=seen.at, wa_message_id=wa_id)
        headers = msg_id_header("receipt", f"{message_id}:{seen.kind}")
        await js.publish(RECEIPT, receipt.to_json(), headers=headers)
        log.info("%s %s", seen.kind, message_id)
        ours += 1
    return ours
