"""The `wasched` CLI without a running system: input errors, the events it builds, its views."""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import segno
import zxingcpp
from PIL import Image

from tests.support.mediafiles import OGG_OPUS
from wasched.cli import kinds, listing, pairing, status
from wasched.cli.main import build_parser, run
from wasched.cli.outgoing import (
    InputError,
    cancel_request,
    pair_phone,
    schedule_request,
    send_request,
)
from wasched.cli.servers import free_port
from wasched.cli.when import parse_when
from wasched.common.clock import utcnow
from wasched.common.events import ScheduleRequest, SenderStatus
from wasched.common.settings import load_settings

NOW = datetime(2025, 12, 20, 12, 0, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def no_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no .env) and a NATS URL where nothing listens."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NATS_URL", f"nats://127.0.0.1:{free_port()}")
    monkeypatch.setenv("HEALTH_PORT", str(free_port()))
    return tmp_path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


ADD = ["schedule", "add", "--to", "447957189696", "--message", "Happy birthday!"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([*ADD, "--at", "next tuesday"], "wasched: cannot read the time 'next tuesday'"),
        ([*ADD, "--at", "2020-01-01T10:00:00Z"], "is in the past; it is now"),
        ([*ADD, "--at", "2026-03-29T01:30"], "does not exist in Europe/London"),
        ([*ADD, "--at", "+5m", "--tz", "Mars/Olympus"], "--tz: unknown time zone"),
        (
            ["schedule", "add", "--to", "12345", "--message", "hi", "--at", "+5m"],
            "wasched: --to: not a phone number: …2345 (use international digits)",
        ),
        (
            ["schedule", "add", "--to", "+44 20 0000", "--message", "hi", "--at", "+5m"],
            "wasched: --to: invalid phone number …0000",
        ),
        (
            ["send", "--to", "447957189696", "--message", "   "],
            "wasched: --message: message text is empty",
        ),
        (["pair", "--phone", "120363000000000000@g.us"], "--phone: a phone number is needed"),
        (
            ["schedule", "add", "--to", "447957189696", "--at", "+5m"],
            "--message is required (or --media, to send a file)",
        ),
        (["schedule", "remove", "x"], "invalid choice: 'remove'"),
        (["schedule", "list", "--status", "done"], "invalid choice: 'done'"),
        (["--env-file", "nowhere.env", "schedule", "list"], "--env-file nowhere.env: no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    no_env: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert run(argv) == 2
    assert says in one_line_error(capsys)


@pytest.mark.parametrize(
    "argv",
    [
        [*ADD, "--at", "+5m"],
        ["schedule", "cancel", "1735168500123_a1b2c3"],
        ["send", "--to", "447957189696", "--message", "hi"],
        ["pair"],
    ],
)
def test_no_running_system_is_one_line_and_exit_1(
    no_env: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert run(argv) == 1
    line = one_line_error(capsys)
    assert re.fullmatch(
        r"wasched: cannot reach NATS at nats://127\.0\.0\.1:\d+: is wasched running\? .*", line
    )


def test_status_without_health_service_is_one_line_and_exit_1(
    no_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["status"]) == 1
    assert "cannot reach the health service at http://127.0.0.1:" in one_line_error(capsys)


def test_list_without_s3_settings_says_how_to_set_them(
    no_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["schedule", "list"]) == 1
    assert "S3 is not configured" in one_line_error(capsys)


def test_a_bad_setting_is_one_line_naming_the_variable(
    no_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPLAY_TIMEZONE", "Atlantis/Capital")
    assert run([*ADD, "--at", "+5m"]) == 2
    assert "DISPLAY_TIMEZONE='Atlantis/Capital'" in one_line_error(capsys)


def test_password_in_nats_url_never_shown(no_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"nats://alice:s3cr3t@127.0.0.1:{free_port()}"
    assert run(["--nats-url", url, "schedule", "cancel", "x"]) == 1
    line = one_line_error(capsys)
    assert "s3cr3t" not in line and "alice" not in line


def test_schedule_request_is_what_the_document_expects() -> None:
    at = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)
    event = schedule_request(
        to="+44 7957 189696", message="Happy Birthday! 🎂", at=at, now=NOW, contact_name="Reem"
    )
    data = json.loads(event.to_json())
    assert re.fullmatch(r"1766232000000_[0-9a-f]{6}", data["id"])
    assert data["to"] == "447957189696"
    assert data["message"] == "Happy Birthday! 🎂"
    assert data["contactName"] == "Reem"
    assert data["createdFrom"] == "cli"
    assert data["createdAt"] == "2025-12-20T12:00:00.000Z"
    parsed = ScheduleRequest.model_validate_json(event.to_json())
    assert parsed.scheduled_time == at


def test_ids_differ_and_a_given_id_is_kept() -> None:
    at = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)
    ids = {schedule_request(to="447957189696", message="x", at=at, now=NOW).id for _ in range(50)}
    assert len(ids) == 50
    kept = schedule_request(to="447957189696", message="x", at=at, now=NOW, message_id="mine-1")
    assert kept.id == "mine-1"


def test_groups_and_jids_are_sent_as_jids() -> None:
    group = send_request(to="120363025246125888@g.us", message="hi", now=NOW)
    assert group.to == "120363025246125888@g.us"
    user = send_request(to="447957189696@s.whatsapp.net", message="hi", now=NOW)
    assert user.to == "447957189696@s.whatsapp.net"
    with pytest.raises(InputError, match="--id"):
        cancel_request("  ")


def test_list_table_is_sorted_in_the_display_zone_and_filters_by_status() -> None:
    messages = [
        {
            "id": "b",
            "to": "447950724774",
            "message": "Running late",
            "status": "sent",
            "scheduledTime": "2026-07-01T08:50:00.000Z",
            "contactName": "Sam",
        },
        {
            "id": "a",
            "to": "447957189696",
            "message": "Happy Birthday! " + "x" * 60,
            "status": "pending",
            "scheduledTime": "2025-12-24T10:00:00.000Z",
        },
        {
            "id": "c",
            "to": "380689640017",
            "message": "bad",
            "status": "failed",
            "scheduledTime": "someday",
            "error": "phone number not on WhatsApp",
        },
    ]
    table = listing.rows(messages, LONDON)
    assert [row[0] for row in table] == ["a", "b", "c"]
    assert table[0][1] == "24/12/2025, 10:00:00"
    assert table[1][1] == "01/07/2026, 09:50:00"  # BST
    assert table[2][1] == "someday (invalid)"
    assert table[2][3] == "failed (phone number not on WhatsApp)"
    assert len(table[0][6]) == listing.MESSAGE_WIDTH and table[0][6].endswith("…")
    text = listing.render(table)
    assert text.splitlines()[0].split() == list(listing.COLUMNS)
    only_sent = listing.rows(messages, LONDON, ["sent"])
    assert [row[0] for row in only_sent] == ["b"]
    assert listing.render([]) == "no messages"


def test_list_shows_a_series_rule_and_next_occurrence_and_the_media_type() -> None:
    messages = [
        {
            "id": "bins",
            "to": "447957189696",
            "message": "Bins out tonight",
            "status": "pending",
            "scheduledTime": "2026-01-05T19:00:00.000Z",
            "repeat": "FREQ=WEEKLY;BYDAY=MO",
            "nextAt": "2026-07-06T18:00:00.000Z",
        },
        {
            "id": "card",
            "to": "447957189696",
            "message": "",
            "status": "pending",
            "scheduledTime": "2026-03-01T09:00:00.000Z",
            "media": {"type": "image", "key": "whatsapp/media/c.jpg", "caption": "Merry"},
        },
        {
            "id": "voice",
            "to": "447957189696",
            "message": "",
            "status": "pending",
            "scheduledTime": "2026-03-02T09:00:00.000Z",
            "media": {"type": "voice", "key": "whatsapp/media/v.ogg"},
        },
    ]
    table = listing.rows(messages, LONDON)
    assert [row[:3] for row in table] == [
        ("card", "01/03/2026, 09:00:00", ""),
        ("voice", "02/03/2026, 09:00:00", ""),
        ("bins", "06/07/2026, 19:00:00", "FREQ=WEEKLY;BYDAY=MO"),  # nextAt, in BST
    ]
    assert [row[6] for row in table] == ["[image] Merry", "[voice]", "Bins out tonight"]


def test_list_shows_a_local_time_at_its_instant() -> None:
    messages = [
        {"id": "ny", "to": "1", "message": "m", "status": "pending", "timezone": "America/New_York",
         "scheduledTime": "2027-03-14T02:30:00"},  # skipped by the clocks: 07:00 UTC
        {"id": "utc", "to": "1", "message": "m", "status": "pending",
         "scheduledTime": "2027-03-14T06:59:00Z"},
        {"id": "bad", "to": "1", "message": "m", "status": "pending", "timezone": "Mars/Olympus",
         "scheduledTime": "2027-03-14T02:30:00"},
    ]  # fmt: skip
    table = listing.rows(messages, ZoneInfo("UTC"))
    assert [(row[0], row[1]) for row in table] == [
        ("utc", "14/03/2027, 06:59:00"),
        ("ny", "14/03/2027, 07:00:00"),
        ("bad", "2027-03-14T02:30:00 (invalid)"),
    ]


HEALTH_BODY = {
    "healthy": False,
    "checks": [
        {"name": "poller_heartbeat", "ok": True, "detail": "last heartbeat 1.2s ago"},
        {"name": "sender_state", "ok": False, "detail": "WhatsApp needs linking"},
    ],
}


def test_status_report_names_each_check() -> None:
    checks = status.parse_checks(HEALTH_BODY)
    assert status.render(checks, healthy=False).splitlines() == [
        "wasched is NOT healthy",
        "  ok   poller_heartbeat: last heartbeat 1.2s ago",
        "  FAIL sender_state: WhatsApp needs linking",
    ]
    assert status.summary(checks, healthy=False) == "unhealthy: sender_state"
    as_mapping = status.parse_checks({"checks": {"store": {"ok": True, "mode": "merge"}}})
    assert as_mapping == [status.Check("store", True, "mode=merge")]


def _status(**fields: object) -> SenderStatus:
    return SenderStatus.model_validate({"state": "pairing", **fields})


def test_pairing_steps() -> None:
    assert pairing.next_step(_status(qr="2@abc"), None) == pairing.ShowQr("2@abc")
    assert isinstance(pairing.next_step(_status(qr="2@abc"), "2@abc"), pairing.Note)
    assert pairing.next_step(_status(state="connected"), "2@abc").ok
    done = pairing.next_step(_status(state="banned", detail="temporary ban"), None)
    assert done == pairing.Done(False, "the sender stopped linking (banned: temporary ban)")
    dry = pairing.next_step(_status(state="connected", transport="dryrun"), None)
    assert dry.ok and "dryrun" in dry.text
    assert pairing.format_code("ABCD1234") == "ABCD-1234"


def _decode_terminal_qr(block: str) -> str:
    """Turn segno's half-block terminal rendering back into pixels and scan it."""
    top = {"█": (1, 1), "▀": (1, 0), "▄": (0, 1), " ": (0, 0)}  # 1 = light module
    rows: list[list[int]] = []
    for line in block.splitlines():
        pairs = [top[ch] for ch in line]
        rows.append([p[0] for p in pairs])
        rows.append([p[1] for p in pairs])
    scale, margin = 8, 8
    width = len(rows[0])
    image = Image.new("L", ((width + 2 * margin) * scale, (len(rows) + 2 * margin) * scale), 255)
    for y, row in enumerate(rows):
        for x, light in enumerate(row):
            if not light:
                image.paste(
                    0,
                    (
                        (x + margin) * scale,
                        (y + margin) * scale,
                        (x + margin + 1) * scale,
                        (y + margin + 1) * scale,
                    ),
                )
    found = zxingcpp.read_barcodes(image)
    assert found, "no QR code found in the terminal rendering"
    return found[0].text


def test_terminal_qr_scans_to_the_pairing_string() -> None:
    data = "2@Zm9vYmFyYmF6cXV4,RG9udCBzY2FuIG1l,cXV1eA==,1234567890abcdef"
    block = pairing.qr_block(data)
    assert _decode_terminal_qr(block) == data
    assert segno.make(data, micro=False).version <= 10  # fits a terminal


RUNNING_MD = Path(__file__).resolve().parents[2] / "docs" / "running.md"


def _documented_commands() -> list[list[str]]:
    section = RUNNING_MD.read_text().split("## The `wasched` command", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    commands = []
    for line in block.splitlines():
        if line.startswith("wasched "):
            commands.append(shlex.split(line, comments=True)[1:])
    return commands


def test_documented_cli_examples_are_valid_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each example parses, and its message and media pass the poller's and sender's rules
    (with the files it names: a picture and a voice note)."""
    commands = _documented_commands()
    assert len(commands) >= 14
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (32, 32), (200, 0, 0)).save(tmp_path / "card.jpg", format="JPEG")
    (tmp_path / "hello.ogg").write_bytes(OGG_OPUS)
    settings = load_settings(_env_file=None, s3_endpoint="http://127.0.0.1:1")
    parser = build_parser()
    now = utcnow()
    for argv in commands:
        args = parser.parse_args(argv)
        if getattr(args, "at", None):
            zone_name = args.tz or "Europe/London"
            at = parse_when(args.at, ZoneInfo(zone_name), now)
            assert at > now, f"{args.at} is in the past"
            plan = kinds.plan_for(args, settings, at, zone_name)
            schedule_request(to=args.to, message=args.message, at=at, now=now, fields=plan.fields)
        elif argv[0] == "send":
            plan = kinds.plan_for(args, settings, now, "Europe/London")
            send_request(to=args.to, message=args.message, now=now, fields=plan.fields)
        if getattr(args, "phone", None):
            pair_phone(args.phone)
