"""Scenario 11: a B2-like store (501 to conditional PUT) with object versions, and a writer whose
edit lands between the poller's last look and its blind PUT, again and again. Every such edit is
overwritten by the poller's PUT and must come back from the object versions: 0 edits lost."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.faults.s3doc import DocumentClient
from tests.faults.scenario import Scenario
from tests.faults.schedule import make_message, make_schedule
from tests.faults.stack import Heartbeats, Stack, start_services
from tests.faults.summary import Summary
from tests.support.s3proxy import B2LikeProxy
from wasched.cli.servers import S3Server, ensure_bucket
from wasched.common.clock import utcnow

MESSAGES = 120
WINDOW_SECONDS = 20.0
BUCKET = "wasched-versioned"


class RacingWriter:
    """Edits the schedule from inside the proxy, just before the poller's PUT reaches S3."""

    def __init__(self, doc: DocumentClient, scenario: Scenario) -> None:
        self.doc, self.scenario, self.rng = doc, scenario, scenario.rng
        self.edits = 0
        self.added = 0
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
            else:
                target = self.rng.choice(
                    [m for m in data["messages"] if m.get("id") in self.scenario.expected]
                )
                self.edits += 1
                target["ui"] = {"note": f"edit {self.edits}"}
                self.scenario.expected[target["id"]]["ui"] = target["ui"]
            self.doc.put(data)


@pytest.mark.timeout(300)
async def test_edits_overwritten_by_blind_puts_come_back_from_object_versions(
    nats_url: str,
    nc: NATS,
    js: JetStreamContext,
    seaweed: S3Server,
    prefix: str,
    tmp_path: Path,
    report: list[Summary],
    stacks: list[Stack],
) -> None:
    ensure_bucket(seaweed, BUCKET)
    DocumentClient(seaweed, "-").client.put_bucket_versioning(
        Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    with B2LikeProxy(seaweed.endpoint) as proxy:
        env = {"S3_ENDPOINT": proxy.endpoint, "S3_BUCKET": BUCKET}
        stack = Stack(tmp_path, seaweed, prefix, nats_url, env_overrides=env)
        stack.doc = DocumentClient(seaweed, f"{prefix}scheduled.json", bucket=BUCKET)
        stacks.append(stack)
        scenario = Scenario("11 B2 store, versions, racing writer", stack, report, crash_targets=())
        beats = Heartbeats()
        await beats.attach(nc)
        start = utcnow() + timedelta(seconds=8)
        scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))
        writer = RacingWriter(stack.doc, scenario)
        proxy.before_put = writer
        await start_services(stack, beats, "poller", "sender")
        await asyncio.sleep(max(0.0, start.timestamp() + WINDOW_SECONDS - time.time()))
        proxy.before_put = None  # the race ends with the window; what it added must still go
        verdict = await scenario.finish(js, timeout=120)
    repaired = len(stack.log_matches("poller", r"re-applied"))
    scenario.notes.append(
        f"writer raced {writer.edits + writer.added} PUTs ({writer.edits} edits, "
        f"{writer.added} additions); poller repairs logged: {repaired}"
    )
    print(scenario.notes[-1])
    assert "merge" in stack.tail("poller", 100_000)
    verdict.assert_ok()
    assert writer.edits + writer.added >= 20, "too few races to show anything"
    final = json.loads(json.dumps(stack.doc.get()))
    lost = [
        ident
        for ident, mine in scenario.expected.items()
        if "ui" in mine
        and next((m.get("ui") for m in final["messages"] if m.get("id") == ident), None)
        != mine["ui"]
    ]
    assert lost == [], f"{len(lost)} edits lost"
