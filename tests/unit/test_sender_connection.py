"""The WhatsApp connection state machine, as tables: event → state, detail, actions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from wasched.sender.connection import (
    EXIT_CONNECT_FAILED,
    EXIT_PAIRING_TIMEOUT,
    EXIT_REPLACED,
    ClientOutdated,
    ClientStarted,
    Connected,
    ConnectFailed,
    Connection,
    ConnEvent,
    Disconnected,
    Exit,
    KeepAliveRestored,
    Limits,
    LoggedOut,
    PairCodeShown,
    Paired,
    QrShown,
    Ready,
    Restart,
    StopClient,
    Stopping,
    StreamReplaced,
    TemporaryBan,
    Tick,
    backoff,
    step,
)

NOW = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)
LIMITS = Limits(connect_attempts=3, connect_backoff=2, replaced_backoff=60, pairing_window=180)
CONNECTED = Connection(state="connected")


def run(conn: Connection, *events: ConnEvent, now: datetime = NOW) -> tuple[Connection, list]:
    actions: list = []
    for event in events:
        conn, acts = step(conn, event, now, LIMITS)
        actions.extend(acts)
    return conn, actions


@pytest.mark.parametrize(
    ("start", "event", "state", "actions"),
    [
        pytest.param(Connection(), Ready(), "connected", [], id="dryrun connects at once"),
        pytest.param(Connection(), ClientStarted(), "connecting", [], id="client starting"),
        pytest.param(Connection("connecting"), Connected(), "connected", [], id="connected"),
        pytest.param(CONNECTED, Disconnected(), "disconnected", [], id="drop: no action"),
        pytest.param(
            Connection("disconnected"), Connected(), "connected", [], id="whatsmeow reconnected"
        ),
        pytest.param(
            CONNECTED, Disconnected("keep-alive timeout"), "disconnected", [], id="keep-alive"
        ),
        pytest.param(
            Connection("disconnected"), KeepAliveRestored(), "connected", [], id="keep-alive back"
        ),
        pytest.param(
            CONNECTED, ClientOutdated(), "outdated", [StopClient()], id="outdated stops, no loop"
        ),
        pytest.param(
            Connection("outdated"), Connected(), "outdated", [], id="outdated stays outdated"
        ),
        pytest.param(
            Connection("pairing"), Disconnected(), "pairing", [], id="drop while pairing: waits"
        ),
        pytest.param(Connection("stopped"), Connected(), "stopped", [], id="stopped is final"),
        pytest.param(CONNECTED, Stopping(), "stopped", [], id="shutdown"),
    ],
)
def test_simple_transitions(start: Connection, event: ConnEvent, state: str, actions: list) -> None:
    conn, got = run(start, event)
    assert conn.state == state
    assert got == actions
    assert conn.can_send is (state == "connected")


def test_logged_out_relinks_once_then_stays_logged_out() -> None:
    conn, actions = run(CONNECTED, LoggedOut("logged out"))
    assert (conn.state, actions) == ("logged_out", [Restart()])
    assert "link the device again" in (conn.detail or "")
    conn, actions = run(conn, ClientStarted(), QrShown("2@qr"))
    assert conn.state == "pairing" and conn.qr == "2@qr"
    conn, actions = run(conn, LoggedOut("main device gone"))
    assert (conn.state, actions) == ("logged_out", [StopClient()])
    assert "restart the sender" in (conn.detail or "")
    conn, actions = run(conn, ConnectFailed("session ended"))
    assert (conn.state, actions) == ("logged_out", []), "no reconnect loop after a logout"


def test_temporary_ban_holds_until_expiry_then_reconnects() -> None:
    conn, actions = run(CONNECTED, TemporaryBan("sent too many same message", 600))
    assert (conn.state, actions) == ("banned", [StopClient()])
    assert conn.until == NOW + timedelta(seconds=600)
    assert not conn.can_send
    conn, actions = run(conn, Tick(), now=NOW + timedelta(seconds=599))
    assert (conn.state, actions) == ("banned", [])
    conn, actions = run(conn, ConnectFailed("stopped"), now=NOW + timedelta(seconds=599))
    assert conn.state == "banned", "the stopped client's end is not a failure"
    conn, actions = run(conn, Tick(), now=NOW + timedelta(seconds=600))
    assert (conn.state, actions) == ("connecting", [Restart()])


def test_stream_replaced_stops_then_exits_after_backoff() -> None:
    conn, actions = run(CONNECTED, StreamReplaced())
    assert (conn.state, actions) == ("replaced", [StopClient()])
    assert not conn.can_send
    conn, actions = run(conn, Connected(), Tick(), now=NOW + timedelta(seconds=59))
    assert (conn.state, actions) == ("replaced", [])
    conn, actions = run(conn, Tick(), now=NOW + timedelta(seconds=60))
    assert [type(a) for a in actions] == [Exit]
    assert actions[0].code == EXIT_REPLACED


def test_stream_replaced_without_backoff_exits_at_once() -> None:
    _conn, actions = step(CONNECTED, StreamReplaced(), NOW, replace(LIMITS, replaced_backoff=0))
    assert actions[0] == StopClient()
    assert isinstance(actions[1], Exit) and actions[1].code == EXIT_REPLACED


def test_first_connect_failures_back_off_then_exit() -> None:
    conn = Connection("connecting")
    conn, actions = run(conn, ConnectFailed("no such host"))
    assert (conn.state, conn.failures, actions) == ("disconnected", 1, [Restart(after=2)])
    assert "no such host" in (conn.detail or "") and "1/3" in (conn.detail or "")
    conn, actions = run(conn, ClientStarted(), ConnectFailed("no such host"))
    assert actions == [Restart(after=4)]
    conn, actions = run(conn, ClientStarted(), ConnectFailed("no such host"))
    assert [type(a) for a in actions] == [Exit]
    assert actions[0].code == EXIT_CONNECT_FAILED


def test_a_connect_resets_the_failure_count() -> None:
    conn, _ = run(Connection("connecting"), ConnectFailed("x"), ClientStarted(), Connected())
    assert (conn.state, conn.failures) == ("connected", 0)


def test_pairing_window_exits_when_nobody_links() -> None:
    conn, _ = run(Connection("connecting"), QrShown("2@a"))
    assert conn.pairing_since == NOW
    later = NOW + timedelta(seconds=100)
    conn, _ = run(conn, QrShown("2@b"), now=later)
    assert conn.qr == "2@b" and conn.pairing_since == NOW, "a new code does not extend it"
    conn, actions = run(conn, Tick(), now=NOW + timedelta(seconds=179))
    assert actions == []
    conn, actions = run(conn, Tick(), now=NOW + timedelta(seconds=180))
    assert isinstance(actions[0], Exit) and actions[0].code == EXIT_PAIRING_TIMEOUT


def test_pair_code_and_success_clear_the_linking_data() -> None:
    conn, _ = run(Connection("connecting"), QrShown("2@a"), PairCodeShown("ABCD1234"))
    assert (conn.state, conn.qr, conn.pair_code) == ("pairing", "2@a", "ABCD1234")
    failed, _ = run(conn, Paired(ok=False, error="bad code"))
    assert failed.state == "pairing" and "bad code" in (failed.detail or "")
    conn, _ = run(conn, Paired(ok=True), Connected())
    assert (conn.state, conn.qr, conn.pair_code, conn.pairing_since) == (
        "connected",
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("failures", "expected"), [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (30, 60)]
)
def test_backoff_doubles_up_to_a_minute(failures: int, expected: float) -> None:
    assert backoff(failures, 2) == expected
