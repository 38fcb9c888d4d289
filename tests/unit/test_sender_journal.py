"""The local journal of results not yet in NATS: what survives a restart, and that it stays small."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from wasched.common.events import Outcome
from wasched.common.messages import Status
from wasched.sender import journal as journal_module
from wasched.sender.journal import Journal, Kept

AT = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)


def sent(message_id: str) -> Kept:
    outcome = Outcome(
        id=message_id, status=Status.SENT, at=AT, sent_at=AT, wa_message_id=f"3EB0{message_id}"
    )
    return Kept(outcome, revision=7, jid="447957189696@s.whatsapp.net")


async def test_a_kept_result_survives_a_restart_until_it_is_done(tmp_path: Path) -> None:
    path = tmp_path / "wa" / "journal.jsonl"
    first = Journal(path)
    first.load()
    await first.keep(sent("m1"))
    await first.keep(sent("m2"))
    await first.done("m1")

    again = Journal(path).load()
    assert list(again) == ["m2"]
    assert again["m2"] == sent("m2")
    assert len(path.read_text().splitlines()) == 1, "rewritten with only what is pending"


async def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    first = Journal(path)
    first.load()
    await first.keep(sent("m1"))
    with path.open("a") as out:
        out.write('{"op": "kept", "outcome": {"id": "m2", "sta')  # the crash
    assert list(Journal(path).load()) == ["m1"]


async def test_the_file_starts_afresh_once_nothing_is_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "TRIM_BYTES", 1000)
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.load()
    for n in range(20):
        await journal.keep(sent(f"m{n}"))
        await journal.done(f"m{n}")
    assert path.stat().st_size < 1000
