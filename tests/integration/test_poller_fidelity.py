"""The poller writes back what it read: exact numbers, strict JSON, the document's own layout
and encoding, and times in the writers' own format (issue 11, items 3 and 4)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from nats.js import JetStreamContext

from tests.conftest import TEST_BUCKET
from tests.integration.test_poller_kit import WebUi, message, report_sent, running_poller, utcnow
from tests.support.waiting import eventually
from wasched.cli.servers import S3Server
from wasched.common.clock import format_utc


def strict(body: bytes) -> object:
    def refuse(name: str) -> object:
        raise AssertionError(f"not strict JSON: {name}")

    return json.loads(body, parse_constant=refuse)


EXOTIC = {
    "huge": "1e400",
    "precise": "0.1000000000000000055511151231257827",
    "big": "123456789012345678901234567890",
    "exp": "1E5",
    "trailing": "1.50",
    "neg0": "-0",
}
"""Numbers as another writer may have written them; a double would change each one."""


def layout(data: dict, indent: int | str) -> bytes:
    """The document as `JSON.stringify(data, null, indent)` writes it, exotic numbers kept."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    for name, number in EXOTIC.items():
        text = text.replace(f'"@{name}@"', number)
    return text.encode()


def exotic_messages() -> dict:
    at = format_utc(utcnow().replace(year=utcnow().year + 1))
    first = message("a", utcnow(), scheduledTime=at, ui={k: f"@{k}@" for k in EXOTIC})
    return {"messages": [first, message("b", utcnow(), scheduledTime=at)], "rate": "@huge@"}


async def test_numbers_layout_and_times_survive_a_write(
    moto: S3Server, prefix: str, nats_url: str, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(moto, prefix)
    data = exotic_messages()
    web.put_bytes(layout(data, "\t"))
    async with running_poller(moto, prefix, nats_url, tmp_path):
        await report_sent(js, "a")
        await eventually(lambda: b'"sent"' in web.get_bytes()[0], 20, what="outcome written")
    written, _ = web.get_bytes()
    strict(written)
    data["messages"][0].update(status="sent", sentAt="2025-12-24T10:00:02.311Z", waMessageId="WA-a")
    assert written.decode() == layout(data, "\t").decode()  # nothing else changed, not a byte


async def test_a_gzip_encoded_document_is_read_and_written_back_gzipped(
    moto: S3Server, prefix: str, nats_url: str, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(moto, prefix)
    at = utcnow().replace(year=utcnow().year + 1)
    plain = json.dumps({"messages": [message("z", at)]}, indent=2).encode()
    web.client.put_object(
        Bucket=TEST_BUCKET,
        Key=web.key,
        Body=gzip.compress(plain),
        ContentEncoding="gzip",
        ContentType="application/json",
    )

    def stored() -> tuple[str | None, bytes]:
        got = web.client.get_object(Bucket=TEST_BUCKET, Key=web.key)
        return got.get("ContentEncoding"), got["Body"].read()

    async with running_poller(moto, prefix, nats_url, tmp_path) as poller:
        await poller.wait_log("loaded 1 messages")
        await report_sent(js, "z")
        await eventually(
            lambda: b'"sent"' in gzip.decompress(stored()[1]), 20, what="outcome written gzipped"
        )
        assert "not UTF-8" not in poller.log()
    encoding, body = stored()
    assert encoding == "gzip"
    written = strict(gzip.decompress(body))
    assert isinstance(written, dict) and written["messages"][0]["waMessageId"] == "WA-z"
