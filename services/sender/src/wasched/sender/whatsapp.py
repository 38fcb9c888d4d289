"""The real WhatsApp transport: neonize 0.5.2 (whatsmeow in Go) behind the `Transport` Protocol.

neonize is imported lazily (~65 MB, ~0.5 s), so the dryrun path never pays for
it. Traps handled here (see ../shared/notes/neonize.md): handlers are
registered before `connect()` and wrapped, because neonize swallows their
exceptions; `connect()` returns a task that is never cancelled; `stop()` is
bounded by our own timeout; a restarted client keeps the old one referenced,
since its finalizer would otherwise stop the new client of the same session;
no client call is made before `connect()` (the Go core aborts the process).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wasched.common.clock import utcnow
from wasched.common.recipients import Recipient, mask
from wasched.sender.connection import (
    ClientOutdated,
    ClientStarted,
    Connected,
    ConnectFailed,
    ConnEvent,
    Disconnected,
    KeepAliveRestored,
    LoggedOut,
    PairCodeShown,
    Paired,
    QrShown,
    StreamReplaced,
    TemporaryBan,
)
from wasched.sender.transport import (
    PairingError,
    ReceiptKind,
    ReceiptSeen,
    Sent,
    TransportError,
    TransportListener,
)

log = logging.getLogger("wasched.sender.whatsapp")

HANDLED_EVENTS = (
    "ConnectedEv",
    "DisconnectedEv",
    "KeepAliveTimeoutEv",
    "KeepAliveRestoredEv",
    "LoggedOutEv",
    "TemporaryBanEv",
    "StreamReplacedEv",
    "ClientOutdatedEv",
    "ConnectFailureEv",
    "StreamErrorEv",
    "PairStatusEv",
    "ReceiptEv",
)
_LOGOUT_REASONS = {"LOGGED_OUT", "MAIN_DEVICE_GONE", "UNKNOWN_LOGOUT"}
_RECEIPT_KINDS: dict[str, ReceiptKind] = {
    "DELIVERED": "delivered",
    "READ": "read",
    "PLAYED": "played",
}
DEFAULT_BAN_SECONDS = 3600


def load_neonize(bot_tag: str = "off") -> None:
    """Import neonize once, with `NEONIZE_BOT_TAG` set first (the Go core reads it when loaded).

    Its import runs `os.popen("uname -a")` and never closes the pipe: a
    ResourceWarning, and a `uname` zombie until the next subprocess starts. The
    import gets an `os.popen` that returns the same text with the pipe closed.
    """
    if "neonize.aioze.client" in sys.modules:
        return
    os.environ.setdefault("NEONIZE_BOT_TAG", bot_tag)
    original = os.popen

    def closing_popen(cmd: str, mode: str = "r", buffering: int = -1) -> io.StringIO:
        with original(cmd, mode, buffering) as stream:
            return io.StringIO(stream.read())

    os.popen = closing_popen  # type: ignore[assignment]
    try:
        import neonize.aioze.client  # noqa: F401
    finally:
        os.popen = original


def enum_name(event: Any, field: str) -> str | None:
    """The name of a proto2 enum field, or None when unset (unset reads as 1, not as absent)."""
    if not event.HasField(field):
        return None
    enum = event.DESCRIPTOR.fields_by_name[field].enum_type
    value = enum.values_by_number.get(getattr(event, field))
    return value.name if value else None


def connection_event(event: Any) -> ConnEvent | None:
    """Translate a neonize event (a protobuf message) into our connection events."""
    match event.DESCRIPTOR.name:
        case "Connected":
            return Connected()
        case "Disconnected":
            return Disconnected()
        case "KeepAliveTimeout":
            return Disconnected("keep-alive timeout")
        case "StreamError":
            return Disconnected(f"stream error {event.Code or ''}".strip())
        case "KeepAliveRestored":
            return KeepAliveRestored()
        case "LoggedOut":
            return LoggedOut(_reason(enum_name(event, "Reason")))
        case "TemporaryBan":
            seconds = event.Expire if event.HasField("Expire") and event.Expire > 0 else None
            return TemporaryBan(_reason(enum_name(event, "Code")), seconds or DEFAULT_BAN_SECONDS)
        case "StreamReplaced":
            return StreamReplaced()
        case "ClientOutdated":
            return ClientOutdated()
        case "ConnectFailure":
            return _connect_failure(event)
        case "PairStatus":
            ok = enum_name(event, "Status") == "SUCCESS"
            return Paired(ok=ok, error=None if ok else (event.Error or "pairing failed"))
    return None


def receipt_seen(event: Any, now: datetime) -> ReceiptSeen | None:
    """A delivered/read/played receipt, or None for kinds we do not report."""
    kind = _RECEIPT_KINDS.get(enum_name(event, "Type") or "")
    if kind is None or not event.MessageIDs:
        return None
    at = datetime.fromtimestamp(event.Timestamp, UTC) if event.Timestamp > 0 else now
    return ReceiptSeen(wa_message_ids=tuple(event.MessageIDs), kind=kind, at=at)


def _reason(name: str | None) -> str:
    return (name or "unknown").lower().replace("_", " ")


def _connect_failure(event: Any) -> ConnEvent:
    reason = enum_name(event, "Reason")
    if reason in _LOGOUT_REASONS:
        return LoggedOut(_reason(reason))
    text = f"{_reason(reason)}: {event.Message}" if event.Message else _reason(reason)
    return ConnectFailed(f"WhatsApp refused the connection ({text})")


class NeonizeTransport:
    name = "neonize"

    def __init__(
        self,
        session: str,
        *,
        proxy: str | None = None,
        bot_tag: str = "off",
        stop_timeout: float = 10.0,
        show_qr: bool = True,
        log_qr: bool = False,
        go_log_level: int = logging.WARNING,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session = session
        self.proxy = proxy
        self.bot_tag = bot_tag
        self.stop_timeout = stop_timeout
        self.show_qr = show_qr
        self.log_qr = log_qr
        self.go_log_level = go_log_level
        self._clock = clock
        self._listener: TransportListener | None = None
        self.client: Any = None
        self._live = False
        self._retired: list[Any] = []

    # life cycle ------------------------------------------------------------

    async def start(self, listener: TransportListener) -> None:
        self.prepare(listener)
        await self._connect()

    def prepare(self, listener: TransportListener) -> None:
        """Build a client and register every handler (neonize fixes them at `connect()`)."""
        self._listener = listener
        load_neonize(self.bot_tag)
        from neonize.aioze import events as neonize_events
        from neonize.aioze.client import NewAClient
        from neonize.utils.log import log as go_log

        go_log.setLevel(self.go_log_level)
        if "://" not in self.session:
            Path(self.session).expanduser().parent.mkdir(parents=True, exist_ok=True)
            client = NewAClient(self.session)
        else:  # postgres://: the Go client is keyed by uuid, not by the URL
            client = NewAClient(self.session, uuid="wasched-sender")
        for name in HANDLED_EVENTS:
            client.event(getattr(neonize_events, name))(self._on_event)
        client.qr(self._on_qr)
        self.client = client
        self._live = False

    async def _connect(self) -> None:
        from neonize._binder import ProxySettings

        client = self.client
        self._emit(ClientStarted())
        proxy = ProxySettings(proxy_address=self.proxy) if self.proxy else None
        task = await client.connect(proxy)
        self._live = True
        task.add_done_callback(lambda done: self._connect_ended(done, client))

    async def restart(self) -> None:
        await self.stop_client()
        assert self._listener is not None
        self.prepare(self._listener)
        await self._connect()

    async def stop_client(self) -> bool:
        """Stop the Go session within `stop_timeout`; never cancels neonize's connect task."""
        client, self.client, self._live = self.client, None, False
        if client is None:
            return True
        self._retired.append(client)
        try:
            await asyncio.wait_for(client.stop(), self.stop_timeout)
        except TimeoutError:
            log.warning("the WhatsApp client did not stop within %gs", self.stop_timeout)
            return False
        except Exception as exc:
            log.warning("stopping the WhatsApp client failed: %s", exc)
            return False
        return True

    async def stop(self, timeout: float) -> bool:
        self.stop_timeout = min(self.stop_timeout, timeout)
        return await self.stop_client()

    # sending ---------------------------------------------------------------

    async def is_on_whatsapp(self, recipient: Recipient) -> bool:
        if recipient.e164 is None:
            return True  # groups and other JIDs cannot be looked up
        client = self._require_live()
        from neonize.exc import NeonizeError

        try:
            answers = await client.is_on_whatsapp(recipient.e164)
        except NeonizeError as exc:
            raise TransportError(str(exc)) from None
        return bool(answers) and bool(answers[0].IsIn)

    async def typing(self, recipient: Recipient, seconds: float) -> None:
        client = self._require_live()
        from neonize.utils.enum import ChatPresence, ChatPresenceMedia

        jid = _jid(recipient)
        media = ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
        try:
            await client.send_chat_presence(jid, ChatPresence.CHAT_PRESENCE_COMPOSING, media)
            await asyncio.sleep(seconds)
            await client.send_chat_presence(jid, ChatPresence.CHAT_PRESENCE_PAUSED, media)
        except Exception as exc:  # cosmetic: never let it block a send
            log.debug("typing indicator for %s failed: %s", mask(recipient.user), exc)

    async def send(self, message_id: str, recipient: Recipient, text: str) -> Sent:
        client = self._require_live()
        from neonize.exc import NeonizeError

        try:
            response = await client.send_message(_jid(recipient), text)
        except NeonizeError as exc:
            raise TransportError(str(exc)) from None
        at = datetime.fromtimestamp(response.Timestamp, UTC) if response.Timestamp else None
        return Sent(wa_message_id=response.ID, at=at or self._clock())

    async def pair_code(self, phone: str) -> str:
        if not self._live or self.client is None:
            raise PairingError("the WhatsApp client is not running yet; try again in a moment")
        from neonize.exc import NeonizeError
        from neonize.utils.enum import ClientName

        try:
            code = await self.client.PairPhone(phone, True, ClientName.LINUX)
        except NeonizeError as exc:
            raise PairingError(f"WhatsApp refused a pair code: {exc}") from None
        self._emit(PairCodeShown(code))
        return str(code)

    # events ----------------------------------------------------------------

    async def _on_event(self, client: Any, event: Any) -> None:
        try:
            if client is not self.client:
                return  # a stopped client's late event
            if event.DESCRIPTOR.name == "Receipt":
                seen = receipt_seen(event, self._clock())
                if seen is not None and self._listener is not None:
                    self._listener.receipt(seen)
                return
            translated = connection_event(event)
            if translated is not None:
                self._emit(translated)
        except Exception:
            log.exception("handling WhatsApp event %s failed", type(event).__name__)

    async def _on_qr(self, client: Any, data: bytes) -> None:
        try:
            if client is not self.client:
                return
            code = data.decode() if isinstance(data, bytes) else str(data)
            if self.show_qr:
                import segno

                segno.make_qr(code).terminal(out=sys.stdout, compact=True)
                sys.stdout.flush()
            if self.log_qr:
                log.debug("WhatsApp linking QR code (LOG_PAIRING=true): %s", code)
            self._emit(QrShown(code))
        except Exception:
            log.exception("handling the WhatsApp QR code failed")

    def _connect_ended(self, task: asyncio.Task[None], client: Any) -> None:
        if client is not self.client or task.cancelled():
            return
        error = task.exception()
        text = str(error) if error else "the WhatsApp client session ended unexpectedly"
        self._live = False
        self._emit(ConnectFailed(text))

    def _emit(self, event: ConnEvent) -> None:
        if self._listener is not None:
            self._listener.connection_event(event)

    def _require_live(self) -> Any:
        if not self._live or self.client is None:
            raise TransportError("WhatsApp client not connected")
        return self.client


def _jid(recipient: Recipient) -> Any:
    from neonize.utils import build_jid

    return build_jid(recipient.user, recipient.server)
