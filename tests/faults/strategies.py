"""Hypothesis strategies for bad (and good) input: documents, messages, times, events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

GOOD_MESSAGE: dict[str, Any] = {
    "id": "1735168500123_a1b2c3",
    "to": "447957189696",
    "contactName": "Reem",
    "message": "Happy Birthday! 🎂",
    "scheduledTime": "2025-12-24T10:00:00.000Z",
    "status": "pending",
    "createdAt": "2025-12-22T22:15:00.000Z",
    "createdFrom": "web",
    "sentAt": None,
    "error": None,
}

ODD_STRINGS = [
    "",
    " ",
    "\u200b",  # zero-width space
    "\u202eevil",  # right-to-left override
    "e\u0301\u0301\u0301",  # stacked combining marks
    "👩‍👩‍👧‍👦🏳️‍🌈",
    "\x00\x01\x7f",
    "null",
    "０１２３",  # full-width digits
    "٤٤٧٩٥٧١٨٩٦٩٦",  # Arabic-Indic digits
    "\ufeff447957189696",
]

BAD_TIMES = [
    "9999-12-31T23:59:59-01:00",  # in range as written, past year 9999 in UTC
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "0000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "2025-02-30T10:00:00Z",
    "2025-12-24T25:00:00Z",
    "2025-12-24T10:00:00",  # naive
    "2025-12-24T10:00:00+25:00",
    "2025-12-24",
    "T10:00:00Z",
    "1735030800",
    "next tuesday",
]


def odd_text(max_size: int = 30) -> st.SearchStrategy[str]:
    """Any Unicode (surrogates excluded: JSON text cannot carry them as UTF-8) and odd cases."""
    return st.text(max_size=max_size) | st.sampled_from(ODD_STRINGS)


def huge_text() -> st.SearchStrategy[str]:
    return st.builds(
        lambda unit, n: unit * n,
        st.sampled_from(["x", "🎂", "ä", " ", "\n"]),
        st.integers(min_value=60_000, max_value=200_000),
    )


def json_scalars() -> st.SearchStrategy[Any]:
    return (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | odd_text()
    )


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    return st.recursive(
        json_scalars(),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(odd_text(10), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def times() -> st.SearchStrategy[str]:
    """Valid times in many spellings, and invalid or out-of-range ones."""
    offsets = (timezone(timedelta(minutes=m)) for m in (-720, -210, 60, 345, 840))
    zones = st.sampled_from([UTC, *offsets])
    valid = st.builds(
        lambda moment, zone, sep: moment.replace(tzinfo=UTC).astimezone(zone).isoformat(sep),
        st.datetimes(
            min_value=datetime(1, 1, 2),
            max_value=datetime(9999, 12, 30),
        ),
        zones,
        st.sampled_from(["T", " "]),
    )
    return valid | st.sampled_from(BAD_TIMES) | odd_text()


FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from(["a", "b", "a#1", "1735168500123_a1b2c3"]) | odd_text() | json_values(3),
    "to": st.sampled_from(["447957189696", "+44 7957 189696", "120363041234567890@g.us"])
    | odd_text()
    | st.integers()
    | json_values(3),
    "message": odd_text() | huge_text() | json_values(3),
    "scheduledTime": times() | json_values(3),
    "expiresAt": times() | st.none(),
    "status": st.sampled_from(["pending", "sent", "failed", "expired", "cancelled", "PENDING"])
    | json_values(3),
    "contactName": odd_text() | json_values(3),
}


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """A good message with some fields replaced, removed, or added (unknown fields)."""
    message = dict(GOOD_MESSAGE)
    for name in draw(st.sets(st.sampled_from(sorted(FIELD_VALUES)))):
        if draw(st.booleans()):
            message[name] = draw(FIELD_VALUES[name])
        else:
            message.pop(name, None)
    extra = draw(st.dictionaries(odd_text(12), json_values(4), max_size=3))
    for name, value in extra.items():
        message.setdefault(name, value)
    return message


def documents() -> st.SearchStrategy[dict[str, Any]]:
    """Schedules with arbitrary messages (repeated ids likely) and unknown top-level fields."""
    return st.builds(
        lambda msgs, extra: {"messages": msgs, **extra},
        st.lists(messages(), max_size=8),
        st.dictionaries(odd_text(10).filter(lambda k: k != "messages"), json_values(4), max_size=3),
    )


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    """A well-formed schedule cut short, as an interrupted upload leaves it."""
    body = json.dumps(draw(documents()), ensure_ascii=draw(st.booleans()), indent=2).encode()
    body = body.rstrip()
    keep = draw(st.integers(min_value=1, max_value=len(body) - 1))
    return body[:keep]


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """A well-formed schedule with a few bytes flipped, inserted or deleted."""
    body = bytearray(json.dumps(draw(documents())).encode())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            body[at] = draw(st.integers(0, 255))
        elif action == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=3))
        else:
            del body[at]
    return bytes(body)


def raw_bodies() -> st.SearchStrategy[bytes]:
    wrong_shapes = json_values().map(lambda v: json.dumps(v).encode())
    return st.binary(max_size=200) | truncated() | mangled() | wrong_shapes


def event_payloads() -> st.SearchStrategy[bytes]:
    """What another system might publish on an inbound subject: anything at all."""
    objects = st.one_of(messages(), st.dictionaries(odd_text(12), json_values(4), max_size=6))
    return (
        objects.map(lambda v: json.dumps(v).encode())
        | json_values().map(lambda v: json.dumps(v).encode())
        | st.binary(max_size=120)
        | truncated()
    )
