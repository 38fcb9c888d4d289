"""The stored schedule: `{"messages": [...]}` kept as raw JSON objects.

Messages stay plain dicts so that every field wasched does not know, and every
message it does not change, is written back exactly as read. Changes are
`Patch`es addressed by message key and re-applied after a conflicting write.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

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


@dataclass(slots=True)
class Document:
    messages: list[JsonObject]
    extra: JsonObject = field(default_factory=dict)

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


def parse_document(body: bytes) -> Document:
    """Read the stored bytes; an empty body is an empty schedule."""
    if not body.strip():
        return Document(messages=[])
    try:
        data = json.loads(body.decode("utf-8-sig"))
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
    return Document(messages=messages, extra=extra)


def render_document(doc: Document) -> bytes:
    data = {"messages": doc.messages, **doc.extra}
    try:
        return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode()
    except UnicodeEncodeError:
        # A lone surrogate escape (half an emoji, as JavaScript may write it) is valid
        # JSON but not UTF-8: write it back escaped, exactly as it was read.
        return (json.dumps(data, ensure_ascii=True, indent=2) + "\n").encode()


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
    """Apply in place by key. Keys the document no longer holds are reported, not an error;
    `skipped` are patches whose `only_if_status` guard did not hold."""
    index = doc.by_key()
    result = PatchResult()
    for patch in patches:
        raw = index.get(patch.key)
        if raw is None:
            result.missing.append(patch.key)
            continue
        if patch.only_if_status is not None and raw.get("status") not in patch.only_if_status:
            result.skipped.append(patch.key)
            continue
        changed = False
        for name, value in patch.fields.items():
            if name not in raw or raw[name] != value:
                raw[name] = value
                changed = True
        (result.changed if changed else result.unchanged).append(patch.key)
    return result


def append_message(doc: Document, message: JsonObject) -> None:
    doc.messages.append(message)


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )
