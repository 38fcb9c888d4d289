"""Account safety with real sender processes on a real nats-server: the send and lookup pace
is kept in NATS (a restart cannot reset it), lookups back off, sending resumes slowly after
a temporary ban, and one text does not go to many recipients at once.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.support.sending import (
    Collected,
    Senders,
    calls,
    due,
    heartbeats,
    outbox,
    publish_due,
    senders,
    write_script,
)
from tests.support.waiting import eventually
from wasched.common import topology
from wasched.common.events import Heartbeat, Outcome
from wasched.common.messages import Status

__all__ = ["senders"]
NUMBERS = ["447957189696", "447911123456", "447400123456", "447812345678"]


def waits_until(beats: Collected[Heartbeat], key: str, at_least: timedelta) -> bool:
    """The newest heartbeat says the next send/lookup waits at least this long."""
    if not beats or not beats[-1].details.get(key):
        return False
    when = datetime.fromisoformat(beats[-1].details[key])
    return when - datetime.now(UTC) >= at_least


def seconds_between(times: list[str]) -> list[float]:
    parsed = [datetime.fromisoformat(t) for t in times]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(parsed)]


@pytest.mark.parametrize(
    ("cap", "wait"),
    [("SEND_MAX_PER_HOUR", timedelta(minutes=50)), ("SEND_MAX_PER_DAY", timedelta(hours=23))],
)
async def test_a_restart_does_not_reset_the_send_caps(
    nc: NATS,
    js: JetStreamContext,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
    cap: str,
    wait: timedelta,
) -> None:
    first = senders.start(**{cap: 2})
    for n in (1, 2):
        await publish_due(js, due(f"cap-{n}"))
    await eventually(lambda: len(outcomes) == 2, timeout=30, what="two sends")
    first.kill()
    beats = await heartbeats(nc)
    senders.start("restarted", **{cap: 2})
    await publish_due(js, due("cap-3"))
    await eventually(
        lambda: waits_until(beats, "nextSendAt", wait) or outcomes.for_id("cap-3"),
        timeout=30,
        what=f"the restarted sender waiting for the {cap} window",
    )
    assert outcomes.for_id("cap-3") == [], "the restart reset the cap"
    assert [line["id"] for line in outbox(tmp_path)] == ["cap-1", "cap-2"]


async def test_lookups_are_capped_and_the_cap_survives_a_restart(
    nc: NATS,
    js: JetStreamContext,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    first = senders.start(faulty=True, LOOKUP_MAX_PER_HOUR=1)
    await publish_due(js, due("look-1", to=NUMBERS[0]))
    await eventually(lambda: outcomes.for_id("look-1"), timeout=30, what="the first send")
    first.kill()
    beats = await heartbeats(nc)
    senders.start("restarted", faulty=True, LOOKUP_MAX_PER_HOUR=1)
    await publish_due(js, due("look-2", to=NUMBERS[1]))
    await publish_due(js, due("look-3", to=NUMBERS[0]))  # looked up already: no lookup needed
    await eventually(lambda: outcomes.for_id("look-3"), timeout=30, what="the known number sent")
    await eventually(
        lambda: (
            waits_until(beats, "nextLookupAt", timedelta(minutes=50)) or outcomes.for_id("look-2")
        ),
        timeout=30,
        what="the lookup cap holding the new number",
    )
    assert outcomes.for_id("look-2") == []
    assert [c["jid"].split("@")[0] for c in calls(tmp_path, "lookup")] == [NUMBERS[0]]


async def test_a_failing_lookup_backs_off(
    js: JetStreamContext,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    failing = ["before:failed to send usync query: info query timed out", "ok"]
    script = write_script(tmp_path, {f"lookup:{NUMBERS[0]}": failing})
    senders.start(faulty=True, FAULTY_SCRIPT=script, LOOKUP_BACKOFF_SECONDS=10)
    await publish_due(js, due("backoff-1", to=NUMBERS[0]))
    await eventually(lambda: outcomes.for_id("backoff-1"), timeout=60, what="sent in the end")
    (gap,) = seconds_between([c["at"] for c in calls(tmp_path, "lookup")])
    assert gap >= 10 - 0.01, f"the lookup was retried after {gap:.1f}s"


async def test_lookups_are_cached_in_nats_across_a_restart(
    js: JetStreamContext,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    first = senders.start(faulty=True)
    await publish_due(js, due("cache-1", to=NUMBERS[2]))
    await eventually(lambda: outcomes.for_id("cache-1"), timeout=30)
    first.kill()
    senders.start("restarted", faulty=True)
    await publish_due(js, due("cache-2", to=NUMBERS[2]))
    await eventually(lambda: outcomes.for_id("cache-2"), timeout=30)
    assert len(calls(tmp_path, "lookup")) == 1, "the restart looked the number up again"
    bucket = await js.key_value(topology.LOOKUP_BUCKET)
    status = await bucket.status()
    assert status.stream_info.config.max_age == 7 * 86400, (
        "lookups expire after LOOKUP_CACHE_SECONDS"
    )
    assert (status.stream_info.config.max_bytes or 0) > 0, "the cache is bounded"


async def test_sending_resumes_slowly_after_a_temporary_ban(
    js: JetStreamContext,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    script = write_script(tmp_path, {"start": ["ban:2"]})
    senders.start(faulty=True, FAULTY_SCRIPT=script, SEND_MIN_GAP_SECONDS=1, SEND_RAMP_SECONDS=3600)
    for n in range(2):
        await publish_due(js, due(f"after-ban-{n}"))
    await eventually(lambda: len(outcomes) == 2, timeout=60, what="both sent after the ban")
    (gap,) = seconds_between([line["at"] for line in outbox(tmp_path)])
    # an hour-long ramp starts at a tenth of the pace: the 1 s gap is 10 s at first
    assert gap >= 9.5, f"sent {gap:.1f}s apart right after the ban"


async def test_one_text_does_not_go_to_many_recipients_at_once(
    nc: NATS,
    js: JetStreamContext,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    beats = await heartbeats(nc)
    senders.start(SEND_SAME_TEXT_MAX_RECIPIENTS=2, SEND_SAME_TEXT_WINDOW_SECONDS=3600)
    for n, number in enumerate(NUMBERS[:3]):
        await publish_due(js, due(f"same-{n}", to=number, text="Happy new year!"))
    await publish_due(js, due("other", to=NUMBERS[3], text="Your order shipped"))
    await eventually(
        lambda: (beats and beats[-1].details.get("heldSameText")) or len(outcomes) == 4,
        timeout=30,
        what="the third recipient of the same text held",
    )
    await eventually(lambda: len(outcomes) >= 3, timeout=30, what="the others sent")
    assert sorted(o.id for o in outcomes) == ["other", "same-0", "same-1"]
    assert {o.status for o in outcomes} == {Status.SENT}
