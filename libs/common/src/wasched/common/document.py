"""The stored schedule: `{"messages": [...]}` kept as raw JSON objects.

Messages stay plain dicts so that every field wasched does not know, and every
message it does not change, is written back exactly as read (numbers as written,
in the document's own layout: `jsontext`). Changes are `Patch`es addressed by
message key and re-applied after a conflicting write; `reapply` puts back another
writer's changes that a blind write overwrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from wasched.common import jsontext
from wasched.common.jsontext import Layout

JsonObject = dict[str, Any]

TERMINAL = frozenset({"sent", "failed", "expired", "cancelled"})
STATUSES = TERMINAL | {"pending"}


class DocumentError(ValueError):
    """The stored object is not a schedule; it must never be overwritten."""


@dataclass(frozen=True, slots=True)
class Patch:
    """Field updates for one message; `only_if` guards against stale re-application."""

    key: str
    fields: Mapping[str, Any]
    only_if_status: frozenset[str] | None = None


OWNED_FIELDS = frozenset(
    {
        "status",
        "sentAt",
        "error",
        "errorKind",
        "waMessageId",
        "deliveredAt",
        "readAt",
        "attempts",
        "sentAs",
        "nextAt",
        "lastSentAt",
        "lastStatus",
        "occurrences",
        "history",
    }
)
"""Fields wasched writes from what the ledger knows happened; in a conflict, ours stand."""


@dataclass(slots=True)
class Document:
    messages: list[JsonObject]
    extra: JsonObject = field(default_factory=dict)
    layout: Layout = field(default_factory=Layout)
    typed: bool = True
    """False only when known to hold no number and no boolean: then `==` between its
    messages and another such document's is exact (no `1 == True`)."""

    def keyed(self) -> Iterator[tuple[str | None, JsonObject]]:
        """Each message with its key: the id, or `id#n` for a repeat of an id (n chosen so
        that the key is no other message's id)."""
        ids = {i for raw in self.messages if isinstance(i := raw.get("id"), str)}
        used: set[str] = set()
        for raw in self.messages:
            ident = raw.get("id")
            if not isinstance(ident, str) or not ident:
                yield None, raw
                continue
            key, n = ident, 0
            while key in used or (n > 0 and key in ids):
                n += 1
                key = f"{ident}#{n}"
            used.add(key)
            yield key, raw

    def by_key(self) -> dict[str, JsonObject]:
        return {key: raw for key, raw in self.keyed() if key is not None}

    def positions(self) -> dict[str, int]:
        """Each key's index in `messages`."""
        return {key: i for i, (key, _) in enumerate(self.keyed()) if key is not None}

    def working_copy(self) -> Document:
        """A copy to change with `apply_patches`, `append_message` and `reapply`, which
        replace changed messages instead of changing them in place: unchanged messages are
        shared, so a write into a 100k-message schedule copies no message it does not touch."""
        return Document(list(self.messages), dict(self.extra), self.layout, self.typed)


