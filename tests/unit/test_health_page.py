"""The status page: state, a QR code that actually scans, masked numbers, escaped text."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import zxingcpp

from wasched.common.events import Heartbeat, Outcome, SenderStatus
from wasched.common.messages import ErrorKind, Status
from wasched.common.settings import Settings, load_settings
from wasched.health.checks import evaluate
from wasched.health.page import render_page, scrub
from wasched.health.state import LiveState

NOW = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)
# The shape of a real WhatsApp linking QR payload (ref, noise key, identity key, adv secret).
QR = "2@Yw8f1r3k8JqvWbJtZQ2w3L2m1v9gKxTqz6Xo4WcQ0u5YkPz+Hc3sE7q1yJmH8uXv==,Xb0w+e2cTz7Q4oKu1NqFfYV0rW0qkqv8Lm4Gd6M9Xn0=,cVd0m5pQ0b3fK8sL2wJ7yR4tU6iO9aE1zX5nB8vC3kM=,Ht6jP1qW9eR4tY7uI0oP3aS6dF9gH2jK5lZ8xC1vB4n="


def svg_qr_text(svg: str, scale: int = 6) -> list[str]:
    """Rasterise segno's SVG path (module rows drawn as 1-unit lines) and decode it with zxing."""
    view = re.search(r'viewBox="0 0 (\d+) (\d+)"', svg)
    path = re.search(r'<path[^>]*class="qrline"[^>]*\sd="([^"]+)"', svg)
    assert view and path, "no segno QR path in the SVG"
    width, height = int(view[1]), int(view[2])
    dark: set[tuple[int, int]] = set()
    x = y = 0.0
    for op, args in re.findall(r"([MmHh])([^MmHh]*)", path[1]):
        nums = [float(n) for n in args.replace(",", " ").split()]
        if op == "M":
            x, y = nums
        elif op == "m":
            x, y = x + nums[0], y + nums[1]
        else:
            length = nums[0] if op == "h" else nums[0] - x
            dark.update((int(x + i), int(y)) for i in range(round(length)))
            x += length
    pixels = bytearray(b"\xff" * (width * scale * height * scale))
    for mx, my in dark:
        for row in range(my * scale, (my + 1) * scale):
            start = row * width * scale + mx * scale
            pixels[start : start + scale] = b"\x00" * scale
    image = memoryview(pixels).cast("B", (height * scale, width * scale))
    return [barcode.text for barcode in zxingcpp.read_barcodes(image)]


def page_qr(html: str) -> list[str]:
    figure = re.search(r'<figure id="qr"[^>]*>(<svg.*?</svg>)', html, re.S)
    assert figure, "the page shows no QR code"
    return svg_qr_text(figure[1])


def settings() -> Settings:
    return load_settings(_env_file=None, display_timezone="Europe/London")


def state_with(status: SenderStatus | None = None, *outcomes: Outcome) -> LiveState:
    state = LiveState(started_at=NOW - timedelta(hours=1))
    if status is not None:
        state.on_status(status, NOW - timedelta(seconds=1))
    state.on_heartbeat(
        Heartbeat(service="poller", details={"pending": 7, "overdue": 0, "storeReachable": True}),
        NOW - timedelta(seconds=1),
    )
    for outcome in outcomes:
        state.on_outcome(outcome)
    return state


def render(state: LiveState) -> str:
    s = settings()
    return render_page(state, evaluate(state.poller, state.status, NOW, s), NOW, s, nats_up=True)


def test_pairing_page_shows_a_qr_that_decodes_to_the_senders_string() -> None:
    html = render(state_with(SenderStatus(state="pairing", qr=QR, pair_code="ABCD-EFGH")))
    assert page_qr(html) == [QR]
    assert 'id="state"' in html and ">pairing<" in html
    assert '<code id="pair-code">ABCD-EFGH</code>' in html
    assert "scan the QR" in html  # the failing sender check says what to do


