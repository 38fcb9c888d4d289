import copy
import json
from pathlib import Path

import pytest

from wasched.common.document import (
    Document,
    DocumentError,
    Patch,
    apply_patches,
    parse_document,
    reapply,
    render_document,
)

SAMPLE = Path(__file__).parent.parent / "data" / "scheduled.sample.json"


def with_unknown_fields() -> dict:
    data = json.loads(SAMPLE.read_text())
    data["version"] = 3
    data["ui"] = {"theme": "dark", "lastOpened": "2025-12-20T09:00:00Z"}
    data["messages"][0]["labels"] = ["family", "🎂"]
    data["messages"][0]["priority"] = 2
    data["messages"][1]["attachments"] = None
    data["messages"][2]["meta"] = {"nested": {"deep": [1, 2.5, True]}}
    return data


def test_unknown_fields_round_trip_when_one_message_changes() -> None:
    original = with_unknown_fields()
    doc = parse_document(json.dumps(original).encode())
    result = apply_patches(
        doc,
        [Patch("1735168500123_a1b2c3", {"status": "sent", "sentAt": "2025-12-24T10:00:01.020Z"})],
    )
    assert result.changed == ["1735168500123_a1b2c3"]
    written = json.loads(render_document(doc))

    expected = copy.deepcopy(original)
    expected["messages"][0]["status"] = "sent"
    expected["messages"][0]["sentAt"] = "2025-12-24T10:00:01.020Z"
    assert written == expected
    # the untouched messages: every field, same value, same key order
    for before, after in zip(original["messages"][1:], written["messages"][1:], strict=True):
        assert list(before.items()) == list(after.items())
    assert written["version"] == 3 and written["ui"] == original["ui"]


def test_unchanged_patch_reports_no_change() -> None:
    doc = parse_document(SAMPLE.read_bytes())
    result = apply_patches(doc, [Patch("1735170000456_d4e5f6", {"status": "sent"})])
    assert not result
    assert result.unchanged == ["1735170000456_d4e5f6"]


def test_patch_for_vanished_id_is_reported_not_applied() -> None:
    doc = parse_document(SAMPLE.read_bytes())
    result = apply_patches(doc, [Patch("gone", {"status": "sent"})])
    assert result.missing == ["gone"]
    assert json.loads(render_document(doc)) == json.loads(SAMPLE.read_text())


def test_status_guard_keeps_a_newer_terminal_status() -> None:
    doc = parse_document(SAMPLE.read_bytes())
    result = apply_patches(
        doc,
        [
            Patch(
                "1735170999789_a7b8c9",
                {"status": "cancelled"},
                only_if_status=frozenset({"pending"}),
            )
        ],
    )
    assert result.skipped == ["1735170999789_a7b8c9"]
    assert doc.messages[2]["status"] == "failed"


def test_repeated_ids_get_distinct_keys() -> None:
    doc = parse_document(
        b'{"messages": [{"id": "a", "n": 1}, {"id": "b"}, {"id": "a", "n": 2}, {"to": "x"}]}'
    )
    keys = [key for key, _ in doc.keyed()]
    assert keys == ["a", "b", "a#1", None]
    apply_patches(doc, [Patch("a#1", {"status": "failed"})])
    assert doc.messages[0] == {"id": "a", "n": 1}
    assert doc.messages[2]["status"] == "failed"


@pytest.mark.parametrize("body", [b"", b"  \n"])
def test_an_empty_object_is_not_a_schedule(body: bytes) -> None:
    """An empty object is a broken or half-finished write, never "no messages"."""
    with pytest.raises(DocumentError, match="is empty"):
        parse_document(body)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"messages": [', "schedule is not valid JSON: Expecting value at line 1 column 15"),
        (b"\xff\xfe{}", "schedule is not UTF-8 text"),
        (b"[]", 'schedule must be a JSON object {"messages": [...]}, got a list'),
        (b'"hello"', "got a string"),
        (b"{}", 'schedule has no "messages" list'),
        (b'{"messages": {"a": 1}}', '"messages" must be a list, got an object'),
        (b'{"messages": null}', '"messages" must be a list, got null'),
        (b'{"messages": [1]}', "messages[0] must be an object, got int"),
        (b'{"messages": [{}, "x"]}', "messages[1] must be an object, got a string"),
    ],
)
def test_not_a_schedule_raises_a_specific_error(body: bytes, says: str) -> None:
    with pytest.raises(DocumentError) as info:
        parse_document(body)
    assert says in str(info.value)


def test_render_keeps_unicode_readable() -> None:
    doc = parse_document('{"messages": [{"id": "x", "message": "Happy Birthday! 🎂"}]}'.encode())
    assert "🎂".encode() in render_document(doc)


