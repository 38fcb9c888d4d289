"""Media and link previews through the real sender process (dryrun) on a real nats-server,
with the media in a real S3 bucket (SeaweedFS) and on a web server started here.

The due events are published here as the poller publishes them (the poller's own
hand-over of media, from a stored document to the outbox: tests/integration/test_poller_series.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from tests.conftest import TEST_BUCKET
from tests.support.mediafiles import OGG_OPUS, PDF, jpeg, put
from tests.support.sending import (
    PHONE,
    Collected,
    Senders,
    calls,
    drained,
    outbox,
    publish_due,
    senders,
    write_script,
)
from tests.support.waiting import eventually
from tests.support.webfiles import Answer, WebFiles
from wasched.cli.servers import S3Server
from wasched.common import ledger, topology
from wasched.common.events import DueMessage, MediaSpec, Outcome, SendRequest
from wasched.common.ledger import LedgerState
from wasched.common.messages import ErrorKind, Status
from wasched.common.requests import request

__all__ = ["senders"]

CARD = jpeg(64)
BIG = jpeg(300)  # ~90 KiB of noise: over the 64 KiB image limit set below
PAGE = b"""<!doctype html><html><head><title>Plain title</title>
<meta property="og:title" content="Mince pies, tested">
<meta property="og:description" content="Twelve recipes, one winner.">
<meta property="og:image" content="/pie.jpg"></head><body>...</body></html>"""


@pytest.fixture
async def web() -> AsyncIterator[WebFiles]:
    server = await WebFiles().start()
    yield server
    await server.stop()


def media_sender(senders: Senders, seaweed: S3Server, prefix: str) -> None:
    senders.start(
        S3_ENDPOINT=seaweed.endpoint,
        S3_ACCESS_KEY_ID=seaweed.access_key,
        S3_SECRET_ACCESS_KEY=seaweed.secret_key,
        S3_BUCKET=TEST_BUCKET,
        S3_PREFIX=prefix,
        MEDIA_MAX_BYTES="image=64KiB",
        MEDIA_URL_ALLOW_PRIVATE="true",  # the web server of this test is on 127.0.0.1
        MEDIA_FETCH_TIMEOUT_SECONDS="10",
    )


def due_media(message_id: str, message: str = "", **media: str) -> DueMessage:
    return DueMessage(
        id=message_id,
        to=PHONE,
        message=message,
        scheduled_time=datetime.now(UTC),
        media=MediaSpec.model_validate(media),
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_media_from_the_bucket_and_the_web_is_sent_and_dryrun_records_size_and_hash(
    nc: NATS,
    js: JetStreamContext,
    outcomes: Collected[Outcome],
    senders: Senders,
    seaweed: S3Server,
    prefix: str,
    web: WebFiles,
    tmp_path: Path,
) -> None:
    put(seaweed, f"{prefix}media/card.jpg", CARD)
    put(seaweed, f"{prefix}media/hello.ogg", OGG_OPUS)
    web.answers["/menu.pdf"] = Answer(body=PDF, headers={"Content-Type": "application/pdf"})
    web.answers["/post"] = Answer(body=PAGE, headers={"Content-Type": "text/html"})
    web.answers["/pie.jpg"] = Answer(body=CARD, headers={"Content-Type": "image/jpeg"})
    media_sender(senders, seaweed, prefix)

    await publish_due(
        js, due_media("card", "Merry Christmas", type="image", key=f"{prefix}media/card.jpg")
    )
    menu = {"type": "document", "url": web.url("/menu.pdf"), "fileName": "Christmas menu.pdf"}
    await publish_due(js, due_media("menu", **menu))
    article = DueMessage(
        id="article",
        to=PHONE,
        message=f"Worth a read: {web.url('/post')}.",
        scheduled_time=datetime.now(UTC),
        link_preview=True,
    )
    await publish_due(js, article)
    voice = SendRequest.model_validate(
        {
            "id": "voice",
            "to": PHONE,
            "message": "",
            "media": {"type": "voice", "key": f"{prefix}media/hello.ogg"},
        }
    )
    reply = await request(nc, topology.SEND, voice, "send:voice", timeout=30)
    assert (reply.ok, reply.id) == (True, "voice")

    await eventually(
        lambda: len(outcomes) >= 4 and drained(js), timeout=30, what="four outcomes, drained"
    )
    assert {o.id: o.status for o in outcomes} == dict.fromkeys(
        ("card", "menu", "article", "voice"), Status.SENT
    )
    lines = {line["id"]: line for line in outbox(tmp_path)}
    assert lines["card"]["message"] == "Merry Christmas"
    assert lines["card"]["media"] == {
        "type": "image",
        "size": len(CARD),
        "sha256": sha(CARD),
        "mime": "image/jpeg",
        "fileName": "card.jpg",
    }
    assert lines["menu"]["media"] == {
        "type": "document",
        "size": len(PDF),
        "sha256": sha(PDF),
        "mime": "application/pdf",
        "fileName": "Christmas menu.pdf",
    }
    assert lines["voice"]["message"] == ""
    assert lines["voice"]["media"]["mime"] == "audio/ogg; codecs=opus"
    assert lines["voice"]["media"]["sha256"] == sha(OGG_OPUS)
    preview = lines["article"]["linkPreview"]
    assert preview["url"] == web.url("/post")
    assert (preview["title"], preview["description"]) == (
        "Mince pies, tested",
        "Twelve recipes, one winner.",
    )
    assert preview["thumbnailBytes"] > 0, "the page's picture became the thumbnail"
    assert len(outbox(tmp_path)) == 4


async def test_a_missing_object_an_oversize_file_and_a_foreign_key_fail_and_nothing_is_sent(
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    senders: Senders,
    seaweed: S3Server,
    prefix: str,
    web: WebFiles,
    tmp_path: Path,
) -> None:
    assert len(BIG) > 64 * 1024
    put(seaweed, f"{prefix}media/big.jpg", BIG)
    put(seaweed, f"{prefix}scheduled.json", b"{}")
    web.answers["/page.jpg"] = Answer(body=b"<html><body>not a picture</body></html>")
    media_sender(senders, seaweed, prefix)

    await publish_due(js, due_media("missing", type="image", key=f"{prefix}media/nope.jpg"))
    await publish_due(js, due_media("big", type="image", key=f"{prefix}media/big.jpg"))
    await publish_due(js, due_media("html", type="image", url=web.url("/page.jpg")))
    await publish_due(js, due_media("foreign", type="document", key=f"{prefix}scheduled.json"))

    await eventually(
        lambda: len(outcomes) >= 4 and drained(js), timeout=30, what="four outcomes, drained"
    )
    got = {o.id: (o.status, o.error_kind) for o in outcomes}
    assert got == {
        "missing": (Status.FAILED, ErrorKind.MEDIA_UNAVAILABLE),
        "big": (Status.FAILED, ErrorKind.MEDIA_TOO_LARGE),
        "html": (Status.FAILED, ErrorKind.MEDIA_TYPE),
        "foreign": (Status.FAILED, ErrorKind.VALIDATION),
    }
    errors = {o.id: o.error or "" for o in outcomes}
    assert f"media object '{prefix}media/nope.jpg' does not exist" in errors["missing"]
    assert "over the 65,536-byte limit for image" in errors["big"]
    assert "an HTML page, not an image" in errors["html"]
    assert f"media.key: must be under {prefix}media/" in errors["foreign"]
    assert outbox(tmp_path) == [], "nothing reached WhatsApp"
    for message_id in got:
        entry = await ledger.read(kv, message_id)
        assert entry is not None and entry[0].state is LedgerState.FAILED, message_id


async def test_a_failed_upload_is_failed_never_interrupted_and_a_lost_client_sends_later(
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    senders: Senders,
    web: WebFiles,
    tmp_path: Path,
) -> None:
    """After the claim the media is uploaded (the build): that delivers nothing, so its
    failure is `failed` with the reason; a client that is not connected releases the claim."""
    web.answers["/card.jpg"] = Answer(body=CARD, headers={"Content-Type": "image/jpeg"})
    script = write_script(tmp_path, {"build": ["fail:upload refused by mmg", "disconnected", "ok"]})
    senders.start(faulty=True, FAULTY_SCRIPT=script, MEDIA_URL_ALLOW_PRIVATE="true")
    await publish_due(js, due_media("refused", type="image", url=web.url("/card.jpg")))
    await eventually(lambda: outcomes.for_id("refused"), timeout=20, what="the first outcome")
    await publish_due(js, due_media("later", type="image", url=web.url("/card.jpg")))
    await eventually(lambda: outcomes.for_id("later") and drained(js), timeout=30, what="sent")

    refused = outcomes.for_id("refused")[0]
    assert (refused.status, refused.error_kind) == (Status.FAILED, ErrorKind.MEDIA_UNAVAILABLE)
    assert refused.error == "upload refused by mmg"
    assert [o.status for o in outcomes.for_id("later")] == [Status.SENT]
    assert [line["id"] for line in outbox(tmp_path)] == ["later"]
    assert [c["step"] for c in calls(tmp_path, "build")] == [
        "fail:upload refused by mmg",
        "disconnected",
        "ok",
    ]
    assert [c["id"] for c in calls(tmp_path, "send")] == ["later"], "refused was never sent"
    entry = await ledger.read(kv, "refused")
    assert entry is not None and entry[0].error_kind is ErrorKind.MEDIA_UNAVAILABLE
