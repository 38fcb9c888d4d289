import copy
import json
from pathlib import Path

import pytest

from wasched.common.document import (
    DocumentError,
    Patch,
    apply_patches,
    parse_document,
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


def test_empty_object_is_an_empty_schedule() -> None:
    assert parse_document(b"").messages == []
    assert parse_document(b"  \n").messages == []


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
