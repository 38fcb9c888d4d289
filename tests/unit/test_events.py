import json
import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from wasched.common.events import DueMessage, MediaSpec, Outcome, ScheduleRequest, SendRequest
from wasched.common.media import read_media
from wasched.common.messages import ErrorKind, MessageInvalid, Status


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


def test_an_old_due_event_reads_and_writes_as_before() -> None:
    old = {
        "id": "m1",
        "to": "447957189696",
        "message": "hi",
        "scheduledTime": "2025-12-24T10:00:00Z",
        "version": "0123456789abcdef",
    }
    due = DueMessage.model_validate(old)
    assert (due.media, due.link_preview) == (None, None)
    assert json.loads(due.to_json()) == old


def test_a_due_event_carries_media_in_camel_case() -> None:
    media = {
        "type": "document",
        "key": "whatsapp/media/menu.pdf",
        "fileName": "Christmas menu.pdf",
        "mimeType": "application/pdf",
    }
    due = DueMessage.model_validate(
        {
            "id": "m1",
            "to": "447957189696",
            "message": "Tonight",
            "scheduledTime": "2025-12-24T10:00:00Z",
            "media": media,
        }
    )
    assert json.loads(due.to_json())["media"] == media
    content = due.content(media_key_prefix="whatsapp/media/")
    assert content.media is not None and content.media.file_name == "Christmas menu.pdf"
    assert content.text == "Tonight"


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"media": {"type": "image", "url": "ftp://x/y.jpg"}}, "media.url: must start with http"),
        ({"media": {"type": "photo", "url": "https://x/y.jpg"}}, "media.type: expected one of"),
        ({"media": {"type": "image", "url": "https://x/y", "filename": "a"}}, "fileName?"),
        ({"media": {"type": "voice", "url": "https://x/v.ogg"}, "message": "hi"}, "without text"),
        ({"media": {"type": "image", "url": "https://x/y"}, "linkPreview": True}, "linkPreview"),
        ({"message": "  "}, "message: message text is empty"),
    ],
)
def test_bad_content_on_a_send_request_names_the_field(payload: dict, says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        SendRequest.model_validate({"to": "447957189696", "message": "", **payload})


def test_a_media_key_outside_the_media_prefix_is_refused_where_the_prefix_is_known() -> None:
    req = SendRequest.model_validate(
        {"to": "447957189696", "message": "", "media": {"type": "document", "key": "x/a.pdf"}}
    )
    with pytest.raises(MessageInvalid, match=r"media\.key: must be under whatsapp/media/"):
        req.content(media_key_prefix="whatsapp/media/")


def test_media_spec_from_a_read_media_field_round_trips() -> None:
    media = read_media({"type": "image", "key": "whatsapp/media/c.jpg", "caption": "Hi"})
    spec = MediaSpec.from_media(media)
    assert read_media(spec.wire()) == media


def test_a_schedule_request_may_have_no_text_only_with_media() -> None:
    base = {"id": "x", "to": "447957189696", "message": "", "scheduledTime": "2025-12-24T10:00:00Z"}
    with pytest.raises(ValidationError, match="message: message text is empty"):
        ScheduleRequest.model_validate(base)
    media = {"type": "voice", "key": "whatsapp/media/v.ogg"}
    req = ScheduleRequest.model_validate({**base, "media": media})
    assert req.model_extra == {"media": media}, "kept for the document as written"
