"""The real WhatsApp transport: neonize 0.5.2 (whatsmeow in Go) behind the `Transport` Protocol.

neonize is imported lazily (~65 MB, ~0.5 s), so the dryrun path never pays for
it. Traps handled here (see ../shared/notes/neonize.md): handlers are
registered before `connect()` and wrapped, because neonize swallows their
exceptions; `connect()` returns a task that is never cancelled; `stop()` is
bounded by our own timeout; a restarted client keeps the old one referenced,
since its finalizer would otherwise stop the new client of the same session;
no client call is made before `connect()` (the Go core aborts the process).

Three things whatsmeow leaves to us: a lookup answers the JID to send to (not just
"is on WhatsApp"); some disconnects come without any event, so the socket is polled
(`await client.is_connected`: an awaitable property); and a pair code only works while
the login window that showed the first QR is open (160 s), so a code is asked from a
fresh window and says when it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wasched.common.clock import utcnow
from wasched.common.recipients import Recipient, mask
from wasched.sender.connection import (
    ClientStarted,
    ConnectFailed,
    ConnEvent,
    PairCodeShown,
    QrShown,
    SocketAlive,
    SocketDead,
)
from wasched.sender.neonize_events import (
    HANDLED_EVENTS,
    connection_event,
    load_neonize,
    receipt_seen,
)
from wasched.sender.neonize_media import build_message
from wasched.sender.transport import (
    Built,
    Content,
    PairingError,
    Sent,
    TextContent,
    TransportError,
    TransportListener,
)

log = logging.getLogger("wasched.sender.whatsapp")
LOGIN_WINDOW_SECONDS = 160.0
"""whatsmeow shows QR codes for 60 s, then 5 × 20 s, then closes the login socket."""
FRESH_WINDOW_SECONDS = 10.0
FIRST_QR_SECONDS = 30.0


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
        probe_seconds: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session = session if "://" in session else str(Path(session).expanduser())
        self.proxy = proxy
        self.bot_tag = bot_tag
        self.stop_timeout = stop_timeout
        self.show_qr = show_qr
        self.log_qr = log_qr
        self.go_log_level = go_log_level
        self.probe_seconds = probe_seconds
        self.fresh_window_seconds = FRESH_WINDOW_SECONDS
        self._clock = clock
        self._listener: TransportListener | None = None
        self.client: Any = None
        self._live = False
        self._retired: list[Any] = []
        self._probe: asyncio.Task[None] | None = None
        self._window_opened: float | None = None
        self._window_wall: datetime | None = None
        self._window = asyncio.Event()

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
            Path(self.session).parent.mkdir(parents=True, exist_ok=True)
            client = NewAClient(self.session)
        else:  # postgres://: the Go client is keyed by uuid, not by the URL
            client = NewAClient(self.session, uuid="wasched-sender")
        for name in HANDLED_EVENTS:
            client.event(getattr(neonize_events, name))(self._on_event)
        client.qr(self._on_qr)
        self.client = client
        self._live = False
        self._window_opened, self._window_wall = None, None
        self._window = asyncio.Event()

    async def _connect(self) -> None:
        from neonize._binder import ProxySettings

        client = self.client
        self._emit(ClientStarted())
        proxy = ProxySettings(proxy_address=self.proxy) if self.proxy else None
        task = await client.connect(proxy)
        self._live = True
        task.add_done_callback(lambda done: self._connect_ended(done, client))
        self.watch()

    async def restart(self) -> None:
        await self.stop_client()
        assert self._listener is not None
        self.prepare(self._listener)
        await self._connect()

    async def stop_client(self) -> bool:
        """Stop the Go session within `stop_timeout`; never cancels neonize's connect task."""
        client, self.client, self._live = self.client, None, False
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        if client is None:
            return True
        self._retired.append(client)
        try:
            async with asyncio.timeout(self.stop_timeout):
                await client.stop()
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

    def watch(self) -> None:
        """Poll the current client's socket: whatsmeow sends no event for some disconnects."""
        if self._probe is not None:
            self._probe.cancel()
        if self.client is not None:
            self._probe = asyncio.create_task(self._poll(self.client))

    async def _poll(self, client: Any) -> None:
        while client is self.client:
            await asyncio.sleep(self.probe_seconds)
            if client is not self.client:
                return
            try:
                alive = await client.is_connected and await client.is_logged_in
            except Exception as exc:
                log.debug("polling the WhatsApp socket failed: %s", exc)
                continue
            self._emit(SocketAlive() if alive else SocketDead())

    # sending ---------------------------------------------------------------

    async def lookup(self, recipient: Recipient) -> Recipient | None:
        if recipient.e164 is None:
            return recipient  # groups and other JIDs cannot be looked up
        client = self._require_live()
        from neonize.exc import NeonizeError

        try:
            answers = await client.is_on_whatsapp(recipient.e164)
        except NeonizeError as exc:
            raise TransportError(str(exc)) from None
        found = next((a for a in answers if a.IsIn), None)
        if found is None:
            return None
        if not found.HasField("JID") or not found.JID.User:
            return recipient
        return Recipient(found.JID.User, found.JID.Server or recipient.server)

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

    async def build(self, content: Content) -> Built:
        return await build_message(self._require_live, content)

    async def send(self, message_id: str, recipient: Recipient, built: Built) -> Sent:
        client = self._require_live()
        from neonize.exc import NeonizeError

        message = built.message
        if message is None and isinstance(built.content, TextContent):
            message = built.content.text  # a str: neonize adds mentions, as before
        try:
            response = await client.send_message(_jid(recipient), message)
        except NeonizeError as exc:
            raise TransportError(str(exc)) from None
        at = datetime.fromtimestamp(response.Timestamp, UTC) if response.Timestamp else None
        return Sent(wa_message_id=response.ID, at=at or self._clock())

    async def pair_code(self, phone: str) -> str:
        """A code from a login window opened for it: it then works for the window's 160 s."""
        if self._window_opened is None or (
            time.monotonic() - self._window_opened > self.fresh_window_seconds
        ):
            log.info("opening a fresh login window for the pair code")
            await self.restart()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._window.wait(), FIRST_QR_SECONDS)
        client = self.client
        if client is None or self._window_wall is None:
            raise PairingError("WhatsApp opened no login window; try again in a moment")
        from neonize.exc import NeonizeError
        from neonize.utils.enum import ClientName

        try:
            code = await client.PairPhone(phone, True, ClientName.LINUX)
        except NeonizeError as exc:
            raise PairingError(f"WhatsApp refused a pair code: {exc}") from None
        expires = self._window_wall + timedelta(seconds=LOGIN_WINDOW_SECONDS)
        self._emit(PairCodeShown(str(code), expires))
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
            if self._window_opened is None:  # the first QR: the login window opened now
                self._window_opened, self._window_wall = time.monotonic(), self._clock()
                self._window.set()
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
