"""JSON text that round-trips: numbers keep their spelling, the document its layout.

The schedule is shared with other writers (a web UI in JavaScript, scripts) whose
numbers need not fit a double (`1e400`, 30 significant digits) and whose diffs should
stay small. Reading keeps every number that a float would print differently as a
`RawNumber` holding its original text; writing puts that text back, and lays the
document out the way it was read (indentation, separators, trailing newline). The
output is always strict JSON: no `NaN` or `Infinity`, lone surrogates escaped.

Bytes have a fast path (`loads_bytes`, `dumps_bytes`, orjson: no decoded copy of the
text, which one emoji makes 4 bytes a character): taken only where it gives exactly
what the exact path gives (no float, no `-0`, a layout orjson writes), else the exact
path runs. tests/unit/test_jsontext_fast.py compares both on random documents.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_OPENING = re.compile(r"\{(\r?\n)([ \t]*)")
_MINUS_ZERO = re.compile(rb"-0(?![0-9.eE])")
_BOM = b"\xef\xbb\xbf"
_HEAD = 65_536
"""Bytes of a document's start that say its layout (the first separators are early)."""


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


def loads_bytes(body: bytes) -> tuple[Any, Layout, bool]:
    """Parse stored bytes (UTF-8, optional BOM) and detect their layout. orjson where its
    result is exact; otherwise (a float, `-0`, a big integer, a lone surrogate, an error)
    the exact path, which also words the errors. The third value is False when the data
    holds no number and no boolean (then `==` between two such values is exact: no `1 ==
    True == 1.0`); the exact path does not look and says True."""
    bom = body.startswith(_BOM)
    view = memoryview(body)[3:] if bom else body
    try:
        data = orjson.loads(view)
    except orjson.JSONDecodeError:
        data = None
    else:
        exact, typed = _scan(data, body)
        if exact:
            layout = _detect_bytes(body, bom)
            if layout is not None:
                return data, layout, typed
    text = body.decode("utf-8")
    return loads(text.removeprefix("\ufeff")), detect(text), True


def dumps_bytes(data: Any, layout: Layout) -> bytes:
    """`dumps(data, layout)` as UTF-8, through orjson where that gives the same bytes."""
    option = _orjson_option(layout)
    if option is not None and _scan(data, None)[0]:
        try:
            out = orjson.dumps(data, default=_fragment, option=option)
        except orjson.JSONEncodeError:  # a lone surrogate, an integer over 64 bits
            pass
        else:
            return (_BOM if layout.bom else b"") + out + layout.end.encode()
    return dumps(data, layout).encode()


def _orjson_option(layout: Layout) -> int | None:
    """The orjson option that writes `layout`, or None (then the exact path writes it)."""
    if layout.indent == "  " and layout.newline == "\n" and layout.key_separator == ": ":
        return orjson.OPT_INDENT_2 if layout.item_separator == "," else None
    if layout.indent is None and (layout.item_separator, layout.key_separator) == (",", ":"):
        return 0
    return None


def _fragment(value: object) -> orjson.Fragment:
    if isinstance(value, RawNumber):
        return orjson.Fragment(value.text.encode())
    raise TypeError(f"not JSON: {type(value).__name__}")


def _scan(data: Any, body: bytes | None) -> tuple[bool, bool]:
    """(exact, typed): exact when there is no float anywhere (orjson and `repr` spell some
    differently; a parsed float may have been written otherwise) and no zero that may have
    been written `-0` in `body`; typed when there is a number or a boolean."""
    stack = [[data]]
    zero = typed = False
    while stack:
        value = stack.pop()
        for item in value.values() if type(value) is dict else value:
            kind = type(item)
            if kind is str or item is None:
                continue
            if kind is dict or kind is list:
                stack.append(item)
                continue
            typed = True
            if kind is int:
                zero = zero or item == 0
            elif kind is not bool:
                return False, True
    return not (zero and body is not None and _MINUS_ZERO.search(body)), typed


def _detect_bytes(body: bytes, bom: bool) -> Layout | None:
    """The layout from the document's first and last bytes (None: not within them)."""
    start = 3 if bom else 0
    head = body[start : start + _HEAD].decode("utf-8", "ignore")
    tail = body[-256:]
    end = tail[len(tail.rstrip()) :]
    if len(end) == len(tail) and len(body) > len(tail):
        return None
    whole = len(body) - start <= _HEAD
    return _layout(head.rstrip(), end.decode(), bom, complete=whole)


def detect(text: str) -> Layout:
    """The layout of a document's text (what `JSON.stringify(data, null, indent)` made)."""
    bom = text.startswith("\ufeff")
    body = text.removeprefix("\ufeff")
    stripped = body.rstrip()
    layout = _layout(stripped, body[len(stripped) :], bom, complete=True)
    assert layout is not None
    return layout


def _layout(stripped: str, end: str, bom: bool, *, complete: bool) -> Layout | None:
    """`stripped`: the text without its trailing whitespace, or (not `complete`) its start;
    None when that start is too short to tell."""
    opening = _OPENING.match(stripped.lstrip())
    if opening:
        key = _separator(stripped, ":", complete)
        if key is None and not complete:
            return None
        return Layout(opening[2], ",", ":" + (key or " "), opening[1], end, bom)
    item = _separator(stripped, ",", complete)
    key = _separator(stripped, ":", complete)
    if (item is None or key is None) and not complete:
        return None
    return Layout(
        None,
        "," + (item if item is not None else " "),
        ":" + (key if key is not None else " "),
        "\n",
        end,
        bom,
    )


def _separator(text: str, mark: str, complete: bool = True) -> str | None:
    """The whitespace after the first `mark` outside a string (None: there is none, or
    `text` is only the start of the document and ends in that whitespace)."""
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
            after = rest.lstrip(" ")
            if not after and not complete:
                return None
            return rest[: len(rest) - len(after)]
    return None


def _float(text: str) -> float | RawNumber:
    value = float(text)
    return value if math.isfinite(value) and repr(value) == text else RawNumber(text)


def _int(text: str) -> int | RawNumber:
    return RawNumber(text) if text == "-0" else int(text)


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
