"""Linking by phone number: `wasched.pair` (core request-reply) → an 8-character pair code.

`{"phone": "447..."}` is answered with `Reply(ok=True, id=<code>)`, or
`Reply(ok=False, error=...)` saying why not (dryrun, already linked, banned...).
`python -m wasched.sender pair --phone ...` is the terminal client of it.
"""

from __future__ import annotations

import json
from typing import Any

import nats
from nats.errors import NoRespondersError
from pydantic import BaseModel, ValidationError

from wasched.common.events import Reply
from wasched.common.recipients import InvalidRecipient, parse_recipient
from wasched.common.topology import PAIR_REQUEST
from wasched.sender.inbound import describe
from wasched.sender.lifecycle import Lifecycle
from wasched.sender.policy import pairing_refusal
from wasched.sender.transport import PairingError, Transport


class PairRequest(BaseModel):
    phone: str


def read_phone(data: bytes) -> str:
    """The digits WhatsApp wants (international, no `+`); ValueError says what is wrong."""
    try:
        request = PairRequest.model_validate_json(data)
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None
    try:
        recipient = parse_recipient(request.phone)
    except InvalidRecipient as exc:
        raise ValueError(str(exc)) from None
    if recipient.e164 is None:
        raise ValueError("phone: a phone number is needed, not a group or JID")
    return recipient.user


async def answer(data: bytes, lifecycle: Lifecycle, transport: Transport) -> Reply:
    try:
        phone = read_phone(data)
    except ValueError as exc:
        return Reply(ok=False, error=str(exc))
    conn = lifecycle.conn
    refusal = pairing_refusal(conn.state, transport.name, conn.detail)
    if refusal:
        return Reply(ok=False, error=refusal)
    try:
        return Reply(ok=True, id=await transport.pair_code(phone))
    except PairingError as exc:
        return Reply(ok=False, error=str(exc))


async def request_code(nats_url: str, phone: str, timeout: float, **options: Any) -> Reply:
    """The CLI side: ask the running sender for a pair code (`options`: credentials, TLS)."""

    async def quiet(_: Exception) -> None:  # the caller prints one line instead of tracebacks
        return None

    nc = await nats.connect(
        nats_url,
        connect_timeout=min(timeout, 5),
        allow_reconnect=False,
        max_reconnect_attempts=1,
        error_cb=quiet,
        **options,
    )
    try:
        msg = await nc.request(PAIR_REQUEST, json.dumps({"phone": phone}).encode(), timeout)
    except NoRespondersError:
        return Reply(ok=False, error="no sender is listening: start `python -m wasched.sender`")
    except TimeoutError:
        return Reply(ok=False, error=f"the sender did not answer within {timeout:g}s")
    finally:
        await nc.close()
    return Reply.model_validate_json(msg.data)
