"""Scenario 5: a web-UI-like writer adds, edits, reschedules, cancels and deletes messages with
plain GET/PUT during the run. None of its changes is lost; deleted or cancelled messages are
not sent (nor come back); a rescheduled message is not sent before its new time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.faults.conftest import OpenScenario
from tests.faults.scenario import sized
from tests.faults.schedule import make_schedule
from tests.faults.writer import WebUiWriter

MESSAGES = sized(200, 800)
WINDOW_SECONDS = sized(25, 100)
ATTEMPTS = sized(70, 280)
"""The writer's changes, one every 0.1–0.5 s: about the length of the window."""
LEAD_SECONDS = 3.0
ACTIONS = ("add", "edit", "reschedule", "delete", "cancel", "annotate")


@pytest.mark.timeout(sized(300, 1500))
async def test_other_writers_changes_survive_and_are_honoured(
    open_scenario: OpenScenario,
) -> None:
    scenario = await open_scenario("5 concurrent writer")
    ready = await scenario.start("poller", "sender")
    start = ready + timedelta(seconds=LEAD_SECONDS)
    scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))
    writer = WebUiWriter(scenario.stack.doc, scenario.rng, scenario.expected)

    await writer.run(attempts=ATTEMPTS, gap=(0.1, 0.5))

    scenario.never_sent = writer.never_sent - writer.raced
    scenario.deleted = writer.deleted
    scenario.raced = writer.raced
    scenario.must_send = set(scenario.expected) - writer.never_sent - writer.raced
    scenario.outcomes = {i: ("cancelled", None) for i in writer.cancelled - writer.raced}
    scenario.notes.append(f"writer: {dict(writer.actions)}, raced={len(writer.raced)}")
    verdict = await scenario.finish(timeout=sized(120, 600))

    for action in ACTIONS:
        scenario.expect(f"writer's {action}s", writer.actions[action], ">=", 2)
    must = scenario.must_send
    scenario.expect(
        f"of {len(must)} that must be sent, sent", len(must & scenario.sent_ids()), "==", len(must)
    )
    scenario.expect(
        "cancelled by the writer, ended cancelled",
        verdict.statuses["cancelled"],
        ">=",
        len(scenario.outcomes),
    )
    scenario.assert_ok()
