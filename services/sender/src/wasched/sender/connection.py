"""The WhatsApp connection state machine: (state, event, now) → (new state, actions).

Pure, so every path (logout, ban, stream replaced, failed first connects, an
unfinished pairing, a socket found dead) is a table test. `Lifecycle` feeds it events
from the transport and a 1 s tick, and carries out the actions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from wasched.common.clock import format_utc
from wasched.common.events import SenderState

EXIT_CONNECT_FAILED = 3
EXIT_PAIRING_TIMEOUT = 5
MAX_BACKOFF_SECONDS = 60.0
TAKE_OVER_HINT = "run `wasched pair --take-over` or set WHATSAPP_TAKE_OVER=1 to take it back"
_HALTED: frozenset[SenderState] = frozenset({"replaced", "outdated", "stopped"})


@dataclass(frozen=True, slots=True)
class Limits:
    connect_attempts: int = 5
    connect_backoff: float = 2.0
    pairing_window: float = 180.0
    dead_restart: float = 60.0
    """A socket found dead this long (whatsmeow did not reconnect) gets a fresh client."""


@dataclass(frozen=True, slots=True)
class Connection:
    state: SenderState = "starting"
    detail: str | None = None
    qr: str | None = None
    pair_code: str | None = None
    until: datetime | None = None
    pairing_since: datetime | None = None
    failures: int = 0
    logouts: int = 0
    dead_since: datetime | None = None
    """When polling found the socket dead (no event said so)."""

    @property
    def can_send(self) -> bool:
        return self.state == "connected"


# Events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The dryrun transport: connected at once."""


@dataclass(frozen=True, slots=True)
class ClientStarted:
    pass


@dataclass(frozen=True, slots=True)
class QrShown:
    code: str


@dataclass(frozen=True, slots=True)
class PairCodeShown:
    code: str
    expires: datetime | None = None
    """When whatsmeow closes the login window the code belongs to."""


@dataclass(frozen=True, slots=True)
class Paired:
    ok: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Connected:
    pass


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str = "connection lost"


@dataclass(frozen=True, slots=True)
class KeepAliveRestored:
    pass


@dataclass(frozen=True, slots=True)
class LoggedOut:
    reason: str


@dataclass(frozen=True, slots=True)
class TemporaryBan:
    reason: str
    seconds: float


@dataclass(frozen=True, slots=True)
class StreamReplaced:
    since: str | None = None
    """Set when the mark comes from an earlier run (kept in NATS), not from this client."""


@dataclass(frozen=True, slots=True)
class TakeOver:
    """The operator takes the session back after `replaced`."""


@dataclass(frozen=True, slots=True)
class SocketDead:
    """Polling found the client's socket not connected (whatsmeow sent no event)."""


@dataclass(frozen=True, slots=True)
class SocketAlive:
    pass


@dataclass(frozen=True, slots=True)
class ClientOutdated:
    pass


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    error: str


@dataclass(frozen=True, slots=True)
class Tick:
    pass


@dataclass(frozen=True, slots=True)
class Stopping:
    pass


ConnEvent = (
    Ready
    | ClientStarted
    | QrShown
    | PairCodeShown
    | Paired
    | Connected
    | Disconnected
    | KeepAliveRestored
    | LoggedOut
    | TemporaryBan
    | StreamReplaced
    | TakeOver
    | SocketDead
    | SocketAlive
    | ClientOutdated
    | ConnectFailed
    | Tick
    | Stopping
)

# Actions ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StopClient:
    pass


@dataclass(frozen=True, slots=True)
class Restart:
    """Stop the client and start a fresh one after `after` seconds."""

    after: float = 0.0


@dataclass(frozen=True, slots=True)
class Exit:
    code: int
    reason: str


Action = StopClient | Restart | Exit
Step = tuple[Connection, tuple[Action, ...]]


def backoff(failures: int, base: float) -> float:
    return min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, failures - 1))