def test_connected_page_has_no_qr() -> None:
    html = render(state_with(SenderStatus(state="connected", qr=QR)))
    assert 'id="qr"' not in html
    assert ">connected<" in html


def test_stale_sender_status_is_not_shown_as_current() -> None:
    state = LiveState(started_at=NOW)
    state.on_status(SenderStatus(state="pairing", qr=QR), NOW - timedelta(minutes=5))
    html = render(state)
    assert 'id="qr"' not in html
    assert ">unknown<" in html


def test_recent_outcomes_show_masked_numbers_and_reasons() -> None:
    sent = Outcome(id="m-1", status=Status.SENT, to="+44 7957 189696", lateness_seconds=0.4)
    failed = Outcome(
        id="m-2",
        status=Status.FAILED,
        to="447700900123",
        error="447700900123 is not on WhatsApp",
        error_kind=ErrorKind.NOT_ON_WHATSAPP,
    )
    html = render(state_with(SenderStatus(state="connected"), sent, failed))
    assert "…9696" in html and "…0123" in html
    for digits in ("189696", "7957", "447700900123", "700900"):
        assert digits not in html
    assert "is not on WhatsApp" in html
    assert html.index("m-2") < html.index("m-1"), "newest first"
    assert '<meta http-equiv="refresh"' in html


def test_only_the_last_twenty_outcomes_are_listed() -> None:
    outcomes = [Outcome(id=f"msg-{i:03d}", status=Status.SENT) for i in range(25)]
    html = render(state_with(SenderStatus(state="connected"), *outcomes))
    assert "msg-024" in html and "msg-005" in html
    assert "msg-004" not in html
    assert "Last 20 outcomes" in html


def test_text_from_events_is_escaped() -> None:
    evil = Outcome(id="<script>alert(1)</script>", status=Status.FAILED, error="<img src=x>")
    html = render(state_with(SenderStatus(state="disconnected", detail="<b>x</b>"), evil))
    assert "<script>" not in html and "<img" not in html and "<b>x" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("447957189696 is not on WhatsApp", "…9696 is not on WhatsApp"),
        ("jid +44 7957 189696@s.whatsapp.net", "jid …9696@s.whatsapp.net"),
        ("timeout after 30s (attempt 2)", "timeout after 30s (attempt 2)"),
        ("at 2025-12-24 10:00", "at 2025-12-24 10:00"),
    ],
)
def test_scrub_masks_phone_numbers_in_free_text(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_messages_the_poller_ignores_are_shown_by_reason() -> None:
    state = state_with(SenderStatus(state="connected"))
    state.on_heartbeat(
        Heartbeat(
            service="poller",
            details={
                "pending": 7,
                "overdue": 0,
                "storeReachable": True,
                "ignored": {"unknown_status": 2},
            },
        ),
        NOW - timedelta(seconds=1),
    )
    html = render(state)
    assert "ignored" in html and "2 (unknown status: 2)" in html


def test_the_next_occurrence_of_each_series_is_shown_in_the_display_zone() -> None:
    state = state_with(SenderStatus(state="connected"))
    series = [
        {"id": "bins", "nextAt": "2026-07-06T18:00:00.000Z"},
        {"id": "<b>bday</b>", "nextAt": "2026-12-24T09:00:00.000Z"},
        {"id": "broken", "nextAt": "soon"},
    ]
    state.on_heartbeat(
        Heartbeat(service="poller", details={"pending": 2, "series": series}),
        NOW - timedelta(seconds=1),
    )
    html = render(state)
    section = re.search(r'<section id="series">.*?</section>', html, re.S)
    assert section, "no next-occurrence section"
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td></tr>", section[0])
    assert rows == [
        ("06/07/2026, 19:00:00", "bins"),  # BST
        ("24/12/2026, 09:00:00", "&lt;b&gt;bday&lt;/b&gt;"),
    ]


def test_without_series_the_page_has_no_next_occurrence_section() -> None:
    assert 'id="series"' not in render(state_with(SenderStatus(state="connected")))
