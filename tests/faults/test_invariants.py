"""The invariant checks themselves: each violation they exist for is caught (no test that cannot fail)."""

from __future__ import annotations

import json
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
    ok = verdict_for(stored, [], claims={"a": claim}, disruptions=[claim + 0.2])
    late_crash = verdict_for(stored, [], claims={"a": claim}, disruptions=[claim + 60])
    no_crash = verdict_for(stored, [], claims={"a": claim})
    no_claim = verdict_for(stored, [], disruptions=[claim + 0.2])
    assert ok.problems == []
    assert late_crash.problems and no_crash.problems and no_claim.problems


def test_one_crash_explains_one_interrupted_send() -> None:
    claim = DUE.timestamp()
    stored = [interrupted("a"), interrupted("b")]
    claims = {"a": claim, "b": claim + 0.01}
    verdict = verdict_for(stored, [], claims=claims, disruptions=[claim + 0.5])
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
