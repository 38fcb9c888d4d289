"""End to end: real poller, sender (dryrun) and health processes, real NATS and S3.

What an operator would check: after sends, /metrics agrees with what actually
went out (the dryrun outbox); /health catches a stopped poller and a message
that is not going out, and recovers when things are fixed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

from tests.conftest import TEST_BUCKET, service_env
from tests.support.services import ServiceProcess
from tests.support.waiting import eventually_sync
from wasched.cli.servers import S3Server, free_port
from wasched.common.clock import format_utc, parse_utc, utcnow
from wasched.health.metrics import LATENESS_BUCKETS

pytestmark = pytest.mark.timeout(110)

STALE = 4.0  # HEALTH_STALE_SECONDS for these runs; the poller beats every ~1 s here
NOT_ON_WHATSAPP = "447957189600"
READY = {
    "poller": "active: polling",
    "sender": "sender started",
    "health": "listening on NATS",
}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Stack:
    def __init__(self, env: dict[str, str], root: Path) -> None:
        self.env, self.root = env, root
        self.procs: dict[str, ServiceProcess] = {}
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{env['HEALTH_PORT']}", timeout=5)

    def start(self, service: str, **env: object) -> ServiceProcess:
        proc = self.procs.get(service) or ServiceProcess(
            service,
            {**self.env, **{k: str(v) for k, v in env.items()}},
            self.root / f"{service}.log",
        )
        self.procs[service] = proc
        proc.start()
        return proc

    def wait_ready(self, *services: str) -> None:
        for service in services:
            self.procs[service].wait_log(READY[service], timeout=40)

    def stop(self, service: str) -> None:
        self.procs[service].stop()

    def close(self) -> None:
        self.http.close()
        for proc in self.procs.values():
            with contextlib.suppress(AssertionError, OSError):
                proc.stop(timeout=15)

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{p.log()[-2500:]}" for n, p in self.procs.items())

    def scrape(self) -> Samples:
        text = self.http.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        ).text
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in parse_om(text)
            for s in family.samples
        }

    def health(self) -> tuple[int, list[str]]:
        response = self.http.get("/health")
        return response.status_code, response.json()["failing"]


@pytest.fixture
def stack(seaweed: S3Server, prefix: str, nats_url: str, tmp_path: Path) -> Iterator[Stack]:
    env = service_env(
        seaweed,
        prefix,
        nats_url,
        tmp_path,
        POLL_INTERVAL_SECONDS=1,
        HEALTH_PORT=free_port(),
        HEALTH_HOST="127.0.0.1",
        HEALTH_STALE_SECONDS=STALE,
        OVERDUE_ALERT_SECONDS=4,
        STATUS_INTERVAL_SECONDS=1,
        SEND_JITTER_SECONDS=0,
        DRYRUN_NOT_ON_WHATSAPP=NOT_ON_WHATSAPP,
        LOG_LEVEL="INFO",
    )
    running = Stack(env, tmp_path)
    try:
        yield running
    finally:
        running.close()


def s3_client(server: S3Server) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    )


def put_document(server: S3Server, prefix: str, messages: list[dict[str, Any]]) -> None:
    body = json.dumps({"messages": messages}).encode()
    s3_client(server).put_object(Bucket=TEST_BUCKET, Key=f"{prefix}scheduled.json", Body=body)


def add_message(server: S3Server, prefix: str, new: dict[str, Any]) -> None:
    """Append like a careful writer would: conditional PUT, re-read on conflict."""
    client, key = s3_client(server), f"{prefix}scheduled.json"
    for _ in range(10):
        current = client.get_object(Bucket=TEST_BUCKET, Key=key)
        doc = json.loads(current["Body"].read())
        doc["messages"].append(new)
        try:
            client.put_object(
                Bucket=TEST_BUCKET, Key=key, Body=json.dumps(doc).encode(), IfMatch=current["ETag"]
            )
            return
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in {"PreconditionFailed", "412"}:
                raise
    raise AssertionError("could not add a message: the document kept changing")


def message(ident: str, to: str, at: datetime) -> dict[str, Any]:
    return {
        "id": ident,
        "to": to,
        "message": f"e2e {ident}",
        "scheduledTime": format_utc(at),
        "status": "pending",
        "createdAt": format_utc(utcnow()),
        "createdFrom": "test",
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def outbox(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_metrics_match_the_sends_and_health_catches_silence(
    stack: Stack, seaweed: S3Server, prefix: str
) -> None:
    for service in ("health", "poller", "sender"):
        stack.start(service)
    stack.wait_ready("health", "poller", "sender")
    eventually_sync(lambda: stack.health()[0] == 200, timeout=20, what="/health 200 at start")

    soon = utcnow() + timedelta(seconds=3)
    docs = [
        message("e2e-a", "447957189696", soon),
        message("e2e-b", "+44 7957 189697", soon + timedelta(seconds=0.5)),
        message("e2e-c", "447957189698", soon + timedelta(seconds=1)),
        message("e2e-nowa", NOT_ON_WHATSAPP, soon),
        message("e2e-bad", "12", soon),
        message("e2e-old", "447957189699", utcnow() - timedelta(days=2)),
    ]
    put_document(seaweed, prefix, docs)
    sent_path = Path(stack.env["DRYRUN_OUTBOX"])

    def all_counted() -> Samples | None:
        samples = stack.scrape()
        done = value(samples, "wasched_messages_total", status="sent", error_kind="") == 3
        return samples if done and len(outbox(sent_path)) == 3 else None

    try:
        samples = eventually_sync(all_counted, timeout=30, interval=0.3, what="3 sends counted")
    except AssertionError:
        raise AssertionError(f"not all counted: {stack.scrape()}\n{stack.logs()}") from None

    def failed(kind: str) -> float | None:
        return value(samples, "wasched_messages_total", status="failed", error_kind=kind)

    assert failed("not_on_whatsapp") == 1
    assert failed("invalid_recipient") == 1
    assert value(samples, "wasched_messages_total", status="expired", error_kind="expired") == 1

    # The lateness histogram holds exactly what the outbox says was sent, bucket by bucket.
    scheduled = {d["id"]: parse_utc(d["scheduledTime"]) for d in docs}
    lateness = [
        (parse_utc(line["at"]) - scheduled[line["id"]]).total_seconds()
        for line in outbox(sent_path)
    ]
    assert value(samples, "wasched_send_lateness_seconds_count") == len(lateness) == 3
    total = value(samples, "wasched_send_lateness_seconds_sum")
    assert total == pytest.approx(sum(lateness), abs=0.01 * len(lateness))
    for bound in LATENESS_BUCKETS:
        if any(abs(late - bound) < 0.01 for late in lateness):
            continue  # the outbox keeps milliseconds only
        expected = sum(late <= bound for late in lateness)
        assert (
            value(samples, "wasched_send_lateness_seconds_bucket", le=str(float(bound))) == expected
        )
    assert max(lateness) < 5, f"sends were late: {lateness}"
    assert value(samples, "wasched_whatsapp_connected") == 1
    eventually_sync(
        lambda: value(stack.scrape(), "wasched_pending_messages") == 0,
        timeout=15,
        what="the poller reports no pending message once outcomes are stored",
    )

    # Silence: the poller stops; /health must say so within the staleness bound.
    eventually_sync(lambda: stack.health() == (200, []), timeout=20, what="/health 200 after sends")
    stack.stop("poller")
    stopped = time.monotonic()
    eventually_sync(
        lambda: stack.health() == (503, ["poller_heartbeat"]),
        timeout=STALE + 10,
        interval=0.2,
        what="503 for the poller heartbeat",
    )
    waited = time.monotonic() - stopped
    assert waited <= STALE + 2, f"took {waited:.1f}s to notice (bound {STALE}s)"
    stack.start("poller")
    eventually_sync(lambda: stack.health()[0] == 200, timeout=40, what="/health 200 after restart")

    # Nothing sends: the sender is down while a message falls due ("two silent hours").
    stack.stop("sender")
    add_message(seaweed, prefix, message("e2e-late", "447957189696", utcnow()))

    def overdue_failing() -> bool:
        status, failing = stack.health()
        return status == 503 and "overdue_messages" in failing

    eventually_sync(overdue_failing, timeout=20, interval=0.2, what="503 for an overdue message")
    stack.start("sender")
    eventually_sync(lambda: stack.health() == (200, []), timeout=40, interval=0.3, what="200 again")
    assert value(stack.scrape(), "wasched_messages_total", status="sent", error_kind="") == 4


def test_health_catches_a_send_that_hangs(stack: Stack, seaweed: S3Server, prefix: str) -> None:
    """Every process alive and connected, yet a due message is not going out."""
    for service in ("health", "poller"):
        stack.start(service)
    # Alive and connected, but stuck inside the send.
    stack.start("sender", DRYRUN_SEND_DELAY_SECONDS=8, SENDER_SHUTDOWN_GRACE_SECONDS=1)
    stack.wait_ready("health", "poller", "sender")
    eventually_sync(lambda: stack.health()[0] == 200, timeout=20, what="/health 200 at start")

    put_document(seaweed, prefix, [message("stuck", "447957189696", utcnow())])
    eventually_sync(
        lambda: stack.health() == (503, ["overdue_messages"]),
        timeout=8,
        interval=0.2,
        what="503 for an overdue message while poller and sender are fine",
    )
    body = stack.http.get("/health").json()
    detail = next(c["detail"] for c in body["checks"] if c["name"] == "overdue_messages")
    assert "limit 4s" in detail
    # The send completes: the outcome is recorded, nothing is overdue, /health is green again.
    eventually_sync(lambda: stack.health() == (200, []), timeout=30, interval=0.3, what="200 again")
    samples = stack.scrape()
    assert value(samples, "wasched_messages_total", status="sent", error_kind="") == 1
    assert value(samples, "wasched_oldest_overdue_seconds") == 0
