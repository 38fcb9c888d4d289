"""A WhatsApp transport that fails on cue — for tests only, never part of a service.

`python -m tests.support.faulty` runs the real sender (`wasched.sender.__main__.main`,
settings, NATS, ledger, everything) with this transport in place of the configured one.
Production cannot select it: it lives under `tests/`, which no image or package ships.

`FAULTY_SCRIPT` names a JSON file `{key: [step, ...]}`; each call takes the next step of
its key, and the last step repeats. Keys and steps:

- `<message id>` (a send): `ok` hands it over (a dryrun outbox line) and answers like
  WhatsApp; `before:<text>` raises the client error `<text>` without handing anything over;
  `after:<text>` hands it over, then raises `<text>`; `hang` hands it over and never answers.
- `lookup:<digits>` (is the number on WhatsApp): `ok`, `absent`, `canonical:<digits>` (on
  WhatsApp under another number, as WhatsApp answers for e.g. Mexican mobiles), or
  `before:<text>` (the lookup fails).
- `typing` (the typing indicator before a send): `ok` or `before:<text>`.
- `build` (preparing each message after the claim, e.g. a media upload): `ok`,
  `fail:<text>` (a `BuildError`, `media_unavailable`), `disconnected` (the client is not
  connected: nothing began), or `hang`.
- `start` (when the transport starts): `ok`, `ban:<seconds>` (connected, then WhatsApp
  reports a temporary ban of that length), or `replaced` (connected, then another client
  takes the session).

Every call is appended to `FAULTY_CALLS` as a JSON line `{"call", "id"/"jid", "step", "at"}`,
and a send that returns adds `{"call": "sent", "id", "waMessageId"}` when it returns.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from wasched.common.clock import format_utc, utcnow
from wasched.common.messages import ErrorKind
from wasched.common.recipients import USER_SERVER, Recipient
from wasched.sender.connection import Connected, StreamReplaced, TemporaryBan
from wasched.sender.dryrun import DryrunTransport
from wasched.sender.transport import (
    BuildError,
    Built,
    Content,
    Sent,
    TransportError,
    TransportListener,
)


class FaultyTransport(DryrunTransport):
    name = "dryrun"

    def __init__(
        self, outbox: Path, script: dict[str, list[str]], calls: Path, send_delay: float = 0.0
    ) -> None:
        super().__init__(outbox, send_delay=send_delay)
        self.script = script
        self.calls_path = calls
        self._taken: defaultdict[str, int] = defaultdict(int)

    @classmethod
    def from_env(cls, settings: Any) -> FaultyTransport:
        script_path = os.environ.get("FAULTY_SCRIPT")
        script = json.loads(Path(script_path).read_text()) if script_path else {}
        calls = Path(os.environ["FAULTY_CALLS"])
        return cls(settings.dryrun_outbox, script, calls, settings.dryrun_send_delay_seconds)

    def step(self, key: str) -> str:
        steps = self.script.get(key) or ["ok"]
        index = min(self._taken[key], len(steps) - 1)
        self._taken[key] += 1
        return steps[index]

    def record(self, call: str, step: str, **fields: str) -> None:
        line = {"call": call, "step": step, "at": format_utc(utcnow()), **fields}
        with self.calls_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    async def start(self, listener: TransportListener) -> None:
        await super().start(listener)
        step = self.step("start")
        if step.startswith("ban:"):
            listener.connection_event(Connected())
            listener.connection_event(TemporaryBan("test ban", float(step.removeprefix("ban:"))))
        if step == "replaced":
            listener.connection_event(Connected())
            listener.connection_event(StreamReplaced())

    async def lookup(self, recipient: Recipient) -> Recipient | None:
        step = self.step(f"lookup:{recipient.user}")
        self.record("lookup", step, jid=recipient.jid)
        if step.startswith("before:"):
            raise TransportError(step.removeprefix("before:"))
        if step == "absent":
            return None
        if step.startswith("canonical:"):
            return Recipient(step.removeprefix("canonical:"), USER_SERVER)
        return recipient

    async def typing(self, recipient: Recipient, seconds: float) -> None:
        step = self.step("typing")
        self.record("typing", step, jid=recipient.jid)
        if step.startswith("before:"):
            raise TransportError(step.removeprefix("before:"))

    async def build(self, content: Content) -> Built:
        step = self.step("build")
        self.record("build", step)
        if step.startswith("fail:"):
            raise BuildError(ErrorKind.MEDIA_UNAVAILABLE, step.removeprefix("fail:"))
        if step == "disconnected":
            raise TransportError("WhatsApp client not connected")
        if step == "hang":
            await asyncio.Event().wait()
        return await super().build(content)

    async def send(self, message_id: str, recipient: Recipient, built: Built) -> Sent:
        step = self.step(message_id)
        self.record("send", step, id=message_id, jid=recipient.jid)
        if step.startswith("before:"):
            raise TransportError(step.removeprefix("before:"))
        sent = await super().send(message_id, recipient, built)
        if step.startswith("after:"):
            raise TransportError(step.removeprefix("after:"))
        if step == "hang":
            await asyncio.Event().wait()
        self.record("sent", step, id=message_id, waMessageId=sent.wa_message_id)
        return sent


def main() -> int:
    """The real sender's entry point, with this transport in place of the configured one."""
    import wasched.sender.app as sender_app
    from wasched.sender.__main__ import main as sender_main

    sender_app.make_transport = FaultyTransport.from_env
    return sender_main()


if __name__ == "__main__":
    sys.exit(main())
