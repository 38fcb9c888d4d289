"""How outcomes and receipts are written into the stored document, by message key.

Runs inside `ScheduleStore.update`, so it may be re-applied to a fresher copy
after a conflicting write: every decision looks at the message as it is now.
A `sent` outcome is the truth about WhatsApp and wins over anything; the other
outcomes only settle a message that is still `pending`, so a stale or
redelivered one never overwrites a newer terminal status. Receipts only fill
a time that is not set yet. Only events the ledger backs are written.

An outcome is about the version that was handed over. When the user changed the
message after that (the document's content version differs), the user's fields stay
as they are: a send or a failure after a send began is written with `sentAs`, what
went out (its version, and its recipient, text and time when known); a rejection
nothing was sent for is not written at all, because the next poll reopens the
corrected message.

Events for a series' occurrences (`<series id>@<instant>`) go to the series' one entry
instead (`history`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from wasched.common.clock import format_utc
from wasched.common.document import Document, JsonObject, Patch, PatchResult, apply_patches
from wasched.common.events import DueMessage, Outcome, Receipt
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind, Status, content_version
from wasched.poller.history import SeriesNote, collect, series_patches

RECEIPT_FIELD = {"delivered": "deliveredAt", "read": "readAt", "played": "readAt"}
_ONLY_PENDING = frozenset({Status.PENDING.value})
_HANDED_ON = {LedgerState.CLAIMED, LedgerState.SENT}
_NOTHING_SENT = {
    ErrorKind.VALIDATION,
    ErrorKind.INVALID_RECIPIENT,
    ErrorKind.NOT_ON_WHATSAPP,
    ErrorKind.EXPIRED,
}

Event = Outcome | Receipt
Record = Outcome | Receipt | SeriesNote
"""What the poller writes into the document: events, and its own notes on series."""
SentAs = dict[str, Any]


def vouch(event: Event, entry: LedgerEntry | None) -> Event | None:
    """What the ledger backs, or None: a stray event on wasched.outcome cannot mark an
    unsent message sent. An outcome that contradicts a settled entry yields the entry's.
    The version comes from the outcome, else from the ledger entry."""
    if entry is None or entry.state is LedgerState.SUPERSEDED:
        return None
    if isinstance(event, Receipt):
        return event if entry.state in _HANDED_ON else None
    if entry.state is LedgerState.CLAIMED or entry.state.value == event.status.value:
        if event.version is None and entry.version is not None:
            return event.model_copy(update={"version": entry.version})
        return event
    return entry.outcome(event.id)


def what_went(due: DueMessage) -> SentAs:
    """What went out, from the hand-over the sender was given."""
    return {
        "version": due.version,
        "to": due.to,
        "message": due.message,
        "scheduledTime": format_utc(due.scheduled_time),
    }


def apply_events(
    doc: Document,
    events: Iterable[Record],
    sent_as: Mapping[str, SentAs] | None = None,
    zone: ZoneInfo | None = None,
) -> PatchResult:
    """Apply outcomes first, then receipts (a receipt may follow its outcome in one batch).
    Those of series' occurrences go to their series (`zone`: `DISPLAY_TIMEZONE`, where a
    series without `timezone` runs)."""
    index = doc.by_key()
    found, plain = collect(events, index)
    ordered = sorted(plain, key=lambda e: isinstance(e, Receipt))
    patches, gone = series_patches(found, index, zone or ZoneInfo("Europe/London"))
    result = PatchResult(unchanged=list(found.receipts))
    for series_id in gone:
        result.missing += found.ids[series_id]
    for event in ordered:
        raw = index.get(event.id)
        if raw is None:
            result.missing.append(event.id)
            continue
        patch = (
            outcome_patch(event, raw, (sent_as or {}).get(event.id))
            if isinstance(event, Outcome)
            else receipt_patch(event, raw)
        )
        if patch is SUPERSEDED:
            result.skipped.append(event.id)
            continue
        if patch is None:
            result.unchanged.append(event.id)
        else:
            patches.append(patch)
    applied = apply_patches(doc, patches)
    result.changed += applied.changed
    result.unchanged += applied.unchanged
    result.skipped += applied.skipped
    result.missing += applied.missing
    return result


SUPERSEDED = Patch("", {})
"""A rejection of a version the user has since corrected: written nowhere."""


def outcome_patch(outcome: Outcome, raw: JsonObject, sent: SentAs | None = None) -> Patch:
    fields = outcome_fields(outcome, raw)
    if outcome.version is not None and outcome.version != content_version(raw):
        if outcome.status is Status.EXPIRED or outcome.error_kind in _NOTHING_SENT:
            return SUPERSEDED
        if outcome.status in {Status.SENT, Status.FAILED}:
            fields["sentAs"] = (
                sent
                if sent and sent.get("version") == outcome.version
                else {"version": outcome.version}
            )
    guard = None if outcome.status is Status.SENT else _ONLY_PENDING
    return Patch(outcome.id, fields, only_if_status=guard)


def outcome_fields(outcome: Outcome, raw: JsonObject) -> dict[str, Any]:
    """The stored fields for an outcome; unknown fields of the message are left alone."""
    fields: dict[str, Any] = {"status": outcome.status.value}
    if outcome.status is Status.SENT:
        fields["sentAt"] = format_utc(outcome.sent_at or outcome.at)
        if outcome.wa_message_id:
            fields["waMessageId"] = outcome.wa_message_id
        for stale in ("error", "errorKind"):  # a send that succeeded carries no error
            if raw.get(stale) is not None:
                fields[stale] = None
    else:
        if outcome.error is not None:
            fields["error"] = outcome.error
        if outcome.error_kind is not None:
            fields["errorKind"] = outcome.error_kind.value
    if outcome.attempts is not None:
        fields["attempts"] = outcome.attempts
    return fields


def receipt_patch(receipt: Receipt, raw: JsonObject) -> Patch | None:
    name = RECEIPT_FIELD[receipt.kind]
    if raw.get(name) is not None:
        return None  # the first delivery/read time stands
    return Patch(receipt.id, {name: format_utc(receipt.at)})
