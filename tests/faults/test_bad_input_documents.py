"""Scenario 7, documents: unparseable documents are never overwritten, and sends made while
the document was unreadable are recorded once it is fixed; a lone surrogate escape (valid
JSON) does not block outcome writes."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from nats.js import JetStreamContext

from tests.faults.conftest import OpenScenario
from tests.faults.schedule import document, make_schedule
from tests.faults.stack import Heartbeats, Stack
from tests.support.waiting import eventually
from wasched.common.clock import parse_utc, utcnow
from wasched.common.events import DueMessage
from wasched.common.topology import DUE, msg_id_header

Message = dict[str, Any]


CORRUPT_BODIES = {
    "truncated": b'{"messages": [{"id": "a", "to": "447957189696", "message": "hi", "sche',
    "deeply nested": b'{"messages": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}",
    "5000-digit number": b'{"messages": [], "counter": 1' + b"0" * 5000 + b"}",
    "a list": b'[{"id": "a"}]',
    "not UTF-8": b'{"messages": [{"id": "\xff\xfe"}]}',
}


@pytest.mark.timeout(300)
async def test_an_unparseable_document_is_never_overwritten(
    open_scenario: OpenScenario,
) -> None:
    scenario = await open_scenario("7 unparseable document")
    stack, beats, js = scenario.stack, scenario.beats, scenario.nc.jetstream()
    ready = await scenario.start("poller", "sender")
    first = make_schedule(10, ready + timedelta(seconds=2), 4, scenario.rng)
    scenario.seed_document(first)

    held: list[Message] = []
    kept = 0
    for name, body in CORRUPT_BODIES.items():
        stack.doc.put_bytes(body)
        put_at = time.time()
        # sent while the document is unreadable: their outcomes must wait, not be forced in
        batch = make_schedule(3, utcnow() - timedelta(seconds=1), 0.5, scenario.rng, tag=name[:4])
        held += batch
        await _publish_due(js, batch)
        noticed = await _wait_poller_cycles(stack, beats, put_at, cycles=3)
        if stack.doc.get_bytes() == body:
            kept += 1
            scenario.notes.append(f"{name}: kept byte for byte; reported: {noticed!r:.80}")
        else:
            scenario.problems.append(f"the {name} document was overwritten")

    scenario.seed_document([*first, *held])  # fixed: the held outcomes can now be written
    await scenario.finish(timeout=120)
    scenario.expect("unparseable documents kept byte for byte", kept, "==", len(CORRUPT_BODIES))
    recorded = {m["id"] for m in held} & scenario.sent_ids()
    scenario.expect(
        "sends while unreadable, recorded sent after the fix", len(recorded), "==", len(held)
    )
    scenario.assert_ok()


async def _publish_due(js: JetStreamContext, batch: list[Message]) -> None:
    """Hand messages straight to the sender, as a fired schedule would."""
    for message in batch:
        due = DueMessage(
            id=message["id"],
            to=message["to"],
            message=message["message"],
            scheduled_time=parse_utc(message["scheduledTime"]),
        )
        await js.publish(DUE, due.to_json(), headers=msg_id_header("due", message["id"]))


async def _wait_poller_cycles(
    stack: Stack, beats: Heartbeats, after: float, cycles: int
) -> str | None:
    """Wait for `cycles` poller heartbeats after `after`; the last error one of them reported."""

    def enough() -> bool:
        stack.assert_alive("poller")
        stack.assert_alive("sender")
        return len(beats.since("poller", after)) >= cycles

    await eventually(enough, timeout=60, interval=0.1, what=f"{cycles} poller cycles")
    errors = [b.get("lastError") for b in beats.since("poller", after) if b.get("lastError")]
    return errors[-1] if errors else None


@pytest.mark.timeout(180)
async def test_a_lone_surrogate_in_the_document_does_not_block_outcomes(
    open_scenario: OpenScenario,
) -> None:
    """JSON allows `\\ud83c` (JavaScript's JSON.stringify writes it for half an emoji)."""
    scenario = await open_scenario("7 lone surrogate")
    ready = await scenario.start("poller", "sender")
    messages = make_schedule(20, ready + timedelta(seconds=2), 4, scenario.rng)
    messages[0]["note"] = "half an emoji: \ud83c"
    scenario.expected.update({m["id"]: dict(m) for m in messages})
    scenario.must_send.update(scenario.expected)
    scenario.stack.doc.put_bytes(json.dumps(document(messages)).encode())  # \\ud83c escapes

    verdict = await scenario.finish(timeout=45)
    scenario.expect(f"of {len(messages)}, sent", verdict.statuses["sent"], "==", len(messages))
    scenario.assert_ok()
