"""The invariants every scenario ends with, and the evidence behind them.

1. At most once: every message id appears at most once in the outbox, and every
   outbox line is recorded honestly in the document (`sent`, or
   `failed/interrupted` when a kill hit that very send).
2. No loss: every message the scenario says must be sent (`must_send`) ends
   `sent`, or `failed/interrupted` explained by its own kill: the first kill after
   its claim, with it the last claim before that kill (the sender sends one
   message at a time, so a kill cuts at most the send it was doing). Every other
   message ends terminal, as the scenario expects (`outcomes`).
3. The document holds what the writers wrote: no id twice (unless the scenario
   wrote the repeat), no deleted message back, no id nobody wrote, every
   writer's field with its value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from tests.faults.interruptions import Claim, Kill, as_claims, as_kills, unexplained
from tests.faults.outbox import Outbox
from wasched.common.clock import parse_utc
from wasched.common.document import TERMINAL
from wasched.common.recipients import InvalidRecipient, parse_recipient

Message = dict[str, Any]

WASCHED_FIELDS = frozenset(
    {
        "status",
        "sentAt",
        "error",
        "errorKind",
        "waMessageId",
        "deliveredAt",
        "readAt",
        "attempts",
        "latenessSeconds",
        "sentAs",
        "nextAt",
        "lastSentAt",
        "lastStatus",
        "occurrences",
        "history",
    }
)
"""Fields wasched writes; every other field belongs to the writers and must survive."""

EARLY_TOLERANCE_SECONDS = 0.05


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    interrupted: int = 0
    duplicates: int = 0
    lost: int = 0
    early: int = 0
    max_late_seconds: float = 0.0

    def fail(self, text: str) -> None:
        self.problems.append(text)

    def assert_ok(self, limit: int = 25) -> None:
        shown = "\n  ".join(self.problems[:limit])
        more = len(self.problems) - limit
        tail = f"\n  ... and {more} more" if more > 0 else ""
        assert not self.problems, f"{len(self.problems)} invariant violations:\n  {shown}{tail}"


def is_interrupted(message: Message) -> bool:
    return message.get("status") == "failed" and message.get("errorKind") == "interrupted"


def check_run(
    expected: dict[str, Message],
    stored: list[Message],
    outbox: Outbox,
    *,
    must_send: frozenset[str],
    claims: Mapping[str, float | Claim] = MappingProxyType({}),
    kills: Iterable[float | Kill] = (),
    allow_pending: frozenset[str] = frozenset(),
    never_sent: frozenset[str] = frozenset(),
    deleted: frozenset[str] = frozenset(),
    raced: frozenset[str] = frozenset(),
    repeated: frozenset[str] = frozenset(),
    known: frozenset[str] = frozenset(),
    outcomes: Mapping[str, tuple[str, str | None]] = MappingProxyType({}),
    series: frozenset[str] = frozenset(),
) -> Verdict:
    """`expected`: the writers' final view by id; `stored`: the final document's messages.

    `must_send`: ids that must end `sent` (or interrupted by their own kill); `claims`: every
    ledger claim (id → time, or `Claim` with its holder); `kills`: the disruptions that can cut
    a send. `deleted`: ids a writer removed (they must not come back); `repeated`: ids the
    scenario itself wrote twice; `known`: further ids the scenario put in the document.
    `raced`: ids changed too close to their time to require either outcome (only the
    at-most-once check applies); `outcomes`: id → the (status, errorKind) it must end with.
    `series`: ids of repeating messages: their status is their last occurrence's, their sends
    are their occurrences' (checked as records in `stored`, tests/faults/series.py).
    """
    verdict = Verdict()
    by_id = _index(stored, verdict, repeated)
    checked = {k: v for k, v in by_id.items() if k not in raced}
    _check_outbox(verdict, outbox, by_id, never_sent, raced)
    _check_terminal(verdict, expected, by_id, allow_pending)
    _check_must_send(verdict, by_id, must_send - raced)
    _check_membership(verdict, by_id, expected, deleted, raced, known | set(outcomes))
    _check_writers_fields(verdict, expected, by_id)
    _check_sent(verdict, {k: v for k, v in checked.items() if k not in series}, outbox)
    _check_timing(verdict, checked, outbox)
    explained = _check_interrupted(verdict, by_id, as_claims(claims), as_kills(kills))
    unexplained = {i for i in must_send - raced if i in by_id and is_interrupted(by_id[i])}
    verdict.lost += len(unexplained - explained)
    _check_outcomes(verdict, by_id, outcomes)
    return verdict


def _index(stored: list[Message], verdict: Verdict, repeated: frozenset[str]) -> dict[str, Message]:
    by_id: dict[str, Message] = {}
    copies: Counter[str] = Counter()
    for message in stored:
        ident = message.get("id")
        if isinstance(ident, str):
            copies[ident] += 1
            by_id.setdefault(ident, message)
        verdict.statuses[str(message.get("status"))] += 1
    for ident, count in copies.items():
        if count > 1 and ident not in repeated:
            verdict.fail(f"{ident}: {count} messages with id {ident!r} in the stored document")
    return by_id


def _check_outbox(
    verdict: Verdict,
    outbox: Outbox,
    by_id: dict[str, Message],
    never_sent: frozenset[str],
    raced: frozenset[str],
) -> None:
    for ident, count in outbox.counts().items():
        if count > 1:
            verdict.duplicates += 1
            verdict.fail(f"{ident}: handed to WhatsApp {count} times")
        if ident in raced:
            continue
        if ident in never_sent:
            verdict.fail(f"{ident}: sent although it must never be (deleted/cancelled/invalid)")
        message = by_id.get(ident)
        if message is None:
            if ident not in never_sent:
                verdict.fail(f"{ident}: sent but not in the stored document")
            continue
        if message.get("status") != "sent" and not is_interrupted(message):
            verdict.fail(
                f"{ident}: sent but recorded as {message.get('status')}/{message.get('errorKind')}"
            )
    for line in outbox.torn:
        verdict.fail(f"torn outbox line (send cut mid-write): {line[:120]!r}")


def _check_terminal(
    verdict: Verdict,
    expected: dict[str, Message],
    by_id: dict[str, Message],
    allow_pending: frozenset[str],
) -> None:
    for ident in expected:
        message = by_id.get(ident)
        if message is None:
            verdict.lost += 1
            verdict.fail(f"{ident}: missing from the stored document")
        elif message.get("status") not in TERMINAL and ident not in allow_pending:
            verdict.lost += 1
            verdict.fail(f"{ident}: still {message.get('status')!r}, not terminal")


def _check_must_send(
    verdict: Verdict, by_id: dict[str, Message], must_send: frozenset[str]
) -> None:
    """Sent, or interrupted (that one is judged by `_check_interrupted`); nothing else."""
    for ident in sorted(must_send):
        message = by_id.get(ident)
        if message is None or message.get("status") not in TERMINAL:
            continue  # already counted lost by _check_terminal, or allowed to stay pending
        if message.get("status") == "sent" or is_interrupted(message):
            continue
        verdict.lost += 1
        verdict.fail(
            f"{ident}: must be sent, ended {message.get('status')}/{message.get('errorKind')}"
            f" ({message.get('error')!r:.80})"
        )


def _check_membership(
    verdict: Verdict,
    by_id: dict[str, Message],
    expected: dict[str, Message],
    deleted: frozenset[str],
    raced: frozenset[str],
    known: set[str],
) -> None:
    """No deleted message back, no id that no writer (nor the scenario) put there."""
    for ident in by_id:
        if ident in deleted and ident not in raced:
            verdict.fail(f"{ident}: deleted by a writer, but back in the stored document")
        elif ident not in expected and ident not in known and ident not in deleted:
            verdict.fail(f"{ident}: in the stored document, but no writer wrote it")


def _check_writers_fields(
    verdict: Verdict, expected: dict[str, Message], by_id: dict[str, Message]
) -> None:
    """Every field a writer set is still there with its value (edits and unknown fields)."""
    for ident, mine in expected.items():
        stored = by_id.get(ident)
        if stored is None:
            continue
        for name, value in mine.items():
            if name in WASCHED_FIELDS:
                continue
            if name not in stored or stored[name] != value:
                verdict.fail(
                    f"{ident}: writer's field {name}={value!r} lost (stored {stored.get(name)!r})"
                )


def _check_sent(verdict: Verdict, by_id: dict[str, Message], outbox: Outbox) -> None:
    sends = outbox.by_id()
    for ident, message in by_id.items():
        if message.get("status") != "sent":
            continue
        send = sends.get(ident)
        if send is None:
            verdict.fail(f"{ident}: recorded sent but never handed to WhatsApp")
            continue
        if not message.get("sentAt"):
            verdict.fail(f"{ident}: sent without sentAt")
        went = message.get("sentAs") or {}  # edited after the send began: what went out
        if send.message != went.get("message", message.get("message")):
            verdict.fail(f"{ident}: sent text differs from the stored text")
        jid = _jid(went.get("to", message.get("to")))
        if jid is not None and send.jid != jid:
            verdict.fail(f"{ident}: sent to {send.jid}, stored recipient is {jid}")


def _check_timing(verdict: Verdict, by_id: dict[str, Message], outbox: Outbox) -> None:
    for send in outbox.sends:
        message = by_id.get(send.id)
        due = _time(message.get("scheduledTime")) if message else None
        if send.at is None or due is None:
            continue
        late = (send.at - due).total_seconds()
        if late < -EARLY_TOLERANCE_SECONDS:
            verdict.early += 1
            verdict.fail(f"{send.id}: sent {-late:.2f}s before its scheduledTime")
        verdict.max_late_seconds = max(verdict.max_late_seconds, late)


def _check_interrupted(
    verdict: Verdict, by_id: dict[str, Message], claims: dict[str, Claim], kills: list[Kill]
) -> set[str]:
    """Each interrupted id must be explained by its own kill; the ids that are."""
    explained: set[str] = set()
    for ident, message in sorted(by_id.items()):
        if not is_interrupted(message):
            continue
        verdict.interrupted += 1
        problem = unexplained(ident, claims, kills)
        if problem:
            verdict.fail(f"{ident}: interrupted, but {problem}")
        else:
            explained.add(ident)
    return explained


def _check_outcomes(
    verdict: Verdict, by_id: dict[str, Message], outcomes: Mapping[str, tuple[str, str | None]]
) -> None:
    for ident, (status, kind) in outcomes.items():
        message = by_id.get(ident, {})
        got = (message.get("status"), message.get("errorKind"))
        if got[0] != status or (kind is not None and got[1] != kind):
            verdict.fail(f"{ident}: ended {got[0]}/{got[1]}, expected {status}/{kind}")


def _jid(to: object) -> str | None:
    try:
        return parse_recipient(to).jid
    except InvalidRecipient:
        return None


def _time(value: object) -> datetime | None:
    try:
        return parse_utc(value)
    except (ValueError, OverflowError):
        return None
