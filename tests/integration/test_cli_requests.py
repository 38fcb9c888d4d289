"""The `wasched` console script against a real nats-server (and S3 for `schedule list`).

The services are stood in for by small responders that answer the way
docs/contracts.md says they do, so what is checked here is the CLI's side of the
contract: subjects, payloads, `Nats-Msg-Id`, `Wasched-Reply-To`, and what the user sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from tests.conftest import TEST_BUCKET
from tests.support.mediafiles import jpeg
from wasched.cli.pairing import qr_block
from wasched.cli.servers import S3Server
from wasched.common import topology
from wasched.common.clock import utcnow
from wasched.common.events import (
    CancelRequest,
    Reply,
    ScheduleRequest,
    SenderStatus,
    SendRequest,
)
from wasched.common.requests import reply

WASCHED = str(Path(sys.executable).parent / "wasched")
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "scheduled.sample.json"


@dataclass
class Result:
    code: int
    out: str
    err: str


async def cli(*argv: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> Result:
    proc = await asyncio.create_subprocess_exec(
        WASCHED, *argv, env={**os.environ, **env}, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def env(nats_url: str) -> dict[str, str]:
    return {"NATS_URL": nats_url, "DISPLAY_TIMEZONE": "Europe/London"}


@pytest.fixture
async def stream(js: JetStreamContext) -> JetStreamContext:
    await topology.declare(js)
    return js


Answer = Callable[[Msg], Awaitable[Reply]]


@pytest.fixture
async def responder(nc: NATS) -> AsyncIterator[Callable[[str, Answer], Awaitable[list[Msg]]]]:
    """Answer requests on a subject like the consuming service would; returns what arrived."""
    subs = []

    async def start(subject: str, answer: Answer) -> list[Msg]:
        seen: list[Msg] = []

        async def on_msg(msg: Msg) -> None:
            seen.append(msg)
            await reply(nc, msg.headers, await answer(msg))

        subs.append(await nc.subscribe(subject, cb=on_msg))
        return seen

    yield start
    for sub in subs:
        await sub.unsubscribe()


def _accept(model: type[ScheduleRequest | SendRequest | CancelRequest]) -> Answer:
    async def answer(msg: Msg) -> Reply:
        return Reply(ok=True, id=model.model_validate_json(msg.data).id)

    return answer


async def test_schedule_add_publishes_durably_and_reports_the_answer(
    stream: JetStreamContext, responder, env: dict[str, str], tmp_path: Path
) -> None:
    seen = await responder(topology.SCHEDULE, _accept(ScheduleRequest))
    before = utcnow()
    result = await cli(
        "schedule", "add", "--to", "+44 7957 189696", "--at", "+1h", "--message", "Happy Birthday! 🎂",
        "--name", "Reem", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 0, result.err
    (msg,) = seen
    request = ScheduleRequest.model_validate_json(msg.data)
    assert result.out.startswith(f"scheduled {request.id} for ")
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == f"schedule:{request.id}"
    assert msg.headers[topology.REPLY_HEADER].startswith("_INBOX.")
    assert request.to == "447957189696"
    assert request.message == "Happy Birthday! 🎂"
    assert request.contact_name == "Reem"
    assert timedelta(minutes=59) < request.scheduled_time - before < timedelta(minutes=61)
    info = await stream.stream_info(topology.IN_STREAM)
    assert info.state.messages == 1, "the request is stored in the stream, not just sent"


async def test_a_refusal_is_one_line_and_exit_1(
    stream: JetStreamContext, responder, env: dict[str, str], tmp_path: Path
) -> None:
    async def refuse(msg: Msg) -> Reply:
        return Reply(ok=False, error="id 'x' was already used for another message")

    await responder(topology.SCHEDULE, refuse)
    result = await cli(
        "schedule", "add", "--to", "447957189696", "--at", "+1h", "--message", "hi", "--id", "x",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 1
    assert result.out == ""
    assert result.err == "wasched: refused: id 'x' was already used for another message\n"


async def test_cancel_and_send_use_their_subjects_and_message_ids(
    stream: JetStreamContext, responder, env: dict[str, str], tmp_path: Path
) -> None:
    cancels = await responder(topology.CANCEL, _accept(CancelRequest))
    sends = await responder(topology.SEND, _accept(SendRequest))
    cancelled = await cli("schedule", "cancel", "1735168500123_a1b2c3", env=env, cwd=tmp_path)
    assert (cancelled.code, cancelled.out) == (0, "cancelled 1735168500123_a1b2c3\n")
    assert json.loads(cancels[0].data) == {"id": "1735168500123_a1b2c3"}
    assert cancels[0].headers["Nats-Msg-Id"] == "cancel:1735168500123_a1b2c3"

    sent = await cli(
        "send", "--to", "447957189696", "--message", "on my way", "--id", "order-7",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert (sent.code, sent.out) == (0, "sent order-7\n")
    request = SendRequest.model_validate_json(sends[0].data)
    assert (request.id, request.to, request.message) == ("order-7", "447957189696", "on my way")
    assert sends[0].headers["Nats-Msg-Id"] == "send:order-7"


async def test_nats_without_the_wasched_stream_is_one_line(
    nc: NATS, env: dict[str, str], tmp_path: Path
) -> None:
    result = await cli("schedule", "cancel", "abc", env=env, cwd=tmp_path)
    assert result.code == 1
    assert result.err.splitlines() == [
        "wasched: NATS is up but holds no wasched stream for wasched.cancel: "
        "are the services running?"
    ]


async def test_no_consumer_answering_is_one_line_and_the_request_waits_in_the_stream(
    stream: JetStreamContext, env: dict[str, str], tmp_path: Path
) -> None:
    result = await cli("schedule", "cancel", "abc", "--timeout", "1", env=env, cwd=tmp_path)
    assert result.code == 1
    assert result.err.splitlines() == [
        "wasched: NATS stored the request but nothing answered on wasched.cancel within 1s; "
        "it will be handled when the service runs (is it running?)"
    ]
    info = await stream.stream_info(topology.IN_STREAM)
    assert info.state.messages == 1


async def test_pair_with_phone_prints_the_code(
    nc: NATS, env: dict[str, str], tmp_path: Path
) -> None:
    asked: list[dict[str, str]] = []

    async def on_pair(msg: Msg) -> None:
        asked.append(json.loads(msg.data))
        await msg.respond(Reply(ok=True, id="ABCD1234").to_json())

    sub = await nc.subscribe(topology.PAIR_REQUEST, cb=on_pair)
    try:
        result = await cli("pair", "--phone", "+44 7957 189696", env=env, cwd=tmp_path)
    finally:
        await sub.unsubscribe()
    assert result.code == 0, result.err
    assert asked == [{"phone": "447957189696"}]
    assert result.out.strip().endswith("enter: ABCD-1234")


async def test_pair_shows_each_new_qr_until_linked(
    nc: NATS, env: dict[str, str], tmp_path: Path
) -> None:
    codes = ["2@first,code,AAAA,BBBB", "2@second,code,CCCC,DDDD"]
    proc = await asyncio.create_subprocess_exec(
        WASCHED, "pair", "--timeout", "60", env={**os.environ, **env}, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    shown = ""

    async def publish_until_shown(status: SenderStatus, text: str) -> None:
        """Beat like the sender does (faster) until the CLI has printed `text`."""
        nonlocal shown
        while text not in shown:
            await nc.publish(topology.SENDER_STATUS, status.to_json())
            with contextlib.suppress(TimeoutError):
                shown += (await asyncio.wait_for(proc.stdout.read(4096), 0.1)).decode()

    async def sender() -> None:
        for qr in codes:
            await publish_until_shown(SenderStatus(state="pairing", qr=qr), qr_block(qr))
        await publish_until_shown(SenderStatus(state="connected"), "linked")

    await asyncio.wait_for(sender(), 30)
    rest, err = await asyncio.wait_for(proc.communicate(), 30)
    shown += rest.decode()
    assert proc.returncode == 0, err
    for qr in codes:
        assert shown.count(qr_block(qr)) == 1, "each QR is shown once, not on every beat"
    assert shown.index(qr_block(codes[0])) < shown.index(qr_block(codes[1]))
    assert shown.strip().endswith("WhatsApp is linked and connected")


async def test_pair_without_sender_is_one_line(
    nc: NATS, env: dict[str, str], tmp_path: Path
) -> None:
    result = await cli("pair", "--phone", "447957189696", env=env, cwd=tmp_path)
    assert result.code == 1
    assert result.err.splitlines() == [
        "wasched: nothing listens on wasched.pair: is wasched running? "
        "(`make run`, or `docker compose up -d`)"
    ]


async def test_schedule_list_reads_the_stored_document(
    moto: S3Server, prefix: str, tmp_path: Path
) -> None:
    sample = SAMPLE
    client = boto3.client(
        "s3", endpoint_url=moto.endpoint, region_name="us-east-1",
        aws_access_key_id=moto.access_key, aws_secret_access_key=moto.secret_key,
    )  # fmt: skip
    client.put_object(Bucket=TEST_BUCKET, Key=f"{prefix}scheduled.json", Body=sample.read_bytes())
    (tmp_path / ".env").write_text(
        f"S3_ENDPOINT={moto.endpoint}\nS3_ACCESS_KEY_ID={moto.access_key}\n"
        f"S3_SECRET_ACCESS_KEY={moto.secret_key}\nS3_BUCKET={TEST_BUCKET}\nS3_PREFIX={prefix}\n"
    )
    everything = await cli("schedule", "list", env={}, cwd=tmp_path)
    assert everything.code == 0, everything.err
    lines = everything.out.splitlines()
    assert lines[0].split() == ["ID", "WHEN", "REPEAT", "STATUS", "TO", "NAME", "MESSAGE"]
    assert [line.split()[0] for line in lines[1:]] == [
        "1735170000456_d4e5f6", "1735170999789_a7b8c9", "1735168500123_a1b2c3",
    ]  # fmt: skip
    pending = await cli("schedule", "list", "--status", "pending", env={}, cwd=tmp_path)
    (row,) = pending.out.splitlines()[1:]
    assert row.split()[:4] == ["1735168500123_a1b2c3", "24/12/2025,", "10:00:00", "pending"]
    assert "Happy Birthday!" in row


async def test_schedule_add_uploads_the_media_and_sends_the_new_fields(
    stream: JetStreamContext, responder, env: dict[str, str], seaweed: S3Server, prefix: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The example of docs/running.md and issue 15: a yearly card, 09:00 London time."""
    seen = await responder(topology.SCHEDULE, _accept(ScheduleRequest))
    card = tmp_path / "card.jpg"
    card.write_bytes(jpeg(64))
    s3 = {
        "S3_ENDPOINT": seaweed.endpoint, "S3_ACCESS_KEY_ID": seaweed.access_key,
        "S3_SECRET_ACCESS_KEY": seaweed.secret_key, "S3_BUCKET": TEST_BUCKET, "S3_PREFIX": prefix,
    }  # fmt: skip
    result = await cli(
        "schedule", "add", "--to", "447957189696", "--message", "Happy birthday!",
        "--repeat", "FREQ=YEARLY", "--tz", "Europe/London", "--at", "2030-12-24T09:00",
        "--media", "./card.jpg", env={**env, **s3}, cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.out.strip().endswith("repeating FREQ=YEARLY in Europe/London")
    raw = json.loads(seen[0].data)
    assert (raw["repeat"], raw["timezone"]) == ("FREQ=YEARLY", "Europe/London")
    assert raw["scheduledTime"] == "2030-12-24T09:00:00Z"  # GMT in December
    assert raw["message"] == "Happy birthday!"
    key = raw["media"]["key"]
    assert raw["media"]["type"] == "image" and key.startswith(f"{prefix}media/")
    stored = boto3.client(
        "s3", endpoint_url=seaweed.endpoint, region_name="us-east-1",
        aws_access_key_id=seaweed.access_key, aws_secret_access_key=seaweed.secret_key,
    ).get_object(Bucket=TEST_BUCKET, Key=key)  # fmt: skip
    assert stored["Body"].read() == card.read_bytes()


async def test_send_takes_media_by_url_and_a_link_preview(
    stream: JetStreamContext, responder, env: dict[str, str], tmp_path: Path
) -> None:
    sends = await responder(topology.SEND, _accept(SendRequest))
    voice = await cli(
        "send", "--to", "447957189696", "--media", "https://example.org/hello.ogg",
        "--media-type", "voice", "--id", "v1", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert (voice.code, voice.out) == (0, "sent v1\n"), voice.err
    article = await cli(
        "send", "--to", "447957189696", "--message", "Read https://example.org/post",
        "--link-preview", "--id", "a1", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert article.code == 0, article.err
    payloads = [json.loads(msg.data) for msg in sends]
    assert payloads[0]["media"] == {"type": "voice", "url": "https://example.org/hello.ogg"}
    assert payloads[0]["message"] == ""
    assert payloads[1]["linkPreview"] is True
    refused = await cli(
        "send", "--to", "447957189696", "--message", "hi", "--media",
        "https://example.org/hello.ogg", "--media-type", "voice", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert refused.code == 2
    assert refused.err.startswith("wasched: --message: WhatsApp sends voice without text")
    assert len(sends) == 2, "nothing was published for the refused one"