def step(conn: Connection, event: ConnEvent, now: datetime, limits: Limits) -> Step:
    if conn.state == "stopped":
        return conn, ()
    match event:
        case Ready():
            return _to(conn, "connected", "dryrun transport: nothing is sent to WhatsApp"), ()
        case ClientStarted():
            return _to(conn, "connecting", conn.detail if conn.state == "banned" else None), ()
        case QrShown(code):
            return _pairing(conn, now, qr=code, detail="scan the QR code with WhatsApp"), ()
        case PairCodeShown(code, expires):
            detail = "enter the pair code in WhatsApp" + (
                f" before {format_utc(expires)}" if expires else ""
            )
            paired = _pairing(conn, now, qr=conn.qr, pair_code=code, detail=detail)
            return replace(paired, until=expires) if paired.state == "pairing" else paired, ()
        case Paired(ok=True):
            return _to(conn, "connecting", "device linked; connecting"), ()
        case Paired(ok=False, error=error):
            return replace(conn, detail=f"linking failed: {error or 'unknown error'}"), ()
        case Connected():
            if conn.state in _HALTED:
                return conn, ()
            return replace(_to(conn, "connected", None), failures=0, logouts=0), ()
        case Disconnected(reason) if conn.state in {"connected", "connecting"}:
            return _to(conn, "disconnected", f"{reason}; the client reconnects by itself"), ()
        case KeepAliveRestored() | SocketAlive() if conn.state == "disconnected":
            return _to(conn, "connected", None), ()
        case SocketDead() if conn.state == "connected":
            detail = "the WhatsApp socket is not connected, though no event said so; reconnecting"
            return replace(_to(conn, "disconnected", detail), dead_since=now), ()
        case TakeOver() if conn.state == "replaced":
            return _to(conn, "connecting", "taking the WhatsApp session back"), (Restart(),)
        case LoggedOut(reason):
            return _logged_out(conn, reason, limits)
        case TemporaryBan(reason, seconds):
            until = now + timedelta(seconds=seconds)
            detail = f"temporarily banned by WhatsApp ({reason}) until {format_utc(until)}"
            return replace(_to(conn, "banned", detail), until=until), (StopClient(),)
        case StreamReplaced(since):
            return _replaced(conn, since)
        case ClientOutdated():
            detail = "WhatsApp rejected this client version; upgrade neonize"
            return _to(conn, "outdated", detail), (StopClient(),)
        case ConnectFailed(error) if conn.state not in _HALTED | {"banned", "logged_out"}:
            return _connect_failed(conn, error, limits)
        case Tick():
            return _tick(conn, now, limits)
        case Stopping():
            return _to(conn, "stopped", "shutting down"), ()
    return conn, ()


def _to(conn: Connection, state: SenderState, detail: str | None) -> Connection:
    return replace(
        conn,
        state=state,
        detail=detail,
        qr=None,
        pair_code=None,
        until=None,
        pairing_since=None,
        dead_since=None,
    )


def _pairing(
    conn: Connection,
    now: datetime,
    *,
    qr: str | None,
    detail: str,
    pair_code: str | None = None,
) -> Connection:
    if conn.state in _HALTED:
        return conn
    since = conn.pairing_since if conn.state == "pairing" and conn.pairing_since else now
    return replace(
        conn,
        state="pairing",
        detail=detail,
        qr=qr,
        pair_code=pair_code or conn.pair_code,
        until=None,
        pairing_since=since,
    )


def _logged_out(conn: Connection, reason: str, limits: Limits) -> Step:
    """The session is deleted: link again, every time (the pairing window bounds each try);
    logouts in a row wait longer, so a client that is logged out at once cannot spin."""
    logouts = conn.logouts + 1
    detail = f"logged out by WhatsApp ({reason}); starting over to link the device again"
    after = 0.0 if logouts == 1 else backoff(logouts - 1, limits.connect_backoff)
    return replace(_to(conn, "logged_out", detail), logouts=logouts), (Restart(after=after),)


def _replaced(conn: Connection, since: str | None) -> Step:
    """Another client took the session: stop, stay up and say so, and never take it back by
    ourselves (two clients doing that would fight over the session forever)."""
    when = f" at {since}" if since else ""
    detail = (
        f"another client took over this WhatsApp session{when}; nothing is sent; {TAKE_OVER_HINT}"
    )
    return _to(conn, "replaced", detail), (StopClient(),)


def _connect_failed(conn: Connection, error: str, limits: Limits) -> Step:
    failures = conn.failures + 1
    detail = f"cannot connect to WhatsApp (attempt {failures}/{limits.connect_attempts}): {error}"
    conn = replace(_to(conn, "disconnected", detail), failures=failures)
    if failures >= limits.connect_attempts:
        reason = f"gave up after {failures} failed connects: {error}"
        return conn, (Exit(EXIT_CONNECT_FAILED, reason),)
    return conn, (Restart(after=backoff(failures, limits.connect_backoff)),)


def _tick(conn: Connection, now: datetime, limits: Limits) -> Step:
    if conn.state == "banned" and conn.until and now >= conn.until:
        return _to(conn, "connecting", "temporary ban over; reconnecting"), (Restart(),)
    dead = (now - conn.dead_since).total_seconds() if conn.dead_since else None
    if conn.state == "disconnected" and dead is not None and dead >= limits.dead_restart:
        detail = "the WhatsApp socket stayed dead; starting a fresh client"
        return _to(conn, "connecting", detail), (Restart(),)
    if conn.state == "pairing" and conn.pairing_since:
        waited = (now - conn.pairing_since).total_seconds()
        if waited >= limits.pairing_window:
            reason = f"no device linked within {limits.pairing_window:g}s"
            return conn, (Exit(EXIT_PAIRING_TIMEOUT, reason),)
    return conn, ()
