"""A rehearsal leaves every message to the real run (issue 13, item 6).

A dry run (`WHATSAPP_TRANSPORT=dryrun`) over a schedule it does not own, on the NATS the
real run will use, used to write `sent` into the document and the ledger (and its made-up
"not on WhatsApp" answers into the lookup cache, and take other systems' requests off
their queues), so the real run afterwards never sent those messages. Here a rehearsal
runs over a document — due now, due in a few seconds, due later, a number the dry run
says is not on WhatsApp — while another system sends one message and schedules one, all
with each service on its own NATS user. Then the real run (the real sender with a
stand-in transport that fails nothing) must send every one of them, once, within the
hourly cap the rehearsal's sends must not have used, and /metrics must count only those.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NoKeysError, NotFoundError
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

from tests.conftest import TEST_BUCKET, service_env
from tests.support.auth import SecuredNats, secured_nats  # noqa: F401  (fixture)
from tests.support.sending import FAULTY_MODULE
from tests.support.services import ServiceProcess
from tests.support.waiting import eventually_sync
from wasched.cli.servers import S3Server, free_port
from wasched.common import topology
from wasched.common.clock import format_utc, utcnow
from wasched.common.events import ScheduleRequest, SendRequest

pytestmark = pytest.mark.timeout(150)

READY = {"poller": "active: polling", "sender": "sender started", "health": "listening on NATS"}
NOT_ON_WHATSAPP = "447957189600"
PHONE = "447957189696"


def _message(ident: str, at: datetime, to: str = PHONE) -> dict[str, Any]:
    return {
        "id": ident,
        "to": to,
        "message": f"rehearsed {ident}",
        "scheduledTime": format_utc(at),
        "status": "pending",
        "createdFrom": "test",
    }


def _outbox(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    return Counter(json.loads(line)["id"] for line in path.read_text().splitlines() if line)


async def _keys(js: JetStreamContext, bucket: str) -> list[str]:
    try:
        return await (await js.key_value(bucket)).keys()
    except (BucketNotFoundError, NoKeysError):
        return []


async def _left_where_the_real_run_looks(nats: SecuredNats) -> dict[str, object]:
    """Every bucket and subject a real run reads, with what is in it (all must be empty),
    and how long the rehearsal's own ledger keeps what it holds."""
    async with nats.connect("admin") as nc:
        js = nc.jetstream()
        found: dict[str, object] = {}
        for bucket in (topology.LEDGER_BUCKET, topology.ACCOUNT_BUCKET, topology.LOOKUP_BUCKET):
            found[bucket] = await _keys(js, bucket)
        for subject in (topology.DUE, topology.FIRE, topology.OUTCOME, f"{topology.SCHED_PREFIX}*"):
            info = await js.stream_info(topology.STREAM, subjects_filter=subject)
            found[subject] = sum((info.state.subjects or {}).values())
        for durable in (topology.SENDER_SEND, topology.POLLER_SCHEDULE):
            try:
                info = await js.consumer_info(topology.IN_STREAM, durable)
            except NotFoundError:  # never made: nobody took a request
                found[f"{durable} delivered"] = 0
            else:
                found[f"{durable} delivered"] = info.delivered.stream_seq
        try:
            kept = await js.stream_info(f"KV_{topology.REHEARSAL.ledger_bucket}")
        except NotFoundError:
            found["the rehearsal's ledger keeps (s)"] = None
        else:
            found["the rehearsal's ledger keeps (s)"] = kept.config.max_age
        return found


def _sent_count(http: httpx.Client) -> float | None:
    text = http.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    for family in parse_om(text.text):
        for sample in family.samples:
            if sample.name == "wasched_messages_total" and sample.labels == {
                "status": "sent",
                "error_kind": "",
            }:
                return sample.value
    return None


