"""The four measurements of issue 8, each against real servers and real service processes."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import nats

from bench.baseline import PollingBaseline
from bench.harness import (
    BUCKET,
    Stack,
    contact,
    cpu_seconds,
    image_python,
    message,
    percentiles,
    rss_mb,
    wait_until,
)
from wasched.common.clock import format_utc, parse_utc
from wasched.common.topology import SENDER_STATUS, heartbeat_subject

TERMINAL = {"sent", "failed", "expired", "cancelled"}


def lateness(messages: list[dict[str, Any]]) -> list[float]:
    return [
        (parse_utc(m["sentAt"]) - parse_utc(m["scheduledTime"])).total_seconds()
        for m in messages
        if m.get("status") == "sent" and m.get("sentAt")
    ]


def all_terminal(st: Stack, prefix: str, count: int) -> list[dict[str, Any]] | None:
    try:
        msgs = st.get_doc(prefix)
    except Exception:
        return None
    done = [m for m in msgs if m.get("status") in TERMINAL]
    return msgs if len(done) >= count else None


async def bench_lateness(st: Stack, count: int, spread: float, lead: float) -> dict[str, Any]:
    """Messages already in the document, due over `spread` seconds; poll interval 60 s for both."""
    start = datetime.now(UTC) + timedelta(seconds=lead)
    times = [
        format_utc(start + timedelta(seconds=spread * i / max(1, count - 1))) for i in range(count)
    ]
    ours, base = "lateness-wasched/", "lateness-baseline/"
    st.put_doc(ours, [message(f"w{i}", t, contact(i)) for i, t in enumerate(times)])
    st.put_doc(base, [message(f"b{i}", t, contact(i)) for i, t in enumerate(times)])
    env = st.env(ours, POLL_INTERVAL_SECONDS=60)
    st.start("poller", env)
    st.start("sender", env)
    baseline = PollingBaseline(
        st.client(), BUCKET, f"{base}scheduled.json", st.workdir / "baseline-outbox.jsonl", 60
    )
    stop = asyncio.Event()
    task = asyncio.create_task(baseline.run(stop))
    wait = lead + spread + 120
    ours_doc = await asyncio.to_thread(
        wait_until, lambda: all_terminal(st, ours, count), wait, 1.0, "wasched sends"
    )
    base_doc = await asyncio.to_thread(
        wait_until, lambda: all_terminal(st, base, count), wait, 1.0, "baseline sends"
    )
    stop.set()
    await task
    for svc in list(st.services):
        svc.stop()
    st.services.clear()
    w, b = percentiles(lateness(ours_doc)), percentiles(lateness(base_doc))
    return {
        "count": count,
        "spread": spread,
        "wasched": w,
        "baseline": b,
        "ratio_p99": (b["p99"] / w["p99"]) if w["p99"] > 0 else float("inf"),
    }


async def bench_throughput(st: Stack, count: int) -> dict[str, Any]:
    """`count` messages all due at once, throttle off: time until every one is `sent` in S3."""
    prefix = "throughput/"
    due = format_utc(datetime.now(UTC) - timedelta(seconds=1))
    st.put_doc(prefix, [message(f"t{i}", due, contact(i)) for i in range(count)])
    before = st.proxy.total_requests
    env = st.env(prefix, POLL_INTERVAL_SECONDS=5)
    started = time.monotonic()
    st.start("sender", env)
    st.start("poller", env)
    await asyncio.to_thread(
        wait_until, lambda: _all_sent(st, prefix, count), 1800, 1.0, "all sent in the document"
    )
    elapsed = time.monotonic() - started
    requests = st.proxy.total_requests - before
    for svc in list(st.services):
        svc.stop()
    st.services.clear()
    return {
        "count": count,
        "seconds": elapsed,
        "per_second": count / elapsed,
        "s3_requests": requests,
    }


def _all_sent(st: Stack, prefix: str, count: int) -> bool:
    try:
        return sum(m.get("status") == "sent" for m in st.get_doc(prefix)) >= count
    except Exception:
        return False


async def bench_polling(st: Stack, sizes: list[int], idle_polls: int) -> list[dict[str, Any]]:
    """One poll cycle of big documents (nothing due), changed vs unchanged, and idle download."""
    rows = []
    nc = await nats.connect(st.nats.url)
    try:
        for size in sizes:
            rows.append(await _poll_size(st, nc, size, idle_polls))
    finally:
        await nc.close()
    return rows


async def _poll_size(st: Stack, nc: Any, size: int, idle_polls: int) -> dict[str, Any]:
    prefix = f"poll-{size}/"
    far = format_utc(datetime.now(UTC) + timedelta(days=30))  # beyond the horizon: nothing to do
    doc_bytes = st.put_doc(prefix, [message(f"p{i}", far, contact(i)) for i in range(size)])
    beats: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_beat(msg: Any) -> None:
        await beats.put(json.loads(msg.data).get("details", {}))

    sub = await nc.subscribe(heartbeat_subject("poller"), cb=on_beat)
    poller = st.start("poller", st.env(prefix, POLL_INTERVAL_SECONDS=2))
    first = await _next_beat(beats, lambda d: d.get("total") == size)
    changed_cycle = first.get("cycleSeconds")
    unchanged = await _next_beat(beats, lambda d: d.get("etagHit") is True)
    bytes_before, req_before = st.proxy.bytes_out, st.proxy.total_requests
    for _ in range(idle_polls):
        await _next_beat(beats, lambda d: True)
    idle_bytes = (st.proxy.bytes_out - bytes_before) / idle_polls
    idle_requests = (st.proxy.total_requests - req_before) / idle_polls
    peak = rss_mb(poller.pid, "VmHWM")
    poller.stop()
    st.services.remove(poller)
    await sub.unsubscribe()
    return {
        "size": size,
        "doc_bytes": doc_bytes,
        "changed_cycle": changed_cycle,
        "unchanged_cycle": unchanged.get("cycleSeconds"),
        "peak_rss_mb": peak,
        "idle_bytes_per_poll": idle_bytes,
        "idle_requests_per_poll": idle_requests,
        "baseline_bytes_per_hour": doc_bytes * 60,
        "wasched_bytes_per_hour": idle_bytes * 60,
    }


async def _next_beat(
    beats: asyncio.Queue[dict[str, Any]], ok: Any, timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        details = await asyncio.wait_for(beats.get(), max(0.1, deadline - time.monotonic()))
        if ok(details):
            return details


async def bench_footprint(st: Stack, idle: float) -> list[dict[str, Any]]:
    """Start-up time to ready (poller: first heartbeat; sender: status `connected`;
    health: /ping answers), then idle RSS and CPU of each service, each run from an
    environment holding only what its Docker image installs."""
    rows = []
    nc = await nats.connect(st.nats.url)
    try:
        for service in ("poller", "sender", "health"):
            rows.append(await _footprint(st, nc, service, idle))
    finally:
        await nc.close()
    return rows


async def _footprint(st: Stack, nc: Any, service: str, idle: float) -> dict[str, Any]:
    env = st.env(f"footprint-{service}/", POLL_INTERVAL_SECONDS=60)
    ready = asyncio.Event()

    async def on_msg(msg: Any) -> None:
        data = json.loads(msg.data)
        if service == "poller" or data.get("state") == "connected":
            ready.set()

    subject = heartbeat_subject("poller") if service == "poller" else SENDER_STATUS
    sub = await nc.subscribe(subject, cb=on_msg)
    python = await asyncio.to_thread(image_python, service)
    started = time.monotonic()
    svc = st.start(service, env, python)
    if service == "health":
        await asyncio.to_thread(wait_until, lambda: _pings(env), 60, 0.02, "health /ping")
    else:
        await asyncio.wait_for(ready.wait(), 60)
    ready_seconds = time.monotonic() - started
    await sub.unsubscribe()
    cpu0 = cpu_seconds(svc.pid)
    await asyncio.sleep(idle)
    cpu = (cpu_seconds(svc.pid) - cpu0) / idle * 100
    row = {
        "service": service,
        "ready_seconds": ready_seconds,
        "rss_mb": rss_mb(svc.pid),
        "cpu_percent": cpu,
    }
    svc.stop()
    st.services.remove(svc)
    return row


def _pings(env: dict[str, str]) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{env['HEALTH_PORT']}/ping", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False
