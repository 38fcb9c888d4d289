import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from wasched.common.events import DueMessage, Outcome, ScheduleRequest, SendRequest
from wasched.common.messages import ErrorKind, Status


def test_wire_names_are_camel_case_like_the_document() -> None:
    outcome = Outcome(
        id="m1",
        status=Status.FAILED,
        error="phone number not on WhatsApp",
        error_kind=ErrorKind.NOT_ON_WHATSAPP,
        at=datetime(2025, 12, 24, 10, tzinfo=UTC),
    )
    wire = json.loads(outcome.to_json())
    assert wire == {
        "id": "m1",
        "status": "failed",
        "at": "2025-12-24T10:00:00Z",
        "error": "phone number not on WhatsApp",
        "errorKind": "not_on_whatsapp",
    }
    assert Outcome.model_validate_json(outcome.to_json()) == outcome


def test_schedule_request_keeps_extra_fields_for_the_document() -> None:
    req = ScheduleRequest.model_validate(
        {
            "id": "x",
            "to": "447957189696",
            "message": "hi",
            "scheduledTime": "2025-12-24T10:00:00Z",
            "createdFrom": "crm",
        }
    )
    assert req.model_extra == {"createdFrom": "crm"}


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"to": "447957189696"}, "message"),
        ({"to": "", "message": "hi"}, "to"),
        ({"to": "447957189696", "message": "   "}, "message text is empty"),
    ],
)
def test_malformed_send_request_names_the_field(payload: dict, says: str) -> None:
    with pytest.raises(ValidationError) as info:
        SendRequest.model_validate(payload)
    assert says in str(info.value)


def test_due_message_needs_a_zoned_time() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        DueMessage.model_validate(
            {
                "id": "a",
                "to": "447957189696",
                "message": "hi",
                "scheduledTime": "2025-12-24T10:00:00",
            }
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [("repeat", "FREQ=DAILY"), ("timezone", "Europe/London"), ("skip", ["2026-12-28"])],
)
def test_a_send_request_refuses_what_only_a_scheduled_message_has(
    field: str, value: object
) -> None:
    """A send request is sent now, once: a `repeat` must not be dropped silently."""
    payload = {"to": "447957189696", "message": "hi", field: value}
    with pytest.raises(ValidationError, match=f"{field}: .*wasched.schedule"):
        SendRequest.model_validate(payload)


def test_a_send_request_carries_its_media_and_no_text_for_a_voice_note() -> None:
    """The media must reach the sender, not be dropped with only the text sent."""
    req = SendRequest.model_validate(
        {
            "to": "447957189696",
            "message": "",
            "media": {"type": "voice", "url": "https://example.org/v.ogg"},
        }
    )
    assert req.media is not None and req.media.type == "voice"
    assert req.message == ""
    wire = json.loads(req.to_json())
    assert wire["media"] == {"type": "voice", "url": "https://example.org/v.ogg"}
