"""The plan kept between polls: decide again only what changed, or what time changed.

A full plan decides on every message at every poll: with 100k messages that is seconds
of CPU even when S3 answered 304. `PlanIndex` keeps each message's step from the last
poll and decides again (with the same pure functions as `plan`) only the keys

- whose raw message changed (a new document is compared with the last, dict by dict),
- whose ledger entry, hand-over or schedule changed (`LedgerMirror.take_changed`,
  `Book.take_changed`, passed in as `changed`),
- whose time came: each decision says when it can next change (`changes.next_change`),
  kept in a heap,
- whose step could not be carried out, or all steps of a poll that was cut short.

Repeating messages are few and each is bounded (`recurring.SCHEDULED_AHEAD` occurrences
at a time): every pending series is decided again at every poll, as in `plan`. When the
set of series changes (a message becomes one, stops being one, or stops being pending),
every message is decided again: which ids are a series' occurrences changes with it.

`refresh` returns only those steps: every other one was carried out already and would
do nothing again. `steps()` is the whole plan; tests/unit/test_poller_index.py checks on
random documents, ledgers, edits and advancing time that it equals `plan()`'s.

A new kind of decision plugs in the same way (docs/poller.md, "Deciding only what
changed"): a pure decision over its inputs and `now`, and a pure `next_change` saying
when, for the same inputs, it could next decide otherwise.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from itertools import compress, count
from operator import ne
from typing import Protocol

from wasched.common.document import STATUSES, Document, JsonObject, same
from wasched.common.ledger import LedgerEntry
from wasched.common.messages import Status
from wasched.common.recurrence import parse_occurrence_id
from wasched.poller import occurrences, recurring
from wasched.poller.changes import next_change
from wasched.poller.counts import Counts, Ignored, ignored, occurrence_ignored, owned
from wasched.poller.limits import Limits
from wasched.poller.plan import (
    INVALID,
    Action,
    HandOver,
    Plan,
    Step,
    decide_handed,
    decide_message,
    waiting_since,
)
from wasched.poller.reading import series_keys

_PENDING = Status.PENDING.value
_NEEDS_ENTRY = (_PENDING, Status.SENT.value)
_IN_PLACE = 5000
"""More changed messages than this: the document is read as new (`_reload`)."""
_REBUILD_SHARE = 4
"""Deciding more than 1/4 of the keys again rebuilds the sorted times instead of patching."""


class Entries(Protocol):
    def get(self, message_id: str, /) -> LedgerEntry | None: ...


Ledgered = Callable[[str], Mapping[datetime, LedgerEntry]]
"""A series' occurrences' ledger entries, by instant (`LedgerMirror.occurrences`)."""


def _no_occurrences(series_id: str) -> Mapping[datetime, LedgerEntry]:
    return {}


class PlanIndex:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._doc: Document | None = None
        self._keys: list[str | None] = []
        self._position: dict[str, int] = {}
        self._pending: set[str] = set()
        self._pending_count = 0
        self._ignored: dict[int, Ignored] = {}
        self._steps: dict[str, Step] = {}
        """Each message's step (document order is `_position`); a message that waits beyond
        the horizon with nothing to do has none here (most of a big schedule: ~0.35 KB
        each), only its next change."""
        self._handed: dict[str, Step] = {}
        """Steps for hand-overs the document no longer holds pending."""
        self._next: dict[str, datetime] = {}
        self._heap: list[tuple[datetime, str]] = []
        self._waiting: list[datetime] = []
        """Sorted times of messages with us, a schedule or the sender (for the counts)."""
        self._invalid = 0
        self._now: datetime | None = None
        self._unsettled: set[str] = set()
        self._series: set[str] = set()
        """Keys of repeating messages, pending or not (their ids own `<key>@<instant>` ids)."""
        self._series_steps: dict[str, list[Step]] = {}
        """Each pending series' steps, in document order: decided by `recurring` at every
        refresh (its keys are the pending series)."""
        self._series_next: list[tuple[str, datetime]] = []

    @property
    def size(self) -> int:
        return len(self._position)

    def refresh(
        self,
        doc: Document,
        ledger: Entries,
        *,
        handed: Mapping[str, HandOver],
        schedules: Mapping[str, datetime],
        changed: Iterable[str],
        now: datetime,
        ledgered: Ledgered = _no_occurrences,
    ) -> Plan:
        """The steps to carry out now: those decided again, and every pending series'.
        `changed`: ids whose ledger entry, hand-over or schedule changed since the last
        refresh."""
        if self._now is not None and now < self._now:  # the clock went back: start over
            self.__init__(self.limits)  # type: ignore[misc]
        dirty = set(changed) | self._unsettled
        if self._doc is None:
            dirty |= handed.keys()
        if doc is not self._doc:
            dirty |= self._load(doc, handed)
        dirty |= self._due(now)
        steps = self._decide(dirty, ledger, handed, schedules, now)
        self._unsettled = {step.key for step in steps}
        series = self._decide_series(ledger, ledgered, handed, schedules, now)
        self._now = now
        return Plan(
            steps=series + steps,
            counts=self.counts(now),
            ignored=self._ignored_list(),
            series=sorted(self._series_next, key=lambda item: item[1]),
        )

    def settle(self, failed: Iterable[str]) -> None:
        """The steps of the last refresh were carried out, except `failed` (decided again)."""
        self._unsettled = set(failed)

    def steps(
        self,
        ledger: Entries,
        *,
        handed: Mapping[str, HandOver],
        schedules: Mapping[str, datetime],
        now: datetime,
    ) -> list[Step]:
        """The whole plan, in `plan()`'s order (for tests). Messages kept without a step are
        decided again here: each must be a quiet wait (else a step no plan makes stands in,
        so that a comparison with `plan()` fails)."""
        found: list[Step] = []
        for key in self._keys:
            if key is None:
                continue
            if key in self._series_steps:
                found += self._series_steps[key]
                continue
            step = self._steps.get(key)
            if step is None and self._decided_plainly(key, self._raw(key)):
                step = decide_message(
                    key,
                    self._raw(key),
                    ledger.get(key),
                    handed=handed.get(key),
                    scheduled_at=schedules.get(key),
                    now=now,
                    limits=self.limits,
                )
                if step is not None and not _quiet(step, schedules):
                    step = Step(key, Action.CANCEL, version="kept without a step")
            if step is not None:
                found.append(step)
        return found + [self._handed[k] for k in sorted(self._handed)]

    def counts(self, now: datetime) -> Counts:
        waiting, limit = self._waiting, now - self.limits.overdue_after
        series = [s for steps in self._series_steps.values() for s in steps]
        theirs = [t for s in series if (t := waiting_since(s)) is not None and t <= now]
        due = bisect_right(waiting, now)
        overdue = min(bisect_left(waiting, limit), due) + sum(t < limit for t in theirs)
        oldest = min([*(waiting[:1] if due else []), *theirs], default=now)
        return Counts(
            total=len(self._keys),
            pending=self._pending_count,
            due=due + len(theirs),
            overdue=overdue,
            oldest_overdue_seconds=round(max((now - oldest).total_seconds(), 0.0), 3),
            invalid=self._invalid + sum(s.action in INVALID for s in series),
            ignored=dict(Counter(i.reason for i in self._ignored_list())),
        )

    # -- what changed ----------------------------------------------------------------------

    def _load(self, doc: Document, handed: Mapping[str, HandOver]) -> set[str]:
        """Take a new document; the keys whose message changed, appeared or went. Where the
        messages are where they were (the same count; no id changed, nor the set of
        series), only the changed ones are looked at, found by comparing message by
        message in C."""
        old, strict = self._doc, doc.typed or (self._doc is not None and self._doc.typed)
        series = series_keys(doc)
        reshaped, self._series = series != self._series, series
        dirty: set[str] | None = None
        if old is not None and len(old.messages) == len(doc.messages) and not reshaped:
            dirty = self._changed_in_place(old, doc, strict)
            if dirty is not None:
                self._doc = doc
        if dirty is None:
            dirty = self._reload(doc, strict)
        live = [
            k
            for k in sorted(series, key=self._position.__getitem__)
            if self._pending_at(k) and owned(k, series) is None  # else left alone, as in `plan`
        ]
        if reshaped or live != list(self._series_steps):  # which ids are occurrences changed
            dirty |= self._position.keys() | handed.keys() | self._handed.keys()
        self._series_steps = {k: self._series_steps.get(k, []) for k in live}
        return dirty

    def _pending_at(self, key: str) -> bool:
        raw = self._raw(key)
        return raw is not None and raw.get("status") == _PENDING

    def _changed_in_place(self, old: Document, doc: Document, strict: bool) -> set[str] | None:
        """None: ids changed, or too much did (then `_reload`)."""
        before, after = old.messages, doc.messages
        if strict:
            moved = [i for i in range(len(after)) if not same(before[i], after[i])]
        else:
            moved = list(compress(count(), map(ne, before, after)))
        if len(moved) > _IN_PLACE or any(
            not same(before[i].get("id"), after[i].get("id")) for i in moved
        ):
            return None
        dirty: set[str] = set()
        for i in moved:
            key, raw = self._keys[i], after[i]
            pending = raw.get("status") == _PENDING
            self._pending_count += pending - (before[i].get("status") == _PENDING)
            if key is not None:
                dirty.add(key)
                if pending:
                    self._pending.add(key)
                else:
                    self._pending.discard(key)
            self._note_ignored(i, key, raw)
        return dirty

    def _reload(self, doc: Document, strict: bool) -> set[str]:
        old = {k: self._raw(k) for k in self._position} if self._doc is not None else {}
        self._doc, self._keys, self._position = doc, [], {}
        self._pending, self._pending_count, self._ignored = set(), 0, {}
        dirty: set[str] = set()
        for index, (key, raw) in enumerate(doc.keyed()):
            self._keys.append(key)
            pending = raw.get("status") == _PENDING
            self._pending_count += pending
            if key is not None:
                self._position[key] = index
                if pending:
                    self._pending.add(key)
                was = old.get(key)
                if was is not raw and (not same(was, raw) if strict else was != raw):
                    dirty.add(key)
            self._note_ignored(index, key, raw)
        return dirty | (old.keys() - self._position.keys())

    def _note_ignored(self, index: int, key: str | None, raw: JsonObject) -> None:
        status = raw.get("status")
        if key is not None and status == _PENDING and (owner := owned(key, self._series)):
            self._ignored[index] = occurrence_ignored(key, owner)
            return
        if key is not None and type(status) is str and status in STATUSES:
            self._ignored.pop(index, None)
            return
        item = ignored(index, key, raw)
        if item is None:
            self._ignored.pop(index, None)
        else:
            self._ignored[index] = item

    def _ignored_list(self) -> list[Ignored]:
        return [self._ignored[i] for i in sorted(self._ignored)]

    def _raw(self, key: str) -> JsonObject | None:
        at = self._position.get(key)
        return None if at is None or self._doc is None else self._doc.messages[at]

    def _due(self, now: datetime) -> set[str]:
        """Keys whose next change has come."""
        due: set[str] = set()
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if self._next.get(key) == at:
                del self._next[key]
                due.add(key)
        return due

    # -- deciding again ---------------------------------------------------------------------

    def _decide(
        self,
        keys: set[str],
        ledger: Entries,
        handed: Mapping[str, HandOver],
        schedules: Mapping[str, datetime],
        now: datetime,
    ) -> list[Step]:
        bulk = len(keys) * _REBUILD_SHARE > len(self._position) + len(self._handed)
        ours: list[Step] = []
        theirs: list[Step] = []
        for key in keys:
            raw = self._raw(key)
            plain = self._decided_plainly(key, raw)
            pending = plain and key in self._pending
            gone = handed.get(key) is not None and not pending and not self._occurrence(key)
            wanted = gone or (plain and raw is not None and raw.get("status") in _NEEDS_ENTRY)
            entry = ledger.get(key) if wanted else None
            step = None
            if plain and raw is not None:
                step = decide_message(
                    key,
                    raw,
                    entry,
                    handed=handed.get(key),
                    scheduled_at=schedules.get(key),
                    now=now,
                    limits=self.limits,
                )
            when = next_change(step, entry, now=now, limits=self.limits)
            self._put(key, None if _quiet(step, schedules) else step, when, bulk)
            if step is not None:
                ours.append(step)
            other = decide_handed(key, entry) if gone else None
            if other is None:
                self._handed.pop(key, None)
            else:
                self._handed[key] = other
                theirs.append(other)
        if bulk:
            self._rebuild()
        ours.sort(key=lambda s: self._position[s.key])
        theirs.sort(key=lambda s: s.key)
        return ours + theirs

    def _decided_plainly(self, key: str, raw: JsonObject | None) -> bool:
        """Decided by `decide_message`: not a pending series, nor a pending message holding
        the id of a series' occurrence (left alone)."""
        if raw is None or not self._series or raw.get("status") != _PENDING:
            return True
        return key not in self._series and owned(key, self._series) is None

    def _occurrence(self, key: str) -> bool:
        """An occurrence id of a pending series: that series' own business."""
        found = parse_occurrence_id(key) if self._series_steps and "@" in key else None
        return found is not None and found[0] in self._series_steps

    def _decide_series(
        self,
        ledger: Entries,
        ledgered: Ledgered,
        handed: Mapping[str, HandOver],
        schedules: Mapping[str, datetime],
        now: datetime,
    ) -> list[Step]:
        """Every pending series, as `plan` decides it."""
        self._series_next = []
        if not self._series_steps:
            return []
        found = occurrences.by_series([*handed, *schedules])
        steps: list[Step] = []
        for key in list(self._series_steps):
            raw = self._raw(key)
            assert raw is not None, f"series {key} is not in the document"
            known = occurrences.known_for(key, ledgered(key), handed, schedules, found)
            decision = recurring.decide_series(
                key, raw, ledger.get(key), known, now=now, limits=self.limits
            )
            self._series_steps[key] = decision.steps
            steps += decision.steps
            if decision.next_at is not None:
                self._series_next.append((key, decision.next_at))
        return steps

    def _put(self, key: str, step: Step | None, when: datetime | None, bulk: bool) -> None:
        before = self._steps.pop(key, None)
        if before is not None:
            self._invalid -= before.action in INVALID
            if not bulk and (t := waiting_since(before)) is not None:
                del self._waiting[bisect_left(self._waiting, t)]
        if step is not None:
            self._steps[key] = step
            self._invalid += step.action in INVALID
            if not bulk and (t := waiting_since(step)) is not None:
                insort(self._waiting, t)
        if when is None:
            self._next.pop(key, None)
        else:
            self._next[key] = when
            if not bulk:
                heapq.heappush(self._heap, (when, key))

    def _rebuild(self) -> None:
        """After deciding on most keys: sort once instead of inserting one by one."""
        self._waiting = sorted(t for s in self._steps.values() if (t := waiting_since(s)))
        self._heap = [(at, key) for key, at in self._next.items()]
        heapq.heapify(self._heap)


def _quiet(step: Step | None, schedules: Mapping[str, datetime]) -> bool:
    """Waits beyond the horizon with nothing to carry out: kept without its step."""
    return (
        step is not None
        and step.action is Action.WAIT
        and step.gate is None
        and step.key not in schedules
    )
