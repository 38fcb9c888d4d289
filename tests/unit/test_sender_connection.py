"""The WhatsApp connection state machine, as tables: event → state, detail, actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wasched.sender.connection import (
    EXIT_CONNECT_FAILED,
    EXIT_PAIRING_TIMEOUT,
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
    SocketAlive,
    SocketDead,
    StopClient,
    Stopping,
    StreamReplaced,
    TakeOver,
    TemporaryBan,
    Tick,
    backoff,
    step,
)

NOW = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)
LIMITS = Limits(connect_attempts=3, connect_backoff=2, pairing_window=180, dead_restart=60)
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


def test_every_logout_goes_back_to_linking_and_repeats_back_off() -> None:
    conn, actions = run(CONNECTED, LoggedOut("logged out"))
    assert (conn.state, actions) == ("logged_out", [Restart()])
    assert "link the device again" in (conn.detail or "")
    conn, actions = run(conn, ClientStarted(), QrShown("2@qr"))
    assert conn.state == "pairing" and conn.qr == "2@qr"
    conn, actions = run(conn, LoggedOut("main device gone"))
    assert (conn.state, actions) == ("logged_out", [Restart(after=2)]), "no manual restart"
    conn, actions = run(conn, ConnectFailed("session ended"))
    assert (conn.state, actions) == ("logged_out", []), "the stopped client's end is no failure"
    conn, _ = run(conn, ClientStarted(), Connected())
    assert conn.logouts == 0, "a session that works resets the back-off"


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


def test_stream_replaced_stops_and_stays_until_taken_over() -> None:
    conn, actions = run(CONNECTED, StreamReplaced())
    assert (conn.state, actions) == ("replaced", [StopClient()])
    assert not conn.can_send and "wasched pair --take-over" in (conn.detail or "")
    conn, actions = run(conn, Connected(), Tick(), now=NOW + timedelta(days=3))
    assert (conn.state, actions) == ("replaced", []), "no exit, no reconnect, ever"
    conn, actions = run(conn, TakeOver())
    assert (conn.state, actions) == ("connecting", [Restart()])
    conn, _ = run(conn, Connected())
    assert conn.state == "connected"


def test_a_replaced_mark_from_an_earlier_run_says_since_when() -> None:
    conn, _ = run(Connection(), StreamReplaced(since="2025-12-24T09:00:00Z"))
    assert conn.state == "replaced" and "at 2025-12-24T09:00:00Z" in (conn.detail or "")


def test_take_over_means_nothing_unless_replaced() -> None:
    assert run(CONNECTED, TakeOver()) == (CONNECTED, [])


def test_a_dead_socket_disconnects_then_gets_a_fresh_client() -> None:
    conn, actions = run(CONNECTED, SocketDead())
    assert (conn.state, actions, conn.dead_since) == ("disconnected", [], NOW)
    assert not conn.can_send
    conn, actions = run(conn, SocketDead(), Tick(), now=NOW + timedelta(seconds=59))
    assert (conn.state, actions) == ("disconnected", [])
    revived, _ = run(conn, SocketAlive(), now=NOW + timedelta(seconds=30))
    assert revived.state == "connected" and revived.dead_since is None
    conn, actions = run(conn, Tick(), now=NOW + timedelta(seconds=60))
    assert (conn.state, actions) == ("connecting", [Restart()])


def test_socket_polls_do_not_disturb_other_states() -> None:
    for state in ("pairing", "banned", "replaced", "connecting", "logged_out"):
        start = Connection(state)  # type: ignore[arg-type]
        assert run(start, SocketDead()) == (start, [])
        assert run(start, SocketAlive()) == (start, [])


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
    expires = NOW + timedelta(seconds=160)
    conn, _ = run(Connection("connecting"), QrShown("2@a"), PairCodeShown("ABCD1234", expires))
    assert (conn.state, conn.qr, conn.pair_code) == ("pairing", "2@a", "ABCD1234")
    assert conn.until == expires and "before 2025-12-24T10:02:40" in (conn.detail or "")
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