def strict(body: bytes) -> object:
    def refuse(name: str) -> object:
        raise AssertionError(f"not strict JSON: {name}")

    return json.loads(body, parse_constant=refuse)


@pytest.mark.parametrize(
    "number",
    [
        "1e400",
        "-1e400",
        "0.1000000000000000055511151231257827",
        "123456789012345678901234567890",
        "1E5",
        "1e21",
        "1.50",
        "-0",
        "-0.0",
        "2.5",
        "7",
    ],
)
def test_numbers_are_written_back_exactly_as_read(number: str) -> None:
    body = f'{{"messages": [{{"id": "a", "n": {number}, "l": [{number}]}}], "x": {number}}}'
    written = render_document(parse_document(body.encode()))
    strict(written)
    assert written.decode().count(number) == 3, written


@pytest.mark.parametrize(
    "text",
    [
        '{\n  "messages": [\n    {\n      "id": "a"\n    }\n  ]\n}',
        '{\n  "messages": [\n    {\n      "id": "a"\n    }\n  ]\n}\n',
        '{\n    "messages": [\n        {\n            "id": "a",\n            "e": []\n        }\n    ]\n}',
        '{\n\t"messages": [\n\t\t{\n\t\t\t"id": "a",\n\t\t\t"o": {}\n\t\t}\n\t]\n}',
        '{"messages":[{"id":"a","n":[1,2]}],"v":1}',
        '{"messages": [{"id": "a", "n": [1, 2]}], "v": 1}',
    ],
    ids=["two-spaces", "trailing-newline", "four-spaces", "tabs", "compact", "python-compact"],
)
def test_layout_is_kept(text: str) -> None:
    assert render_document(parse_document(text.encode())).decode() == text


def test_lone_surrogates_stay_escaped_and_other_text_stays_readable() -> None:
    body = '{"messages": [{"id": "a", "message": "half \\ud83d and 🎂 and \\u00e9"}]}'
    written = render_document(parse_document(body.encode()))
    assert "half \\ud83d and 🎂 and é" in written.decode()


def doc(*messages: dict, **extra: object) -> Document:
    return Document(messages=[dict(m) for m in messages], extra=dict(extra))


BASE = doc({"id": "a", "status": "pending", "message": "hi"}, {"id": "b", "status": "pending"})


@pytest.mark.parametrize(
    ("theirs", "ours", "merged"),
    [
        (  # they edited a field, we wrote an outcome on another message
            doc(
                {"id": "a", "status": "pending", "message": "edited"},
                {"id": "b", "status": "pending"},
            ),
            doc({"id": "a", "status": "pending", "message": "hi"}, {"id": "b", "status": "sent"}),
            doc(
                {"id": "a", "status": "pending", "message": "edited"}, {"id": "b", "status": "sent"}
            ),
        ),
        (  # they added one, after a
            doc(BASE.messages[0], {"id": "new"}, BASE.messages[1]),
            doc({"id": "a", "status": "sent", "message": "hi"}, BASE.messages[1]),
            doc({"id": "a", "status": "sent", "message": "hi"}, {"id": "new"}, BASE.messages[1]),
        ),
        (  # they deleted one we did not touch
            doc(BASE.messages[1]),
            doc(BASE.messages[0], {"id": "b", "status": "sent"}),
            doc({"id": "b", "status": "sent"}),
        ),
        (  # both set the status: ours (what the ledger says happened) stands
            doc({"id": "a", "status": "cancelled", "message": "hi"}, BASE.messages[1]),
            doc({"id": "a", "status": "sent", "message": "hi"}, BASE.messages[1]),
            doc({"id": "a", "status": "sent", "message": "hi"}, BASE.messages[1]),
        ),
        (  # they removed a field and set a top-level one
            doc({"id": "a", "status": "pending"}, BASE.messages[1], v=2),
            doc(*BASE.messages),
            doc({"id": "a", "status": "pending"}, BASE.messages[1], v=2),
        ),
        (  # they changed nothing
            doc(*BASE.messages),
            doc({"id": "a", "status": "sent", "message": "hi"}, BASE.messages[1]),
            doc({"id": "a", "status": "sent", "message": "hi"}, BASE.messages[1]),
        ),
    ],
    ids=["edit", "add", "delete", "status-conflict", "remove-field", "nothing"],
)
def test_reapply_puts_an_overwritten_writers_changes_back(
    theirs: Document, ours: Document, merged: Document
) -> None:
    head = copy.deepcopy(ours)
    changed = reapply(copy.deepcopy(BASE), theirs, head)
    assert (head.messages, head.extra) == (merged.messages, merged.extra)
    assert changed == ((ours.messages, ours.extra) != (merged.messages, merged.extra))
