"""How a WhatsApp client error is classified: by what reached the socket.

The texts are whatsmeow's own, as `err.Error()` renders them at the version neonize 0.5.2
bundles; neonize hands them to Python unchanged (`SendMessageError(model.Error)`). Each row
of `errors.TABLE` is checked twice: its example is classified as the row says, and the
literal it cites is really in the bundled Go library, so a neonize upgrade that changes a
text fails here instead of silently changing what is retried.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

import pytest

from wasched.sender import errors
from wasched.sender.errors import SendErrorKind, classify

NOT_SENT, AMBIGUOUS, REFUSED = (
    SendErrorKind.NOT_SENT,
    SendErrorKind.AMBIGUOUS,
    SendErrorKind.REFUSED,
)


@functools.cache
def bundled_go_library() -> bytes:
    spec = importlib.util.find_spec("neonize")
    assert spec is not None and spec.origin is not None
    (library,) = Path(spec.origin).parent.glob("neonize-*.so")
    return library.read_bytes()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # the node was never written: whatsmeow wraps the socket error of the first write
        ("failed to send message node: websocket not connected", NOT_SENT),
        ("failed to send message node: frame socket is closed", NOT_SENT),
        (
            "failed to send message node: failed to write msg: use of closed network connection",
            NOT_SENT,
        ),
        # before anything is sent: device list, LID and group lookups, local store
        ("failed to get device list: failed to send usync query: info query timed out", NOT_SENT),
        (
            "failed to get device list: failed to send usync query: "
            "websocket disconnected before info query returned response",
            NOT_SENT,
        ),
        (
            "failed to get user info for 447957189696@s.whatsapp.net to fill LID cache: "
            "info query timed out",
            NOT_SENT,
        ),
        ("failed to get group members: info query timed out", NOT_SENT),
        ("the store doesn't contain a device JID", NOT_SENT),
        ("websocket disconnected before info query returned response", NOT_SENT),
        ("WhatsApp client not connected", NOT_SENT),
        # the node was written, whatsmeow's own retry failed: it may have been delivered
        ("websocket not connected", AMBIGUOUS),
        ("frame socket is closed", AMBIGUOUS),
        ("websocket disconnected before message send returned response", AMBIGUOUS),
        ("websocket disconnected before message send (retry) returned response", AMBIGUOUS),
        ("timed out waiting for message send response", AMBIGUOUS),
        ("failed to write msg: failed to write frame: broken pipe", AMBIGUOUS),
        ("context deadline exceeded", AMBIGUOUS),
        ("something whatsmeow never said before", AMBIGUOUS),
        # WhatsApp answered with an error, or the client refused before sending
        ("server returned error 463", REFUSED),
        ("server returned error 479", REFUSED),
        ("can't send message to unknown server example.com", REFUSED),
        ("message recipient must be a user JID with no device part", REFUSED),
    ],
)
def test_whatsmeow_errors_are_classified_by_what_reached_the_socket(
    text: str, kind: SendErrorKind
) -> None:
    assert classify(text) is kind


@pytest.mark.parametrize("row", errors.TABLE, ids=lambda row: row.example[:60])
def test_each_row_classifies_its_example(row: errors.Row) -> None:
    assert classify(row.example) is row.kind


@pytest.mark.parametrize(
    "row", [r for r in errors.TABLE if r.evidence], ids=lambda row: row.evidence[:60]
)
def test_each_row_cites_a_text_of_the_bundled_whatsmeow(row: errors.Row) -> None:
    assert row.evidence.encode() in bundled_go_library(), f"{row.source}: {row.evidence!r}"


def test_the_table_names_the_whatsmeow_version_neonize_bundles() -> None:
    needle = f"go.mau.fi/whatsmeow\t{errors.WHATSMEOW_VERSION}".encode()
    assert needle in bundled_go_library()


def test_server_error_codes_get_a_readable_explanation() -> None:
    assert "reach-out timelock" in errors.explain("server returned error 463")
    assert errors.explain("server returned error 999") == "server returned error 999"


@pytest.mark.parametrize("row", errors.TABLE, ids=lambda row: row.pattern[:40])
def test_docs_sender_md_lists_each_row(row: errors.Row) -> None:
    literal = re.split(r"[\\.*()|$+?\[]", row.pattern, maxsplit=1)[0].strip()
    docs = (Path(__file__).parents[2] / "docs" / "sender.md").read_text()
    assert f"`{literal}" in docs, f"docs/sender.md's error table misses {literal!r}"
