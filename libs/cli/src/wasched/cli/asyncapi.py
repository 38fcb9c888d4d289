"""The event interface other systems use, as a schema-only FastStream app.

Nothing here runs: the handlers exist only so FastStream can describe the
subjects and the `wasched.common.events` payloads in `docs/asyncapi.yaml`
(`make asyncapi`, i.e. `python -m wasched.cli.asyncapi docs/asyncapi.yaml`, which
sorts FastStream's output so the file only changes when the interface does;
`faststream docs gen wasched.cli.asyncapi:app --yaml` gives the same document).
The services implement these subjects in their own apps.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from faststream import FastStream
from faststream.nats import JStream, NatsBroker
from faststream.specification import AsyncAPI
from pydantic import ConfigDict, Field

from wasched.common import topology
from wasched.common.events import (
    CancelRequest,
    MediaSpec,
    Outcome,
    Receipt,
    Reply,
    ScheduleRequest,
    SenderStatus,
    SendRequest,
)

TITLE = "wasched"
VERSION = "1.0.0"
DESCRIPTION = "\n\n".join(
    [
        "Scheduled WhatsApp messages, sent on time and at most once.",
        f"Other systems publish requests to the JetStream stream `{topology.IN_STREAM}`. To get an "
        f"answer, publish with the header `{topology.REPLY_HEADER}: <inbox>` and subscribe to "
        'that inbox: the consuming service answers with a `Reply` (`{"ok": true}` or '
        '`{"ok": false, "error": "..."}`) once it has processed the request. A plain NATS '
        "request to these subjects is answered only by JetStream's publish acknowledgement.",
        "Publish with `Nats-Msg-Id: <kind>:<id>` (`send:`, `schedule:`, `cancel:`) so that "
        "retries within the 15-minute duplicate window are stored once. Field names are "
        "camelCase; times are ISO-8601 with a zone.",
        "NATS requires a user: connect as `client` (the nkey seed `wasched init` writes to "
        "`secrets/nats-client.nk`) with the inbox prefix `_INBOX.client`, the only inboxes that "
        "user may read and the only ones wasched answers under that user. `client` may publish "
        "the three requests and subscribe to outcomes and receipts, nothing else "
        "(docs/security.md).",
    ]
)

broker = NatsBroker()
stream = JStream(topology.STREAM, declare=False)
requests = JStream(topology.IN_STREAM, declare=False)

_REPLY = f"Answered on the `{topology.REPLY_HEADER}` inbox, when given, with a `Reply`."


# Documentation only: the poller reads `ScheduleRequest`, which keeps every field beyond its
# own as written for the stored document and checks them there.
class ScheduleRequestFields(ScheduleRequest):
    """`wasched.schedule`: add a message to the stored document (the optional fields as in
    docs/design.md, "Message kinds")."""

    model_config = ConfigDict(title="ScheduleRequest")

    timezone: str | None = Field(None, description="IANA zone, e.g. Europe/London")
    repeat: str | None = Field(None, description="RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=MO")
    skip: list[str] | None = Field(None, description="local dates or times to leave out")
    media: MediaSpec | None = None
    link_preview: bool | None = Field(None, description="send with a preview of the first link")


@broker.subscriber(
    topology.SEND,
    stream=requests,
    title=topology.SEND,
    description="Send a text, a picture, video, audio, voice note or document now, with the "
    "same at-most-once guarantee as scheduled messages (`repeat`, `timezone` and `skip` are "
    "refused: those belong on wasched.schedule). "
    "The message id is the payload's `id`, else the `Nats-Msg-Id` header (without its "
    "`send:` prefix), else one derived from where JetStream stored the request: give one of "
    "the first two, and a retry after a lost PubAck is never sent twice, even after the "
    "duplicate window. " + _REPLY,
)
async def send(request: SendRequest) -> Reply:
    raise NotImplementedError  # schema only


@broker.subscriber(
    topology.SCHEDULE,
    stream=requests,
    title=topology.SCHEDULE,
    description="Add a message to the stored schedule (`id` required: a repeated id is "
    "not added twice). `timezone` (a `scheduledTime` without an offset is wall-clock time "
    'there), `repeat`, `skip`, `media`, `linkPreview` as in docs/design.md ("Message '
    'kinds"); each is checked before the message is added, and a bad one is refused with '
    "the reason. Fields wasched does not know are stored unchanged. " + _REPLY,
)
async def schedule(request: ScheduleRequestFields) -> Reply:
    raise NotImplementedError  # schema only


@broker.subscriber(
    topology.CANCEL,
    stream=requests,
    title=topology.CANCEL,
    description="Cancel a pending message by id; honoured until the moment it is sent. " + _REPLY,
)
async def cancel(request: CancelRequest) -> Reply:
    raise NotImplementedError  # schema only


broker.publisher(
    topology.OUTCOME,
    stream=stream,
    title=topology.OUTCOME,
    schema=Outcome,
    description="What happened to one message: sent, failed (with errorKind), expired or "
    "cancelled. `Nats-Msg-Id: outcome:<id>:<status>`.",
)
broker.publisher(
    topology.RECEIPT,
    stream=stream,
    title=topology.RECEIPT,
    schema=Receipt,
    description="WhatsApp reported a sent message delivered, read or played.",
)
broker.publisher(
    topology.SENDER_STATUS,
    title=topology.SENDER_STATUS,
    schema=SenderStatus,
    description="Core NATS (not stored): the WhatsApp connection state on every change and "
    "every 5 s, with the QR code or pair code while the account needs linking.",
)

broker.publisher(
    "_INBOX.client.>",
    title="reply-inbox",
    schema=Reply,
    description=f"Core NATS: the answer to a request on {topology.SEND}, {topology.SCHEDULE} or "
    f"{topology.CANCEL}, sent to the inbox the caller named in `{topology.REPLY_HEADER}`. "
    "`ok` is true once the request was applied (for `wasched.send`: once WhatsApp took the "
    "message); otherwise `error` says why. `id` is the message id.",
)

app = FastStream(
    broker,
    specification=AsyncAPI(broker, title=TITLE, version=VERSION, description=DESCRIPTION),
)


def canonical(spec: dict[str, Any]) -> dict[str, Any]:
    """FastStream orders channels by hash (it changes between runs): sort the named maps."""
    out = dict(spec)
    for key in ("channels", "operations"):
        out[key] = dict(sorted(spec.get(key, {}).items()))
    components = dict(spec.get("components", {}))
    for key in ("messages", "schemas"):
        components[key] = dict(sorted(components.get(key, {}).items()))
    out["components"] = components
    return out


def render_yaml() -> str:
    """The AsyncAPI 3.0 document FastStream generates, in a stable order."""
    import yaml  # pyyaml: a dev dependency, like `faststream docs gen --yaml`

    spec = canonical(app.schema.to_specification().to_jsonable())
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)


def main(argv: list[str] | None = None) -> None:
    """`python -m wasched.cli.asyncapi [PATH]`: write the document (default: stdout)."""
    args = sys.argv[1:] if argv is None else argv
    text = render_yaml()
    if args:
        Path(args[0]).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
