"""Scenario 11: a B2-like store (501 to conditional PUT) with object versions, and a writer whose
edit lands between the poller's last look and its blind PUT, again and again. Every such edit is
overwritten by the poller's PUT and must come back from the object versions: 0 edits lost."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest

from tests.faults.conftest import OpenScenario
from tests.faults.s3doc import DocumentClient
from tests.faults.scenario import Scenario, sized
from tests.faults.schedule import make_message, make_schedule
from tests.support.s3proxy import B2LikeProxy
from wasched.cli.servers import S3Server, ensure_bucket
from wasched.common.clock import utcnow

MESSAGES = sized(120, 480)
WINDOW_SECONDS = sized(20, 80)
LEAD_SECONDS = 3.0
BUCKET = "wasched-versioned"


class RacingWriter:
    """Edits the schedule from inside the proxy, just before the poller's PUT reaches S3."""

    def __init__(self, doc: DocumentClient, scenario: Scenario) -> None:
        self.doc, self.scenario, self.rng = doc, scenario, scenario.rng
        self.edits = 0
        self.added = 0
        self.added_ids: set[str] = set()
        self.rested = False
        self.lock = threading.Lock()

    def __call__(self, path: str) -> None:
        if not path.split("?")[0].endswith("scheduled.json"):
            return
        with self.lock:
            self.rested = not self.rested  # every other PUT: the poller's repair gets through
            if not self.rested:
                return
            data = self.doc.get()
            now = utcnow()
            if self.rng.random() < 0.3:
                self.added += 1
                due = now + timedelta(seconds=self.rng.uniform(4, 10))
                new = make_message(self.added, due, self.rng, tag="race")
                data["messages"].append(new)
                self.scenario.expected[new["id"]] = dict(new)
                self.scenario.must_send.add(new["id"])
                self.added_ids.add(new["id"])
            else:
                target = self.rng.choice(
                    [m for m in data["messages"] if m.get("id") in self.scenario.expected]
                )
                self.edits += 1
                target["ui"] = {"note": f"edit {self.edits}"}
                self.scenario.expected[target["id"]]["ui"] = target["ui"]
            self.doc.put(data)


@pytest.mark.timeout(sized(300, 1500))
async def test_edits_overwritten_by_blind_puts_come_back_from_object_versions(
    open_scenario: OpenScenario, seaweed: S3Server
) -> None:
    ensure_bucket(seaweed, BUCKET)
    DocumentClient(seaweed, "-").client.put_bucket_versioning(
        Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    with B2LikeProxy(seaweed.endpoint) as proxy:
        env = {"S3_ENDPOINT": proxy.endpoint, "S3_BUCKET": BUCKET}
        scenario = await open_scenario("11 B2 store, versions, racing writer", env=env)
        stack = scenario.stack
        stack.doc = DocumentClient(seaweed, f"{stack.prefix}scheduled.json", bucket=BUCKET)
        ready = await scenario.start("poller", "sender")
        start = ready + timedelta(seconds=LEAD_SECONDS)
        scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))
        writer = RacingWriter(stack.doc, scenario)
        proxy.before_put = writer
        await asyncio.sleep(max(0.0, (start - utcnow()).total_seconds() + WINDOW_SECONDS))
        proxy.before_put = None  # the race ends with the window; what it added must still go
        verdict = await scenario.finish(timeout=sized(120, 600))
    repaired = len(stack.log_matches("poller", r"re-applied"))
    scenario.notes.append(
        f"writer raced {writer.edits + writer.added} PUTs ({writer.edits} edits, "
        f"{writer.added} additions); poller repairs logged: {repaired}"
    )
    final = stack.doc.get()["messages"]
    kept = {m.get("id"): m.get("ui") for m in final}
    lost = [
        i for i, mine in scenario.expected.items() if "ui" in mine and kept.get(i) != mine["ui"]
    ]
    scenario.expect(
        "the poller ran in merge mode", "merge" in stack.tail("poller", 100_000), "==", 1
    )
    scenario.expect("PUTs the writer raced", writer.edits + writer.added, ">=", 20)
    scenario.expect("raced edits lost", len(lost), "==", 0)
    scenario.expect("raced additions sent", len(writer.added_ids & scenario.sent_ids()), "==",
                    len(writer.added_ids))  # fmt: skip
    assert verdict is scenario.verdict
    scenario.assert_ok()
