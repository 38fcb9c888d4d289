"""The invariant checks themselves: each violation they exist for is caught (no test that cannot fail)."""

from __future__ import annotations

import asyncio
import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.faults.invariants import Verdict, check_run
from tests.faults.outbox import Outbox, Send, read_outbox
from wasched.common.clock import format_utc

DUE = datetime(2026, 11, 29, 12, tzinfo=UTC)
JID = "447957189601@s.whatsapp.net"


def message(ident: str, status: str = "sent", **extra: Any) -> dict[str, Any]:
    base = {
        "id": ident,
        "to": "447957189601",
        "message": f"text {ident}",
        "scheduledTime": format_utc(DUE),
        "status": status,
        "labels": ["x"],
    }
    if status == "sent":
        base["sentAt"] = format_utc(DUE)
    return {**base, **extra}


def send(ident: str, late: float = 0.1, text: str | None = None) -> Send:
    return Send(ident, JID, text or f"text {ident}", DUE + timedelta(seconds=late))


def verdict_for(stored: list[dict[str, Any]], sends: list[Send], **kwargs: Any) -> Verdict:
    expected = {m["id"]: {k: v for k, v in m.items() if k != "status"} for m in stored}
    expected.update(kwargs.pop("expected", {}))
    kwargs.setdefault("must_send", frozenset())
    return check_run(expected, stored, Outbox(sends=sends, torn=[]), **kwargs)


def test_a_clean_run_passes() -> None:
    verdict = verdict_for([message("a"), message("b")], [send("a"), send("b")])
    assert verdict.problems == []


def test_a_second_send_is_a_duplicate() -> None:
    verdict = verdict_for([message("a")], [send("a"), send("a", late=3)])
    assert verdict.duplicates == 1


def test_a_message_left_pending_is_lost() -> None:
    verdict = verdict_for([message("a", status="pending")], [])
    assert verdict.lost == 1


def test_a_message_missing_from_the_document_is_lost() -> None:
    verdict = verdict_for([], [], expected={"a": message("a")})
    assert verdict.lost == 1


def test_sent_without_an_outbox_line_is_a_lie() -> None:
    assert any("never handed" in p for p in verdict_for([message("a")], []).problems)


def test_a_send_recorded_as_cancelled_is_caught() -> None:
    verdict = verdict_for([message("a", status="cancelled")], [send("a")])
    assert any("recorded as cancelled" in p for p in verdict.problems)


def test_a_deleted_message_that_was_sent_is_caught() -> None:
    verdict = verdict_for([], [send("gone")], never_sent=frozenset({"gone"}))
    assert any("must never be" in p for p in verdict.problems)


def test_an_early_send_is_caught() -> None:
    verdict = verdict_for([message("a")], [send("a", late=-1.0)])
    assert verdict.early == 1


def test_the_wrong_text_is_caught() -> None:
    verdict = verdict_for([message("a")], [send("a", text="old text")])
    assert any("text differs" in p for p in verdict.problems)


def test_a_writers_lost_field_is_caught() -> None:
    stored = [message("a")]
    expected = {"a": {**message("a"), "labels": ["edited"]}}
    verdict = verdict_for(stored, [send("a")], expected=expected)
    assert any("labels" in p for p in verdict.problems)


def interrupted(ident: str) -> dict[str, Any]:
    return message(ident, status="failed", errorKind="interrupted", sentAt=None)


def test_interrupted_needs_a_crash_after_its_claim() -> None:
    claim = DUE.timestamp()
    stored = [interrupted("a")]
    ok = verdict_for(stored, [], claims={"a": claim}, kills=[claim + 0.2])
    crash_before = verdict_for(stored, [], claims={"a": claim}, kills=[claim - 5])
    no_crash = verdict_for(stored, [], claims={"a": claim})
    no_claim = verdict_for(stored, [], kills=[claim + 0.2])
    assert ok.problems == []
    assert crash_before.problems and no_crash.problems and no_claim.problems


