"""`wasched schedule add --repeat/--skip/--media/...`: parsing and checks, no servers."""

from __future__ import annotations

import argparse
import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from wasched.cli.kinds import KindPlan, add_arguments, plan_kinds
from wasched.cli.outgoing import InputError
from wasched.common.recurrence import next_occurrence

AT = datetime(2026, 12, 24, 9, 0, tzinfo=UTC)
PREFIX = "whatsapp/"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def plan(*argv: str, message: str = "Happy birthday!", zone: str = "Europe/London") -> KindPlan:
    return plan_kinds(
        parse(*argv), message=message, at=AT, zone_name=zone, media_prefix=f"{PREFIX}media/"
    )


@pytest.fixture
def card(tmp_path: Path) -> Path:
    path = tmp_path / "card 2026.jpg"
    Image.new("RGB", (16, 16), (10, 120, 30)).save(path, format="JPEG")
    return path


def test_no_new_options_no_new_fields() -> None:
    assert plan().fields == {}


def test_a_yearly_series_keeps_its_zone() -> None:
    result = plan("--repeat", "FREQ=YEARLY", "--skip", "2027-12-24")
    assert result.fields == {
        "timezone": "Europe/London",
        "repeat": "FREQ=YEARLY",
        "skip": ["2027-12-24"],
    }
    assert result.kinds is not None and result.kinds.series is not None
    assert next_occurrence(result.kinds.series, AT) == datetime(2028, 12, 24, 9, tzinfo=UTC)


def test_a_local_file_is_checked_and_named_by_its_content(card: Path) -> None:
    result = plan("--media", str(card))
    data = card.read_bytes()
    key = f"whatsapp/media/{hashlib.sha256(data).hexdigest()[:16]}-card_2026.jpg"
    assert result.fields == {"media": {"type": "image", "key": key}}
    assert result.upload is not None
    assert (result.upload.key, result.upload.data, result.upload.mime) == (key, data, "image/jpeg")


def test_a_document_keeps_its_name(tmp_path: Path) -> None:
    menu = tmp_path / "menu.pdf"
    menu.write_bytes(b"%PDF-1.4\n" + b"0" * 100)
    media = plan("--media", str(menu)).fields["media"]
    assert (media["type"], media["fileName"]) == ("document", "menu.pdf")


def test_a_url_is_not_uploaded_and_its_type_comes_from_its_name() -> None:
    result = plan("--media", "https://example.org/clip.mp4?x=1")
    assert result.fields == {"media": {"type": "video", "url": "https://example.org/clip.mp4?x=1"}}
    assert result.upload is None


def test_link_preview() -> None:
    assert plan("--link-preview").fields == {"linkPreview": True}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--repeat", "FREQ=WEEKLY;BYDAY=XX"), "--repeat: BYDAY: expected weekdays like MO,WE"),
        (("--repeat", "0 9 * * 1"), "--repeat: this looks like a cron expression"),
        (("--skip", "2027-12-24"), "--skip: only a repeating message (with repeat)"),
        (("--repeat", "FREQ=DAILY", "--skip", "soon"), "--skip: not an ISO-8601 time: 'soon'"),
        (("--media", "/no/such/card.jpg"), "--media: no such file: /no/such/card.jpg"),
        (("--media", "ftp://x.org/a.jpg"), "--media: no such file: ftp://x.org/a.jpg"),
        (("--media", "https://x.org/a.jpg", "--link-preview"), "--link-preview: only a text"),
    ],
)
def test_bad_options_name_the_flag(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(InputError) as err:
        plan(*argv)
    assert str(err.value).startswith(message)


def test_a_file_that_is_not_what_it_claims(tmp_path: Path) -> None:
    fake = tmp_path / "card.jpg"
    fake.write_bytes(b"<!DOCTYPE html><html>oops</html>" + b" " * 64)
    with pytest.raises(InputError, match="the content is an HTML page, not an image"):
        plan("--media", str(fake), "--media-type", "image")


def test_a_gif_is_refused_as_an_image(tmp_path: Path) -> None:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, format="GIF")
    gif = tmp_path / "a.gif"
    gif.write_bytes(out.getvalue())
    with pytest.raises(InputError, match=r"--media: a\.gif: the content is a GIF image"):
        plan("--media", str(gif), "--media-type", "image")


def test_an_oversize_file_is_refused_before_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    with big.open("wb") as out:
        out.truncate(5 * 1024 * 1024 + 1)
    with pytest.raises(InputError, match=r"big\.jpg is 5,242,881 bytes; over 5,242,880"):
        plan("--media", str(big), "--media-type", "image")


def test_a_voice_note_carries_no_text(tmp_path: Path) -> None:
    voice = tmp_path / "hello.ogg"
    voice.write_bytes(b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13OpusHead" + b"\x00" * 64)
    media = plan("--media", str(voice), "--media-type", "voice", message="").fields["media"]
    assert media["type"] == "voice"
    with pytest.raises(InputError, match="--message: WhatsApp sends voice without text"):
        plan("--media", str(voice), "--media-type", "voice")
