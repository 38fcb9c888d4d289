"""Reading `wasched.due` / `wasched.send` payloads into jobs, or specific rejections."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from wasched.common.topology import DUE, REPLY_HEADER, SEND
from wasched.sender.inbound import Job, Rejected, generated_id, read_job
from wasched.sender.pairing import read_phone

STORED = datetime(2025, 12, 24, 10, 0, 1, 500000, tzinfo=UTC)


def read(subject: str, payload: object, headers: dict[str, str] | None = None) -> Job | Rejected:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return read_job(subject, data, headers, stream_seq=42, stored_at=STORED)


DUE_OK = {
    "id": "m1",
    "to": "+44 7957 189696",
    "message": "hi",
    "scheduledTime": "2025-12-24T10:00:00Z",
    "contactName": "Jo",
}


def test_due_message_becomes_a_job() -> None:
    job = read(DUE, DUE_OK, {REPLY_HEADER: "_INBOX.x"})
    assert isinstance(job, Job)
    assert (job.id, job.to, job.text, job.subject) == ("m1", "+44 7957 189696", "hi", DUE)
    assert job.scheduled == datetime(2025, 12, 24, 10, 0, tzinfo=UTC)
    assert job.reply_to == "_INBOX.x"
    assert not job.generated_id


def test_send_request_with_id_keeps_it_and_is_due_when_stored() -> None:
    job = read(SEND, {"id": "ext-1", "to": "447957189696", "message": "now"})
    assert isinstance(job, Job)
    assert (job.id, job.scheduled, job.generated_id) == ("ext-1", STORED, False)


def test_send_request_without_id_gets_one_that_survives_redelivery() -> None:
    first = read(SEND, {"to": "447957189696", "message": "now"})
    again = read(SEND, {"to": "447957189696", "message": "now"})
    assert isinstance(first, Job) and isinstance(again, Job)
    assert first.id == again.id == generated_id(42, STORED) == "send-1766570401500-42"
    assert first.generated_id


def test_a_due_hand_over_carries_its_version() -> None:
    job = read(DUE, {**DUE_OK, "version": "0123456789abcdef"})
    assert isinstance(job, Job) and job.version == "0123456789abcdef"


@pytest.mark.parametrize(
    ("payload", "msg_id", "expected"),
    [
        pytest.param({}, "req-7", "req-7", id="the caller's Nats-Msg-Id names it"),
        pytest.param({}, "send:req-7", "req-7", id="the documented send: prefix is dropped"),
        pytest.param({"id": "own"}, "send:other", "own", id="an id in the payload wins"),
        pytest.param({}, "send:", "send-1766570401500-42", id="an empty one is no id"),
        pytest.param({}, "x" * 201, "send-1766570401500-42", id="too long for an id"),
    ],
)
def test_a_send_request_takes_its_id_from_the_callers_msg_id(
    payload: dict[str, str], msg_id: str, expected: str
) -> None:
    body = {"to": "447957189696", "message": "now", **payload}
    job = read(SEND, body, {"Nats-Msg-Id": msg_id})
    assert isinstance(job, Job) and job.id == expected
    assert job.generated_id is expected.startswith("send-")


@pytest.mark.parametrize(
    ("subject", "payload", "reason", "readable_id"),
    [
        pytest.param(DUE, b"{nope", "payload is not valid JSON", None, id="not json"),
        pytest.param(DUE, b"[1, 2]", "payload must be a JSON object", None, id="a list"),
        pytest.param(
            DUE, {**DUE_OK, "message": "   "}, "message: message text is empty", "m1", id="blank"
        ),
        pytest.param(
            DUE,
            {**DUE_OK, "scheduledTime": "2025-12-24T10:00:00"},
            "scheduledTime: Input should have timezone info",
            "m1",
            id="naive time",
        ),
        pytest.param(
            DUE, {k: v for k, v in DUE_OK.items() if k != "to"}, "to: Field required", "m1", id="to"
        ),
        pytest.param(
            DUE, {k: v for k, v in DUE_OK.items() if k != "id"}, "id: Field required", None, id="id"
        ),
        pytest.param(SEND, {"to": "447957189696"}, "message: Field required", None, id="no text"),
        pytest.param(SEND, {"id": "", "to": "4", "message": "x"}, "id: String should", None),
    ],
)
def test_malformed_payloads_are_rejected_with_the_reason(
    subject: str, payload: object, reason: str, readable_id: str | None
) -> None:
    got = read(subject, payload, {REPLY_HEADER: "_INBOX.r"})
    assert isinstance(got, Rejected)
    assert reason in got.reason
    assert got.id == readable_id
    assert got.reply_to == "_INBOX.r"


@pytest.mark.parametrize(
    ("payload", "phone", "error"),
    [
        (b'{"phone": "+44 7957 189696"}', "447957189696", None),
        (b'{"phone": "12"}', None, "not a phone number"),
        (b'{"phone": "120363040000000000@g.us"}', None, "not a group"),
        (b"{}", None, "phone: Field required"),
        (b"nope", None, "not valid JSON"),
    ],
)
def test_pair_request_phone(payload: bytes, phone: str | None, error: str | None) -> None:
    if error is None:
        assert read_phone(payload) == phone
    else:
        with pytest.raises(ValueError, match=error):
            read_phone(payload)


def read_with_prefix(subject: str, payload: object) -> Job | Rejected:
    data = json.dumps(payload).encode()
    return read_job(
        subject, data, None, stream_seq=42, stored_at=STORED, media_key_prefix="whatsapp/media/"
    )


def test_a_hand_over_with_media_sends_its_caption_and_the_file() -> None:
    media = {"type": "image", "key": "whatsapp/media/card.jpg", "caption": "Merry Christmas"}
    job = read_with_prefix(DUE, {**DUE_OK, "message": "", "media": media})
    assert isinstance(job, Job)
    assert job.media is not None and job.media.key == "whatsapp/media/card.jpg"
    assert (job.text, job.link_preview) == ("Merry Christmas", False)
    assert job.pace_text == "Merry Christmas\n[image: whatsapp/media/card.jpg]"


def test_a_send_request_with_a_link_preview() -> None:
    job = read_with_prefix(
        SEND, {"to": "447957189696", "message": "https://x.org", "linkPreview": True}
    )
    assert isinstance(job, Job) and job.link_preview and job.media is None


@pytest.mark.parametrize(
    ("subject", "media", "reason", "readable_id"),
    [
        pytest.param(
            DUE,
            {"type": "image", "key": "whatsapp/scheduled.json"},
            "media.key: must be under whatsapp/media/",
            "m1",
            id="a key outside the media prefix",
        ),
        pytest.param(
            SEND,
            {"type": "document", "key": "../secret"},
            "media.key: no empty, . or .. parts",
            None,
            id="a key that climbs out",
        ),
    ],
)
def test_media_the_sender_must_not_read_is_rejected(
    subject: str, media: dict[str, str], reason: str, readable_id: str | None
) -> None:
    payload = {**(DUE_OK if subject == DUE else {"to": "447957189696"}), "message": ""}
    got = read_with_prefix(subject, {**payload, "media": media})
    assert isinstance(got, Rejected)
    assert reason in got.reason
    assert got.id == readable_id
