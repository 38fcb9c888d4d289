"""When messages go out: scheduling precision (throttle off) and a burst at the default pace.

These runs mostly wait, so every run gets its own cell and all of them run at
once. Lateness is `at` in each outbox (the moment the dryrun transport was
handed the message) minus the message's `scheduledTime`. wasched's services
are started and ready (first heartbeat, sender connected) before the messages
are written, `lead` seconds ahead of their time, and it polls every 2 s: it
learns of them ahead of time, as it does in use, and the start-up of several
services at once on a busy machine does not count. The baseline runs beside it
on its own key, polling every `interval` seconds from when the messages are
written.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import documents
from bench.harness import Cell, Stack
from wasched.common.clock import parse_utc
from wasched.sender.config import SenderSettings


def _messages(tag: str, times: list[datetime]) -> list[dict[str, Any]]:
    return [
        documents.message(f"{tag}{i}", t, to=documents.contact(i), text=f"timing {i}")
        for i, t in enumerate(times)
    ]


async def _ready(st: Stack, cell: Cell, python: dict[str, str], **extra: object) -> None:
    """Start wasched on an empty schedule and wait until it is ready to send."""
    st.put(cell.key, documents.render([]))
    beats = await cell.heartbeats()
    env = cell.env(POLL_INTERVAL_SECONDS=2, **extra)
    cell.start("wasched.sender", env, python["sender"])
    cell.start("wasched.poller", env, python["poller"])
    await beats.next(timeout=180)
    await cell.sender_connected(180)


def _lateness(outbox: Any, msgs: list[dict[str, Any]]) -> list[float]:
    """In send order."""
    due = {m["id"]: parse_utc(m["scheduledTime"]) for m in msgs}
    lines = sorted(_lines(outbox), key=lambda line: line["at"])
    return [(parse_utc(line["at"]) - due[line["id"]]).total_seconds() for line in lines]


def _lines(path: Any) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


async def _until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.5)
    return False


def _baseline_env(cell: Cell, interval: float) -> tuple[dict[str, str], Any, str]:
    prefix = f"{cell.tag}-baseline/"
    outbox = cell.outbox.with_name("baseline-outbox.jsonl")
    env = cell.env(S3_PREFIX=prefix, DRYRUN_OUTBOX=outbox, BASELINE_INTERVAL_SECONDS=interval)
    return env, outbox, f"{prefix}scheduled.json"


async def precision(
    st: Stack, count: int, spread: float, lead: float, interval: float, python: dict[str, str]
) -> dict[str, Any]:
    """`count` messages due over `spread` seconds, the first `lead` s after they are written."""
    async with st.cell("late") as cell:
        await _ready(st, cell, python)
        first = datetime.now(UTC) + timedelta(seconds=lead)
        step = spread / max(1, count - 1)
        times = [first + timedelta(seconds=step * i) for i in range(count)]
        ours, theirs = _messages("l", times), _messages("b", times)
        base_env, base_outbox, base_key = _baseline_env(cell, interval)
        st.put(base_key, documents.render(theirs))
        cell.start("bench.baseline", base_env)
        st.put(cell.key, documents.render(ours))
        wait = lead + spread + interval + 90
        await _until(
            lambda: len(_lines(cell.outbox)) >= count and len(_lines(base_outbox)) >= count, wait
        )
        return {
            "wasched": _lateness(cell.outbox, ours),
            "baseline": _lateness(base_outbox, theirs),
        }


def _slowest_gap() -> float:
    """Seconds between two sends at the default pace, at worst (gap plus full jitter), plus
    a number lookup and some slack."""
    defaults = SenderSettings.model_fields
    gap = defaults["send_min_gap_seconds"].default + defaults["send_jitter_seconds"].default
    return gap + defaults["lookup_min_gap_seconds"].default + 5


async def burst_wasched(st: Stack, count: int, lead: float, python: dict[str, str]) -> list[float]:
    """`count` messages due at the same instant, the sender at its default throttle."""
    async with st.cell("burst") as cell:
        await _ready(st, cell, python, throttle=True)
        due = datetime.now(UTC) + timedelta(seconds=lead)
        msgs = _messages("u", [due] * count)
        st.put(cell.key, documents.render(msgs))
        await _until(lambda: len(_lines(cell.outbox)) >= count, lead + count * _slowest_gap() + 60)
        return _lateness(cell.outbox, msgs)


async def burst_baseline(st: Stack, count: int, lead: float, interval: float) -> list[float]:
    """The same burst for the old loop, which starts polling now: the burst, `lead` s
    ahead, waits for the poll after it."""
    async with st.cell("burst-base") as cell:
        due = datetime.now(UTC) + timedelta(seconds=lead)
        msgs = _messages("v", [due] * count)
        env, outbox, key = _baseline_env(cell, interval)
        st.put(key, documents.render(msgs))
        cell.start("bench.baseline", env)
        await _until(lambda: len(_lines(outbox)) >= count, lead + interval + 120)
        return _lateness(outbox, msgs)
