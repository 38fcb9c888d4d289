"""Scenario 5: a web-UI-like writer adds, edits, reschedules, cancels and deletes messages with
plain GET/PUT during the run. None of its changes is lost; deleted or cancelled messages are
not sent; a rescheduled message is not sent before its new time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.faults.scenario import Scenario
from tests.faults.schedule import make_schedule
from tests.faults.stack import Heartbeats, Stack, start_services
from tests.faults.summary import Summary
from tests.faults.writer import WebUiWriter
from wasched.cli.servers import S3Server
from wasched.common.clock import utcnow

MESSAGES = 200
WINDOW_SECONDS = 25.0


@pytest.mark.timeout(300)
async def test_other_writers_changes_survive_and_are_honoured(
    nats_url: str,
    nc: NATS,
    js: JetStreamContext,
    seaweed: S3Server,
    prefix: str,
    tmp_path: Path,
    report: list[Summary],
    stacks: list[Stack],
) -> None:
    stack = Stack(tmp_path, seaweed, prefix, nats_url)
    stacks.append(stack)
    scenario = Scenario("5 concurrent writer", stack, report, crash_targets=())
    beats = Heartbeats()
    await beats.attach(nc)
    start = utcnow() + timedelta(seconds=8)
    scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))
    writer = WebUiWriter(stack.doc, scenario.rng, scenario.expected)

    await start_services(stack, beats, "poller", "sender")
    await writer.run(until=start.timestamp() + WINDOW_SECONDS - 2, gap=(0.1, 0.5))

    scenario.never_sent = writer.never_sent - writer.raced
    scenario.raced = writer.raced
    scenario.outcomes = {i: ("cancelled", None) for i in writer.cancelled - writer.raced}
    scenario.notes.append(f"writer: {dict(writer.actions)}, raced={len(writer.raced)}")
    verdict = await scenario.finish(js, timeout=120)

    verdict.assert_ok()
    for action in ("add", "edit", "reschedule", "delete", "cancel", "annotate"):
        assert writer.actions[action] >= 2, f"the writer did too few {action}s: {writer.actions}"
