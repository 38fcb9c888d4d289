"""The linking QR code reaches the log only on a terminal or when asked (LOG_PAIRING=true).

Whoever reads the QR can link their phone as the sender, and logs travel: to
`docker compose logs`, to log shippers, to support tickets. JSON logs never
carry it at INFO; asked for, it goes to DEBUG as data.
"""

from __future__ import annotations

import io
import sys

import pytest

from wasched.common.settings import LogFormat
from wasched.sender.app import make_transport
from wasched.sender.config import load_sender_settings
from wasched.sender.whatsapp import NeonizeTransport


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("log_format", "log_pairing", "terminal", "printed", "logged"),
    [
        (LogFormat.TEXT, False, False, False, False),  # docker logs: not a terminal
        (LogFormat.TEXT, False, True, True, False),  # someone watching it start
        (LogFormat.TEXT, True, False, True, False),  # asked for
        (LogFormat.JSON, False, True, False, False),
        (LogFormat.JSON, True, False, False, True),  # as data, at DEBUG only
    ],
)
def test_the_qr_goes_to_the_log_only_on_a_terminal_or_when_asked(
    monkeypatch: pytest.MonkeyPatch,
    log_format: LogFormat,
    log_pairing: bool,
    terminal: bool,
    printed: bool,
    logged: bool,
) -> None:
    monkeypatch.setattr(sys, "stdout", _Terminal() if terminal else io.StringIO())
    settings = load_sender_settings(
        _env_file=None, log_format=log_format, log_pairing=log_pairing, whatsapp_transport="neonize"
    )
    transport = make_transport(settings)
    assert isinstance(transport, NeonizeTransport)
    assert transport.show_qr is printed
    assert getattr(transport, "log_qr", False) is logged
