"""Waiting on an event with a time limit, the one way the services do it."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass; whether it is set.

    Built on `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` can swallow a
    cancellation that lands as the event is set (CPython gh-86296), and a loop waiting on
    it may then never stop."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, seconds)):
            await event.wait()
    return event.is_set()
