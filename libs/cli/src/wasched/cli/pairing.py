"""`wasched pair`: link the WhatsApp account from a terminal (QR code or pair code)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import segno
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import ValidationError

from wasched.cli.bus import BusError, ask_core
from wasched.common.events import SenderStatus
from wasched.common.topology import PAIR_REQUEST, SENDER_STATUS, TAKE_OVER_REQUEST

SCAN_HINT = "scan with WhatsApp on the phone: Settings → Linked devices → Link a device"
CODE_HINT = (
    "on the phone: WhatsApp → Settings → Linked devices → Link a device → "
    "Link with phone number instead, then enter"
)
_STOPPED = {"banned", "replaced", "outdated", "stopped"}


@dataclass(frozen=True, slots=True)
class Done:
    ok: bool
    text: str


@dataclass(frozen=True, slots=True)
class ShowQr:
    data: str


@dataclass(frozen=True, slots=True)
class Note:
    text: str


Step = Done | ShowQr | Note


def next_step(status: SenderStatus, shown_qr: str | None) -> Step:
    """What to do with one status message, given the QR already on screen."""
    if status.transport == "dryrun":
        return Done(True, "the sender uses the dryrun transport: there is nothing to link")
    if status.state == "connected":
        return Done(True, "WhatsApp is linked and connected")
    if status.state in _STOPPED:
        reason = f": {status.detail}" if status.detail else ""
        return Done(False, f"the sender stopped linking ({status.state}{reason})")
    if status.qr and status.qr != shown_qr:
        return ShowQr(status.qr)
    return Note(f"sender: {status.state}" + (f" ({status.detail})" if status.detail else ""))


def qr_block(data: str) -> str:
    out = io.StringIO()
    segno.make(data, micro=False).terminal(out=out, compact=True, border=2)
    return out.getvalue()


def format_code(code: str) -> str:
    clean = code.replace("-", "").strip()
    return f"{clean[:4]}-{clean[4:]}" if len(clean) == 8 else code


async def pair_code(nc: NATS, phone: str, timeout: float) -> str:
    reply = await ask_core(nc, PAIR_REQUEST, json.dumps({"phone": phone}).encode(), timeout)
    if not reply.ok or not reply.id:
        raise BusError(f"the sender refused to pair: {reply.error or 'no code returned'}")
    return format_code(reply.id)


async def take_over(nc: NATS, timeout: float) -> str:
    """Take the WhatsApp session back after another client replaced this one."""
    reply = await ask_core(nc, TAKE_OVER_REQUEST, b"{}", timeout)
    if not reply.ok:
        raise BusError(f"the sender did not take the session back: {reply.error or 'no reason'}")
    return "the sender is taking the WhatsApp session back (the other client is disconnected)"


async def watch_qr(nc: NATS, timeout: float, say: Callable[[str], None]) -> Done:
    """Show each new QR until the sender reports connected (or gives up)."""
    queue: asyncio.Queue[Msg] = asyncio.Queue()
    sub = await nc.subscribe(SENDER_STATUS, cb=queue.put)
    deadline = time.monotonic() + timeout
    shown: str | None = None
    last_note = ""
    heard = False
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left if heard else min(left, 15.0)):
                    msg = await queue.get()
            except TimeoutError:
                if not heard:
                    raise BusError(
                        f"no status from the sender on {SENDER_STATUS}: is it running?"
                    ) from None
                break
            heard = True
            try:
                status = SenderStatus.model_validate_json(msg.data)
            except ValidationError:
                continue
            step = next_step(status, shown)
            if isinstance(step, Done):
                return step
            if isinstance(step, ShowQr):
                shown = step.data
                say(qr_block(step.data) + SCAN_HINT + " (the code changes every ~20 s)")
            elif step.text != last_note:
                last_note = step.text
                say(step.text)
    finally:
        await sub.unsubscribe()
    return Done(False, f"not linked within {timeout:g}s; run `wasched pair` again")