def test_one_crash_explains_one_interrupted_send() -> None:
    claim = DUE.timestamp()
    stored = [interrupted("a"), interrupted("b")]
    claims = {"a": claim, "b": claim + 0.01}
    verdict = verdict_for(stored, [], claims=claims, kills=[claim + 0.5])
    assert len(verdict.problems) == 1


def test_expected_outcomes_are_checked() -> None:
    stored = [message("a", status="failed", errorKind="validation", sentAt=None)]
    right = verdict_for(stored, [], outcomes={"a": ("failed", "validation")})
    wrong = verdict_for(stored, [], outcomes={"a": ("failed", "invalid_recipient")})
    assert right.problems == [] and wrong.problems


def test_a_torn_outbox_line_still_counts_as_a_send(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    whole = json.dumps({"id": "a", "jid": JID, "message": "x", "at": format_utc(DUE)})
    path.write_text(whole + "\n" + whole[:25] + "\n")
    outbox = read_outbox(path)
    assert outbox.counts()["a"] == 2
    assert outbox.torn


# --- blind spots of the first checker (issue 14); each failed against it -----------------

import pytest  # noqa: E402

from tests.faults import stack as stack_module  # noqa: E402
from tests.faults.schedule import make_schedule  # noqa: E402


def strict(stored: list[dict[str, Any]], sends: list[Send], **kwargs: Any) -> Verdict:
    """`verdict_for` through the strict checker: every stored message must be sent."""
    kwargs.setdefault("must_send", frozenset(m["id"] for m in stored))
    return verdict_for(stored, sends, **kwargs)


@pytest.mark.parametrize(
    ("status", "kind"),
    [("failed", "whatsapp_error"), ("expired", "expired"), ("failed", "validation")],
)
def test_a_valid_message_that_was_not_sent_is_lost(status: str, kind: str) -> None:
    stored = [message("a"), message("b", status=status, errorKind=kind, sentAt=None)]
    verdict = strict(stored, [send("a")])
    assert verdict.lost == 1
    assert any(p.startswith("b: must be sent") for p in verdict.problems), verdict.problems


def test_an_expected_failure_is_not_a_loss() -> None:
    stored = [message("a"), message("b", status="expired", errorKind="expired", sentAt=None)]
    verdict = strict(stored, [send("a")], must_send=frozenset({"a"}))
    assert verdict.problems == []


def test_interrupted_without_its_own_kill_is_lost() -> None:
    claim = DUE.timestamp()
    verdict = strict([interrupted("a")], [], claims={"a": claim}, kills=[])
    assert verdict.lost == 1


def test_an_interrupted_send_is_explained_only_by_the_first_kill_after_its_claim() -> None:
    """a was claimed, then b; the kill came after b's claim: it can only have cut b."""
    t = DUE.timestamp()
    stored = [interrupted("a"), message("b")]
    verdict = strict(stored, [send("b")], claims={"a": t, "b": t + 1.0}, kills=[t + 1.5])
    assert any(p.startswith("a: interrupted") for p in verdict.problems), verdict.problems


def test_a_later_kill_does_not_explain_an_earlier_claim() -> None:
    """The first kill after a's claim came while b was in flight; a later kill explains nothing."""
    t = DUE.timestamp()
    stored = [interrupted("a"), message("b")]
    claims = {"a": t, "b": t + 0.5}
    verdict = strict(stored, [send("b")], claims=claims, kills=[t + 0.2, t + 3.0])
    assert verdict.problems == []
    cut_b = strict(stored, [send("b")], claims=claims, kills=[t + 0.7, t + 3.0])
    assert any(p.startswith("a: interrupted") for p in cut_b.problems), cut_b.problems


def test_a_repeated_id_in_the_document_is_caught() -> None:
    stored = [message("a"), message("a")]
    verdict = strict(stored, [send("a")])
    assert any("2 messages with id" in p for p in verdict.problems), verdict.problems


def test_a_repeat_the_scenario_wrote_itself_is_allowed() -> None:
    stored = [message("a"), message("a", status="failed", errorKind="validation", sentAt=None)]
    verdict = strict(stored, [send("a")], repeated=frozenset({"a"}))
    assert verdict.problems == []


def test_a_deleted_message_that_reappears_is_caught() -> None:
    stored = [message("a"), message("gone", status="pending", sentAt=None)]
    verdict = strict(
        stored,
        [send("a")],
        expected={},
        must_send=frozenset({"a"}),
        never_sent=frozenset({"gone"}),
        deleted=frozenset({"gone"}),
    )
    assert any(p.startswith("gone: deleted") for p in verdict.problems), verdict.problems


def test_a_stored_id_nobody_wrote_is_caught() -> None:
    stored = [message("a"), message("stranger", status="pending", sentAt=None)]
    expected = {"a": message("a")}
    outbox = Outbox(sends=[send("a")], torn=[])
    verdict = check_run(expected, stored, outbox, must_send=frozenset({"a"}))
    assert any(p.startswith("stranger: in the stored document") for p in verdict.problems), (
        verdict.problems
    )


class _Log:
    def __init__(self, path: Path) -> None:
        self.log_path = path

    def append(self, text: str) -> None:
        with self.log_path.open("a") as log:
            log.write(text)


class _FakeStack:
    """What `kill_repeatedly` drives: kill/start by name, a log, a timeline."""

    def __init__(self, root: Path) -> None:
        self.timeline = stack_module.Timeline()
        self.procs = {"sender": _Log(root / "sender.log")}
        self.starts = 0

    def kill(self, name: str, kind: str = "sigkill") -> stack_module.Disruption:
        return self.timeline.begin(name, kind)

    def start(self, name: str) -> None:
        self.starts += 1


async def _kill(fake: _FakeStack, kills: int, **kwargs: Any) -> int:
    return await stack_module.kill_repeatedly(
        fake,  # type: ignore[arg-type]
        "sender",
        random.Random(1),
        gap=(0.0, 0.01),
        kills=kills,
        **kwargs,
    )


async def test_kills_are_counted_not_timed(tmp_path: Path) -> None:
    fake = _FakeStack(tmp_path)
    assert await _kill(fake, kills=4) == 4
    assert fake.timeline.kills() == {"sender:sigkill@random": 4}


async def test_a_kill_aimed_at_a_send_that_never_came_is_not_mid_send(tmp_path: Path) -> None:
    fake = _FakeStack(tmp_path)
    aims = {"mid-send": r"holding (\S+)"}
    await _kill(fake, kills=1, aims=aims, wait_seconds=0.2)
    assert fake.timeline.kills() == {"sender:sigkill@random": 1}


async def test_a_kill_aimed_at_a_send_that_had_finished_is_not_mid_send(tmp_path: Path) -> None:
    """The log line came, but the send was over when the kill landed (the check says so)."""
    fake = _FakeStack(tmp_path)
    fake.procs["sender"].append("holding a for 0.05s\n")

    async def in_flight(match: re.Match[str]) -> bool:
        assert match[1] == "b"
        return False

    async def log_soon() -> None:
        await asyncio.sleep(0.05)
        fake.procs["sender"].append("holding b for 0.05s\n")

    logged = asyncio.create_task(log_soon())
    aims = {"mid-send": r"holding (\S+) for"}
    await _kill(fake, kills=1, aims=aims, confirm={"mid-send": in_flight}, wait_seconds=5)
    await logged
    assert fake.timeline.kills() == {"sender:sigkill@random": 1}


async def test_a_kill_aimed_at_a_send_in_flight_is_mid_send(tmp_path: Path) -> None:
    fake = _FakeStack(tmp_path)
    fake.procs["sender"].append("holding a for 0.05s\n")

    async def log_soon() -> None:
        await asyncio.sleep(0.05)
        fake.procs["sender"].append("holding b ")
        await asyncio.sleep(0.05)
        fake.procs["sender"].append("for 0.05s\n")  # a line written in two pieces

    async def in_flight(match: re.Match[str]) -> bool:
        return match[1] == "b"

    logged = asyncio.create_task(log_soon())
    aims = {"mid-send": r"holding (\S+) for"}
    await _kill(fake, kills=1, aims=aims, confirm={"mid-send": in_flight}, wait_seconds=5)
    await logged
    assert fake.timeline.kills() == {"sender:sigkill@mid-send": 1}


def test_the_seed_can_be_set_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.faults.scenario import scenario_seed

    monkeypatch.setenv("WASCHED_TEST_SEED", "4242")
    assert scenario_seed() == 4242


def test_a_schedule_is_the_same_for_the_same_seed() -> None:
    start = DUE
    first = make_schedule(20, start, 10, random.Random(7))
    again = make_schedule(20, start, 10, random.Random(7))
    assert first == again


# -- repeating messages: occurrence records and the series' entry ---------------------------

SERIES_AT = [DUE + timedelta(seconds=5 * n) for n in range(3)]


def settled_sent() -> dict[str, Any]:
    from wasched.common.ledger import LedgerEntry, LedgerState
    from wasched.common.recurrence import occurrence_id

    return {
        occurrence_id("s", at): LedgerEntry(
            state=LedgerState.SENT, sent_at=at + timedelta(seconds=0.2)
        )
        for at in SERIES_AT
    }


def finished_entry(**change: Any) -> dict[str, Any]:
    history = [
        {"at": format_utc(at), "status": "sent", "sentAt": format_utc(at + timedelta(seconds=0.2))}
        for at in SERIES_AT
    ]
    entry = {
        "id": "s",
        "to": "447957189601",
        "message": "text s",
        "status": "sent",
        "history": history,
        "occurrences": 3,
        "lastStatus": "sent",
        "lastSentAt": history[-1]["sentAt"],
        "nextAt": None,
    }
    return {**entry, **change}


def series_problems(entry: dict[str, Any], settled: dict[str, Any]) -> tuple[list[str], int]:
    from tests.faults.series import check_series, occurrence_records

    return check_series(entry, occurrence_records(entry, SERIES_AT, settled))


def test_a_finished_series_that_agrees_with_the_ledger_passes() -> None:
    assert series_problems(finished_entry(), settled_sent()) == ([], 0)


def test_an_occurrence_the_ledger_never_settled_is_lost() -> None:
    settled = settled_sent()
    settled.pop(next(iter(settled)))
    problems, lost = series_problems(finished_entry(), settled)
    assert lost == 1
    assert any("never settled" in p for p in problems)


def test_a_series_entry_that_misstates_its_occurrences_is_caught() -> None:
    for change, says in [
        ({"occurrences": 2}, "occurrences=2"),
        ({"lastSentAt": format_utc(DUE)}, "lastSentAt="),
        ({"history": finished_entry()["history"][:2]}, "history"),
        ({"nextAt": format_utc(DUE + timedelta(seconds=15))}, "ended with nextAt"),
        ({"status": "pending"}, "ended with nextAt"),
    ]:
        problems, _ = series_problems(finished_entry(**change), settled_sent())
        assert any(says in p for p in problems), (change, problems)


def test_occurrence_records_are_checked_like_stored_messages() -> None:
    from tests.faults.series import occurrence_records
    from wasched.common.recurrence import occurrence_id

    entry = finished_entry()
    records = occurrence_records(entry, SERIES_AT, settled_sent())
    ids = frozenset(r["id"] for r in records)
    first, second = occurrence_id("s", SERIES_AT[0]), occurrence_id("s", SERIES_AT[1])
    sends = [
        Send(r["id"], JID, "text s", datetime.fromisoformat(r["scheduledTime"])) for r in records
    ]
    sends.append(Send(first, JID, "text s", SERIES_AT[0] + timedelta(seconds=9)))  # twice
    sends[1] = Send(second, JID, "text s", SERIES_AT[1] - timedelta(seconds=1))  # early
    verdict = check_run(
        {"s": entry},
        [entry, *records],
        Outbox(sends=sends, torn=[]),
        must_send=ids,
        known=ids,
        series=frozenset({"s"}),
    )
    assert verdict.duplicates == 1
    assert verdict.early == 1
    assert not any(p.startswith("s: ") for p in verdict.problems)  # the entry is no send