async def test_a_rehearsal_leaves_every_message_to_the_real_run(
    secured_nats: SecuredNats,  # noqa: F811
    seaweed: S3Server,
    prefix: str,
    tmp_path: Path,
) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=seaweed.endpoint,
        region_name="us-east-1",
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key=seaweed.secret_key,
    )
    key = f"{prefix}scheduled.json"
    now = utcnow()
    document = {
        "messages": [
            _message("r-due", now - timedelta(seconds=5)),
            _message("r-soon", now + timedelta(seconds=4)),
            _message("r-later", now + timedelta(seconds=20)),
            _message("r-absent", now - timedelta(seconds=5), to=NOT_ON_WHATSAPP),
        ]
    }
    original = json.dumps(document, indent=2).encode()
    s3.put_object(Bucket=TEST_BUCKET, Key=key, Body=original)

    health_port = free_port()
    due = {"r-due", "r-soon", "r-later", "r-absent", "r-request", "r-scheduled"}
    base = service_env(
        seaweed,
        prefix,
        secured_nats.url,
        tmp_path,
        POLL_INTERVAL_SECONDS=1,
        SEND_MAX_PER_HOUR=len(due),  # what the rehearsal sent must not use up the real cap
        LOG_LEVEL="INFO",
    )
    base.pop("DRYRUN_MODE", None)  # the harness's own dry runs record; this one is the default
    rehearsal = {
        **base,
        "DRYRUN_OUTBOX": str(tmp_path / "rehearsal-outbox.jsonl"),
        "DRYRUN_NOT_ON_WHATSAPP": NOT_ON_WHATSAPP,
    }
    real = {
        **base,
        "WHATSAPP_TRANSPORT": "neonize",  # the sender runs the stand-in below in its place
        "DRYRUN_OUTBOX": str(tmp_path / "real-outbox.jsonl"),
        "FAULTY_CALLS": str(tmp_path / "calls.jsonl"),
    }
    procs: dict[str, ServiceProcess] = {}

    def start(name: str, env: dict[str, str], module: str | None = None) -> ServiceProcess:
        service = name.split("-")[-1]
        full = {**env, **secured_nats.env(service), "HEALTH_PORT": str(health_port)}
        proc = ServiceProcess(service, full, tmp_path / f"{name}.log", module=module).start()
        procs[name] = proc
        proc.wait_log(READY[service], timeout=40)
        return proc

    try:
        start("rehearsal-poller", rehearsal)  # it declares the topology
        start("health", base)
        rehearsal_sender = start("rehearsal-sender", rehearsal)
        async with secured_nats.connect("client") as nc:  # another system, meanwhile
            stream = nc.jetstream()
            send = SendRequest(id="r-request", to=PHONE, message="sent by another system")
            await stream.publish(
                topology.SEND, send.to_json(), headers={"Nats-Msg-Id": "send:r-request"}
            )
            scheduled = ScheduleRequest(
                id="r-scheduled",
                to=PHONE,
                message="scheduled by another system",
                scheduled_time=now,
            )
            await stream.publish(
                topology.SCHEDULE,
                scheduled.to_json(),
                headers={"Nats-Msg-Id": "schedule:r-scheduled"},
            )

        eventually_sync(  # the rehearsal did rehearse
            lambda: {"r-due", "r-soon"} <= set(_outbox(tmp_path / "rehearsal-outbox.jsonl")),
            timeout=40,
            what="the rehearsal's outbox to show r-due and r-soon",
        )
        rehearsal_sender.wait_log("failed r-absent", timeout=20)  # made up: not on WhatsApp
        for name in ("rehearsal-sender", "rehearsal-poller"):
            assert procs.pop(name).stop() == 0
        after_rehearsal = s3.get_object(Bucket=TEST_BUCKET, Key=key)["Body"].read()
        left = await _left_where_the_real_run_looks(secured_nats)

        start("poller", real)
        start("sender", real, module=FAULTY_MODULE)
        real_outbox = tmp_path / "real-outbox.jsonl"
        try:
            eventually_sync(
                lambda: due <= set(_outbox(real_outbox)),
                timeout=60,
                interval=0.2,
                what="the real run to send every message that is due",
            )
        except AssertionError as exc:
            missing = sorted(due - set(_outbox(real_outbox)))
            raise AssertionError(f"the real run did not send {missing}") from exc
        assert all(n == 1 for n in _outbox(real_outbox).values()), _outbox(real_outbox)

        with httpx.Client(base_url=f"http://127.0.0.1:{health_port}", timeout=5) as http:

            def counted() -> float | None:
                value = _sent_count(http) or 0.0
                return value if value >= len(due) else None

            sends = eventually_sync(counted, timeout=20, what="the real sends in /metrics")
        assert sends == len(due), f"/metrics counts {sends:g} sends, {len(due)} were made"

        stored = json.loads(s3.get_object(Bucket=TEST_BUCKET, Key=key)["Body"].read())
        statuses = {m["id"]: m["status"] for m in stored["messages"]}
        assert statuses == dict.fromkeys(due - {"r-request"}, "sent")
        assert after_rehearsal == original, "the rehearsal wrote into the schedule"
        assert left == {
            topology.LEDGER_BUCKET: [],
            topology.ACCOUNT_BUCKET: [],
            topology.LOOKUP_BUCKET: [],
            topology.DUE: 0,
            topology.FIRE: 0,
            topology.OUTCOME: 0,
            f"{topology.SCHED_PREFIX}*": 0,
            f"{topology.SENDER_SEND} delivered": 0,  # the requests waited for the real run
            f"{topology.POLLER_SCHEDULE} delivered": 0,
            "the rehearsal's ledger keeps (s)": 86400,
        }
        for name in ("sender", "poller", "health"):
            assert procs.pop(name).stop() == 0
        assert secured_nats.violations() == []
    finally:
        for proc in procs.values():
            with contextlib.suppress(AssertionError, OSError):
                proc.stop(timeout=15)
