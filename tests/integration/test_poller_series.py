"""Repeating messages and local times through a real poller: each occurrence handed over
once, on time, by its own schedule; outcomes written into the series' one entry; wall
times on clock-change days handed to NATS at the documented instant.

The test plays the web UI (plain S3 writes) and the sender (claims and settles in the
ledger, publishes outcomes), as the other poller tests do.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.conftest import TEST_BUCKET
from tests.integration.test_poller_kit import (
    Watch,
    WebUi,
    claim_as_sender,
    message,
    running_poller,
    settle_sent,
    stream_messages,
    utcnow,
)
from tests.support.mediafiles import OGG_OPUS, jpeg, put
from tests.support.sending import Senders, outbox, senders
from tests.support.waiting import eventually
from wasched.cli.servers import S3Server
from wasched.common import topology
from wasched.common.clock import format_utc, parse_utc
from wasched.common.events import DueMessage
from wasched.common.recurrence import occurrence_id
from wasched.poller.book import message_id_of, schedule_time

__all__ = ["senders"]

ON_TIME = 1.0  # seconds after the occurrence (the bound for one-time messages)
CARD = jpeg(64)


def whole_second(seconds: float) -> datetime:
    return (utcnow() + timedelta(seconds=seconds)).replace(microsecond=0)


async def test_each_occurrence_goes_once_on_time_and_the_entry_tells_the_story(
    seaweed: S3Server, prefix: str, nats_url: str, js: JetStreamContext, nc: NATS, tmp_path: Path
) -> None:
    """A 60 s poll interval: only the start-up poll runs, so every hand-over is a fire."""
    first = whole_second(12)  # leaves the child process time to start on a busy machine
    times = [first + timedelta(seconds=3 * n) for n in range(3)]
    series = message(
        "every-3s",
        first,
        repeat="FREQ=SECONDLY;INTERVAL=3;COUNT=3",
        labels=["kept as written"],
    )
    web = WebUi(seaweed, prefix)
    web.put([series])
    watch = await Watch.start(nc, topology.DUE)
    async with running_poller(
        seaweed, prefix, nats_url, tmp_path, POLL_INTERVAL_SECONDS=60
    ) as poller:
        await poller.wait_log("scheduled 3 for later")
        await poller.wait_log("updated the record of series every-3s")
        assert (first - utcnow()).total_seconds() > 1, "the poller started too late to test"
        stored = web.by_id()["every-3s"]
        assert stored["nextAt"] == format_utc(first)
        assert (stored["history"], stored["occurrences"]) == ([], 0)
        for n, at in enumerate(times):
            await eventually(lambda n=n: len(watch.got) > n, 20, what=f"occurrence {n} handed over")
            received, msg = watch.got[n]
            due = DueMessage.model_validate_json(msg.data)
            assert due.id == occurrence_id("every-3s", at)
            assert due.scheduled_time == at
            assert due.message == "text of every-3s"
            assert 0 <= (received - at).total_seconds() < ON_TIME, f"{due.id} not on time"
            claim = await claim_as_sender(js, due)
            assert claim.won
            await settle_sent(js, due, claim)
            if n == 0:  # the first outcome is in the entry while the series goes on

                def shows_first() -> bool:
                    entry = web.by_id()["every-3s"]
                    return entry.get("occurrences") == 1

                await eventually(shows_first, 20, what="first occurrence in the entry")
                entry = web.by_id()["every-3s"]
                assert entry["nextAt"] == format_utc(times[1])
                assert entry["status"] == "pending"

        await eventually(
            lambda: web.by_id()["every-3s"]["status"] == "sent", 20, what="series ended"
        )
        assert "restored" not in poller.log()
    entry = web.by_id()["every-3s"]
    assert [h["at"] for h in entry["history"]] == [format_utc(t) for t in times]
    assert {h["status"] for h in entry["history"]} == {"sent"}
    assert all(h["sentAt"] == "2025-12-24T10:00:02.311Z" for h in entry["history"])
    assert entry["occurrences"] == 3
    assert entry["lastStatus"] == "sent"
    assert entry["lastSentAt"] == "2025-12-24T10:00:02.311Z"
    assert entry["nextAt"] is None
    assert entry["labels"] == ["kept as written"]  # the writer's own field
    assert len(watch.got) == 3  # each occurrence once, not even a repeat NATS would drop


def sched_times(msgs: list) -> dict[str, datetime]:
    found = {}
    for msg in msgs:
        ident, at = message_id_of(msg.subject), schedule_time(msg.headers or {})
        if ident is not None and at is not None:
            found[ident] = at
    return found


async def test_wall_times_on_clock_change_days_are_handed_to_nats_at_the_documented_instant(
    seaweed: S3Server, prefix: str, nats_url: str, js: JetStreamContext, tmp_path: Path
) -> None:
    """docs/design.md: a wall time the clocks skip is sent at the jump, one they repeat at
    its first instant; a weekly 09:00 stays 09:00 local across the change."""
    cases = {
        "london-gap": ("2027-03-28T01:30:00", "Europe/London", "2027-03-28T01:00:00Z"),
        "london-fold": ("2027-10-31T01:30:00", "Europe/London", "2027-10-31T00:30:00Z"),
        "new-york-gap": ("2027-03-14T02:30:00", "America/New_York", "2027-03-14T07:00:00Z"),
        "new-york-fold": ("2027-11-07T01:30:00", "America/New_York", "2027-11-07T05:30:00Z"),
        "sydney-fold": ("2027-04-04T02:30:00", "Australia/Sydney", "2027-04-03T15:30:00Z"),
        "sydney-gap": ("2027-10-03T02:30:00", "Australia/Sydney", "2027-10-02T16:00:00Z"),
    }
    messages = [
        message(ident, utcnow(), scheduledTime=wall, timezone=zone)
        for ident, (wall, zone, _) in cases.items()
    ]
    messages.append(
        message(
            "weekly",
            utcnow(),
            scheduledTime="2027-03-21T09:00:00",
            timezone="Europe/London",
            repeat="FREQ=WEEKLY;COUNT=3",
        )
    )
    WebUi(seaweed, prefix).put(messages)
    async with running_poller(
        seaweed, prefix, nats_url, tmp_path, SCHEDULE_HORIZON_SECONDS=2 * 365 * 86400
    ) as poller:
        await poller.wait_log("scheduled 9 for later")
    handed = sched_times(await stream_messages(js, f"{topology.SCHED_PREFIX}*"))
    expected = {ident: datetime.fromisoformat(instant) for ident, (_, _, instant) in cases.items()}
    weekly = [datetime(2027, 3, 21, 9, tzinfo=UTC), datetime(2027, 3, 28, 8, tzinfo=UTC)]
    weekly.append(datetime(2027, 4, 4, 8, tzinfo=UTC))  # 09:00 BST from the 28th
    expected.update({occurrence_id("weekly", at): at for at in weekly})
    assert handed == expected


async def test_a_picture_at_a_local_time_and_a_voice_series_reach_the_outbox_from_the_document(
    seaweed: S3Server, prefix: str, nats_url: str, senders: Senders, tmp_path: Path
) -> None:
    """The whole path from the stored document: the poller reads the local time and the
    media, hands them over; the sender (dryrun) fetches from the bucket and records them."""
    put(seaweed, f"{prefix}media/card.jpg", CARD)
    put(seaweed, f"{prefix}media/hello.ogg", OGG_OPUS)
    london = ZoneInfo("Europe/London")
    wall = (utcnow() + timedelta(seconds=10)).astimezone(london).replace(tzinfo=None)
    first = whole_second(12)
    card = message(
        "card",
        utcnow(),
        message="Merry Christmas",
        scheduledTime=wall.isoformat(timespec="milliseconds"),
        timezone="Europe/London",
        media={"type": "image", "key": f"{prefix}media/card.jpg"},
    )
    voice = message(
        "voice",
        first,
        message="",
        repeat="FREQ=SECONDLY;INTERVAL=3;COUNT=2",
        media={"type": "voice", "key": f"{prefix}media/hello.ogg"},
    )
    web = WebUi(seaweed, prefix)
    web.put([card, voice])
    media_env = {
        "S3_ENDPOINT": seaweed.endpoint,
        "S3_ACCESS_KEY_ID": seaweed.access_key,
        "S3_SECRET_ACCESS_KEY": seaweed.secret_key,
        "S3_BUCKET": TEST_BUCKET,
        "S3_PREFIX": prefix,
    }
    senders.start(**media_env)
    async with running_poller(seaweed, prefix, nats_url, tmp_path):

        def done() -> bool:
            stored = web.by_id()
            return stored["card"]["status"] == "sent" and stored["voice"]["status"] == "sent"

        await eventually(done, 60, what="picture and both voice notes sent")
    lines = {line["id"]: line for line in outbox(tmp_path)}
    ids = [occurrence_id("voice", first + timedelta(seconds=3 * n)) for n in range(2)]
    assert set(lines) == {"card", *ids}
    assert lines["card"]["media"]["sha256"] == hashlib.sha256(CARD).hexdigest()
    assert lines["card"]["message"] == "Merry Christmas"
    assert parse_utc(lines["card"]["at"]) >= wall.replace(tzinfo=london).astimezone(UTC)
    for ident in ids:
        assert lines[ident]["media"]["type"] == "voice"
        assert lines[ident]["media"]["sha256"] == hashlib.sha256(OGG_OPUS).hexdigest()
    assert web.by_id()["voice"]["occurrences"] == 2
