"""JSON text that round-trips: numbers keep their spelling, the document its layout.

The schedule is shared with other writers (a web UI in JavaScript, scripts) whose
numbers need not fit a double (`1e400`, 30 significant digits) and whose diffs should
stay small. Reading keeps every number that a float would print differently as a
`RawNumber` holding its original text; writing puts that text back, and lays the
document out the way it was read (indentation, separators, trailing newline). The
output is always strict JSON: no `NaN` or `Infinity`, lone surrogates escaped.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_OPENING = re.compile(r"\{(\r?\n)([ \t]*)")


class RawNumber:
    """A JSON number kept as written, because a float would change it (`1e400`, `1.50`)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __float__(self) -> float:
        return float(self.text)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RawNumber):
            return self.text == other.text
        if isinstance(other, int | float) and not isinstance(other, bool):
            return Decimal(self.text) == Decimal(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(Decimal(self.text))

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Layout:
    """How a document's JSON text is laid out; the default is wasched's own for new documents."""

    indent: str | None = "  "
    item_separator: str = ","
    key_separator: str = ": "
    newline: str = "\n"
    end: str = "\n"
    bom: bool = False


def loads(text: str) -> Any:
    """Parse strictly (no `NaN`/`Infinity`), keeping numbers a float would change."""
    return json.loads(text, parse_float=_float, parse_int=_int, parse_constant=_constant)


def dumps(data: Any, layout: Layout) -> str:
    """The JSON text of `data` in `layout`; `RawNumber`s are written as they were read."""
    token = secrets.token_hex(8)
    raws: list[str] = []

    def raw(value: object) -> str:
        if not isinstance(value, RawNumber):
            raise TypeError(f"not JSON: {type(value).__name__}")
        raws.append(value.text)
        return f"\0{token}:{len(raws) - 1}\0"

    text = json.dumps(
        data,
        ensure_ascii=False,
        allow_nan=False,
        indent=layout.indent,
        separators=(layout.item_separator, layout.key_separator),
        default=raw,
    )
    if raws:  # each placeholder is a string holding a fresh random token: no text can match it
        text = re.sub(rf'"\\u0000{token}:(\d+)\\u0000"', lambda m: raws[int(m[1])], text)
    text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
    if layout.newline != "\n":
        text = text.replace("\n", layout.newline)
    return ("\ufeff" if layout.bom else "") + text + layout.end


def detect(text: str) -> Layout:
    """The layout of a document's text (what `JSON.stringify(data, null, indent)` made)."""
    bom = text.startswith("\ufeff")
    body = text.removeprefix("\ufeff")
    stripped = body.rstrip()
    end = body[len(stripped) :]
    opening = _OPENING.match(stripped.lstrip())
    if opening:
        key = _separator(stripped, ":") or " "
        return Layout(opening[2], ",", ":" + key, opening[1], end, bom)
    item = _separator(stripped, ",")
    key = _separator(stripped, ":")
    return Layout(
        None,
        "," + (item if item is not None else " "),
        ":" + (key if key is not None else " "),
        "\n",
        end,
        bom,
    )


def _separator(text: str, mark: str) -> str | None:
    """The whitespace after the first `mark` outside a string (None: there is none)."""
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == mark:
            rest = text[index + 1 :]
            return rest[: len(rest) - len(rest.lstrip(" "))]
    return None


def _float(text: str) -> float | RawNumber:
    value = float(text)
    return value if math.isfinite(value) and repr(value) == text else RawNumber(text)


def _int(text: str) -> int | RawNumber:
    return RawNumber(text) if text == "-0" else int(text)


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