def parse_document(body: bytes) -> Document:
    """Read the stored bytes. An empty body is not a schedule: it is a broken or unfinished
    write, and treating it as "no messages" would withdraw every message at once."""
    if not body or body.isspace():
        raise DocumentError(f"schedule is empty ({len(body)} bytes); it is not a schedule")
    try:
        data, layout, typed = jsontext.loads_bytes(body)
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"schedule is not UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from None
    except json.JSONDecodeError as exc:
        raise DocumentError(
            f"schedule is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise DocumentError("schedule is not usable JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise DocumentError(f"schedule is not usable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DocumentError(
            f'schedule must be a JSON object {{"messages": [...]}}, got {_kind(data)}'
        )
    if "messages" not in data:
        raise DocumentError('schedule has no "messages" list')
    messages = data["messages"]
    if not isinstance(messages, list):
        raise DocumentError(f'"messages" must be a list, got {_kind(messages)}')
    for index, item in enumerate(messages):
        if not isinstance(item, dict):
            raise DocumentError(f"messages[{index}] must be an object, got {_kind(item)}")
    extra = {k: v for k, v in data.items() if k != "messages"}
    return Document(messages=messages, extra=extra, layout=layout, typed=typed)


def render_document(doc: Document) -> bytes:
    """Strict JSON in the document's own layout, every value as it was read."""
    data = {"messages": doc.messages, **doc.extra}
    return jsontext.dumps_bytes(data, doc.layout)


@dataclass(slots=True)
class PatchResult:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        """True when the document changed (i.e. it needs writing)."""
        return bool(self.changed)


def apply_patches(doc: Document, patches: Iterable[Patch]) -> PatchResult:
    """Apply by key. Keys the document no longer holds are reported, not an error;
    `skipped` are patches whose `only_if_status` guard did not hold. A changed message is
    replaced by a changed copy, never changed in place: the store's cached document shares
    its message dicts with the working copy a write changes."""
    positions = doc.positions()
    result = PatchResult()
    for patch in patches:
        at = positions.get(patch.key)
        if at is None:
            result.missing.append(patch.key)
            continue
        raw = doc.messages[at]
        if patch.only_if_status is not None and raw.get("status") not in patch.only_if_status:
            result.skipped.append(patch.key)
            continue
        changes = {n: v for n, v in patch.fields.items() if n not in raw or raw[n] != v}
        if changes:
            doc.messages[at] = {**raw, **changes}
            doc.typed = doc.typed or typed(changes)
        (result.changed if changes else result.unchanged).append(patch.key)
    return result


def append_message(doc: Document, message: JsonObject) -> None:
    doc.messages.append(message)
    doc.typed = doc.typed or typed(message)


def typed(value: object) -> bool:
    """Holds a number or a boolean (`Document.typed`)."""
    if isinstance(value, dict):
        return any(typed(v) for v in value.values())
    if isinstance(value, list):
        return any(typed(v) for v in value)
    return not (value is None or isinstance(value, str))


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def reapply(base: Document, theirs: Document, head: Document) -> bool:
    """Put back into `head` what another writer changed from `base` to `theirs`.

    For a write that overwrote theirs: `head` is what we wrote (or what stands now). By
    message key: their additions are inserted after the message they follow, their
    deletions removed, their field changes applied, except that wasched's own fields
    (`OWNED_FIELDS`) that we changed too keep our value (the ledger backs ours). Top-level
    fields likewise. True when `head` changed.
    """
    head.typed = head.typed or theirs.typed
    changed = _merge_fields(base.extra, theirs.extra, head.extra, owned=frozenset())
    old, new = base.by_key(), theirs.by_key()
    index = head.by_key()
    for key in old.keys() & new.keys() & index.keys():  # field changes, on copies
        merged = dict(index[key])
        if _merge_fields(old[key], new[key], merged, owned=OWNED_FIELDS):
            _replace(head, index[key], merged)
            index[key] = merged
            changed = True
    for key in old.keys() - new.keys():
        if key in index:
            head.messages.remove(index.pop(key))  # identity: equal copies elsewhere stay
            changed = True
    after: str | None = None
    for key, raw in theirs.keyed():
        if key is None:
            continue
        if key not in old and key not in index:
            position = _position_after(head, index.get(after) if after else None)
            head.messages.insert(position, dict(raw))
            index[key] = head.messages[position]
            changed = True
        if key in index:
            after = key
    return changed


def _merge_fields(
    base: JsonObject, theirs: JsonObject, head: JsonObject, *, owned: frozenset[str]
) -> bool:
    changed = False
    for name in base.keys() | theirs.keys():
        was, now = base.get(name, _ABSENT), theirs.get(name, _ABSENT)
        if _same(was, now):
            continue
        ours = head.get(name, _ABSENT)
        if name in owned and not _same(ours, was):
            continue  # we changed it too: what the ledger backs stands
        if _same(ours, now):
            continue
        if now is _ABSENT:
            del head[name]
        else:
            head[name] = now
        changed = True
    return changed


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


def _replace(doc: Document, raw: JsonObject, by: JsonObject) -> None:
    for position, item in enumerate(doc.messages):
        if item is raw:
            doc.messages[position] = by
            return


def _position_after(doc: Document, previous: JsonObject | None) -> int:
    if previous is None:
        return 0
    for position, raw in enumerate(doc.messages):
        if raw is previous:
            return position + 1
    return len(doc.messages)


_ABSENT = object()


def same(a: Any, b: Any) -> bool:
    """Equal as JSON: `==` with the types too (`1 == True == 1.0` for Python, not for a
    content version or a decision)."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        return len(a) == len(b) and all(k in b and same(v, b[k]) for k, v in a.items())
    if kind is list:
        return len(a) == len(b) and all(map(same, a, b))
    return bool(a == b)
