from datetime import UTC, datetime

import pytest

from wasched.common.messages import ErrorKind, MessageInvalid, read_message

GOOD = {
    "id": "1735168500123_a1b2c3",
    "to": "+44 7957 189696",
    "contactName": "Reem",
    "message": "Happy Birthday! 🎂",
    "scheduledTime": "2025-12-24T10:00:00.000Z",
    "status": "pending",
}


def test_valid_message_is_read() -> None:
    msg = read_message(GOOD)
    assert msg.recipient.jid == "447957189696@s.whatsapp.net"
    assert msg.scheduled_time == datetime(2025, 12, 24, 10, tzinfo=UTC)
    assert msg.contact_name == "Reem"
    assert msg.expires_at is None


@pytest.mark.parametrize(
    ("change", "kind", "says"),
    [
        ({"to": None}, ErrorKind.VALIDATION, "to is missing or empty"),
        ({"to": ""}, ErrorKind.VALIDATION, "to is missing or empty"),
        ({"to": 447957189696}, ErrorKind.VALIDATION, "to is missing or empty"),
        ({"message": 42}, ErrorKind.VALIDATION, "message text is missing or not a string"),
        ({"message": "  "}, ErrorKind.VALIDATION, "message text is empty"),
        ({"message": "x" * 70_000}, ErrorKind.VALIDATION, "message text is 70000 characters"),
        (
            {"scheduledTime": "next tuesday"},
            ErrorKind.VALIDATION,
            "scheduledTime: not an ISO-8601 time",
        ),
        (
            {"scheduledTime": "2025-12-24T10:00:00"},
            ErrorKind.VALIDATION,
            "scheduledTime: time '2025-12-24T10:00:00' has no time zone",
        ),
        ({"scheduledTime": None}, ErrorKind.VALIDATION, "scheduledTime is missing"),
        ({"expiresAt": "soon"}, ErrorKind.VALIDATION, "expiresAt: not an ISO-8601 time"),
        ({"id": ""}, ErrorKind.VALIDATION, "id is missing"),
        ({"to": "Reem"}, ErrorKind.INVALID_RECIPIENT, "not a phone number"),
    ],
)
def test_invalid_message_names_the_field(change: dict, kind: ErrorKind, says: str) -> None:
    with pytest.raises(MessageInvalid) as info:
        read_message({**GOOD, **change})
    assert info.value.kind is kind
    assert says in info.value.reason


def test_missing_field_is_the_same_as_null() -> None:
    raw = {k: v for k, v in GOOD.items() if k != "scheduledTime"}
    with pytest.raises(MessageInvalid, match="scheduledTime is missing"):
        read_message(raw)


def test_the_content_version_follows_what_is_sent_and_when() -> None:
    from wasched.common.messages import content_version

    base = content_version(GOOD)
    assert base == content_version(dict(GOOD))
    for change in ({"message": "other"}, {"to": "447957189697"}, {"scheduledTime": "x"}):
        assert content_version({**GOOD, **change}) != base
    for same in ({"status": "sent"}, {"contactName": "Sam"}, {"labels": ["x"], "sentAt": None}):
        assert content_version({**GOOD, **same}) == base
    assert content_version({**GOOD, "expiresAt": None}) != base  # present, even if null
