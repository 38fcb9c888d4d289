"""The neonize transport without WhatsApp.

Offline: real neonize clients (a real SQLite session file) receive real event
protobufs through neonize's own dispatcher (`Event.execute`, the entry point
the Go core calls, from a foreign thread), and the life cycle must publish the
right `SenderStatus` on a real nats-server, stop sending, and report receipts.
Reconnects go through a proxy on a closed port, so nothing leaves this machine.

No network: the real sender process with `WHATSAPP_TRANSPORT=neonize` reports
`disconnected`, consumes nothing, gives up after its bounded back-off with exit
code 3, and the waiting message is sent later by a healthy sender.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from tests.support.services import ServiceProcess
from tests.support.waiting import eventually
from wasched.cli.servers import free_port
from wasched.common import ledger, topology
from wasched.common.events import DueMessage, Outcome, Receipt, SenderStatus
from wasched.common.messages import Status
from wasched.sender.connection import EXIT_CONNECT_FAILED, Limits
from wasched.sender.lifecycle import Lifecycle
from wasched.sender.neonize_events import load_neonize
from wasched.sender.receipts import ReceiptIndex, open_index_bucket, publish_receipts
from wasched.sender.status import Stats, StatusReporter
from wasched.sender.whatsapp import NeonizeTransport

load_neonize()  # first: neonize's own import leaks a pipe, this import closes it
neonize_events: Any = importlib.import_module("neonize.aioze.events")
EVENT_TO_INT: dict[type, int] = importlib.import_module("neonize.events").EVENT_TO_INT
pb: Any = importlib.import_module("neonize.proto.Neonize_pb2")

PHONE = "447957189696"


@dataclass
class Rig:
    """One neonize transport with its life cycle, status reporter and receipt index."""

    transport: NeonizeTransport
    lifecycle: Lifecycle
    statuses: list[SenderStatus]
    receipts: list[tuple[Receipt, dict[str, str]]]
    exits: list[int] = field(default_factory=list)

    @property
    def client(self) -> Any:
        return self.transport.client

    def states(self) -> list[str]:
        return [s.state for s in self.statuses]

    async def deliver(self, event: Message, client: Any = None) -> None:
        """What the Go core does: neonize's callback, with the serialized event, on another thread."""
        client = client or self.client
        data = event.SerializeToString()
        buffer = ctypes.create_string_buffer(data, len(data))
        code = EVENT_TO_INT[type(event)]
        args = (0, ctypes.addressof(buffer), len(data), code)
        thread = threading.Thread(target=client.event.execute, args=args)
        thread.start()
        await asyncio.to_thread(thread.join)

    async def show_qr(self, code: str) -> None:
        """The Go core's QR callback (a C string), as neonize receives it."""
        text = ctypes.create_string_buffer(code.encode())
        on_qr = self.client._NewAClient__onQr  # the function neonize hands to Go
        thread = threading.Thread(target=on_qr, args=(0, ctypes.addressof(text)))
        thread.start()
        await asyncio.to_thread(thread.join)

    async def reached(self, state: str, timeout: float = 10.0) -> SenderStatus:
        await eventually(lambda: self.statuses and self.statuses[-1].state == state, timeout)
        return self.statuses[-1]


@pytest.fixture
async def rig(nc: NATS, js: JetStreamContext, tmp_path: Path) -> AsyncIterator[Rig]:
    await topology.declare(js)
    neonize_events.set_event_loop(asyncio.get_running_loop())  # done by connect() in production
    statuses: list[SenderStatus] = []
    receipts: list[tuple[Receipt, dict[str, str]]] = []

    async def on_status(msg: Msg) -> None:
        statuses.append(SenderStatus.model_validate_json(msg.data))

    async def on_receipt(msg: Msg) -> None:
        receipts.append((Receipt.model_validate_json(msg.data), dict(msg.headers or {})))

    await nc.subscribe(topology.SENDER_STATUS, cb=on_status)
    await js.subscribe(topology.RECEIPT, cb=on_receipt, ordered_consumer=True)
    index = ReceiptIndex(await open_index_bucket(js))
    await index.remember("3EB0AAAA", "m-42")
    transport = NeonizeTransport(
        str(tmp_path / "session.sqlite3"),
        proxy=f"http://127.0.0.1:{free_port()}",  # closed: every connect fails at once
        stop_timeout=5,
        show_qr=False,
    )
    tasks: set[asyncio.Task[Any]] = set()
    reporter = StatusReporter(nc, "neonize", Stats(), interval=0.5)
    exits: list[int] = []
    lifecycle = Lifecycle(
        transport,
        Limits(connect_attempts=1, connect_backoff=0.05, pairing_window=60),
        on_change=reporter.changed,
        on_receipt=lambda seen: tasks.add(asyncio.create_task(publish_receipts(js, index, seen))),
        on_exit=lambda code, _reason: exits.append(code),
    )
    tasks.add(asyncio.create_task(reporter.run()))
    tasks.add(asyncio.create_task(lifecycle.run_ticks()))
    transport.prepare(lifecycle)
    assert Path(tmp_path / "session.sqlite3").parent.is_dir()
    yield Rig(transport, lifecycle, statuses, receipts, exits)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await lifecycle.close()
    await transport.stop(timeout=5)


async def test_disconnect_and_reconnect_gate_the_sends(rig: Rig) -> None:
    await rig.deliver(pb.Connected(status=True))
    await rig.reached("connected")
    assert rig.lifecycle.ready.is_set()
    await rig.deliver(pb.Disconnected(status=True))
    status = await rig.reached("disconnected")
    assert "reconnects by itself" in (status.detail or "")
    assert not rig.lifecycle.ready.is_set(), "nothing is fetched while disconnected"
    await rig.deliver(pb.Connected(status=True))
    await rig.reached("connected")
    assert rig.lifecycle.ready.is_set()
    assert rig.exits == []


async def test_temporary_ban_stops_sending_until_its_expiry(rig: Rig) -> None:
    await rig.deliver(pb.Connected(status=True))
    await rig.reached("connected")
    ban = pb.TemporaryBan(Code=pb.TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, Expire=1)
    before = datetime.now(UTC)
    await rig.deliver(ban)
    status = await rig.reached("banned")
    assert status.until is not None
    assert 0.9 <= (status.until - before).total_seconds() <= 5
    assert "send to too many people" in (status.detail or "")
    assert not rig.lifecycle.ready.is_set()
    assert rig.client is None, "the client is stopped while banned"
    # after the expiry the sender reconnects by itself (here the proxy refuses: one attempt)
    await eventually(lambda: "connecting" in rig.states()[rig.states().index("banned") :], 6)
    await eventually(lambda: rig.exits == [EXIT_CONNECT_FAILED], what="gave up (1 attempt)")
    final = await rig.reached("disconnected")  # statuses come over NATS, a moment behind
    assert "proxyconnect" in (final.detail or "")


async def test_logged_out_goes_back_to_linking(rig: Rig, tmp_path: Path) -> None:
    await rig.show_qr("2@first-code")
    status = await rig.reached("pairing")
    assert status.qr == "2@first-code"
    success = pb.PairStatus.SUCCESS
    linked = pb.PairStatus(ID=jid(device=7), BusinessName="", Platform="android", Status=success)
    await rig.deliver(linked)
    await rig.reached("connecting")
    await rig.deliver(pb.Connected(status=True))
    await rig.reached("connected")
    first_client = rig.client

    await rig.deliver(pb.LoggedOut(OnConnect=False, Reason=pb.ConnectFailureReason.LOGGED_OUT))
    await eventually(lambda: "logged_out" in rig.states(), what="logged_out reported")
    logged_out = next(s for s in rig.statuses if s.state == "logged_out")
    assert "link the device again" in (logged_out.detail or "")
    # a fresh client starts linking (here its connect fails at the closed proxy)
    await eventually(lambda: "connecting" in rig.states()[rig.states().index("logged_out") :])
    await eventually(lambda: rig.exits == [EXIT_CONNECT_FAILED])
    assert rig.client is not first_client
    assert (tmp_path / "session.sqlite3").exists(), "the session lives in WHATSAPP_SESSION"


def jid(user: str = PHONE, device: int = 0) -> Any:
    return pb.JID(
        User=user, Server="s.whatsapp.net", RawAgent=0, Device=device, Integrator=0, IsEmpty=False
    )


def receipt(ids: list[str], timestamp: int, kind: int) -> Any:
    """A receipt from the recipient's phone, shaped like the Go core encodes one."""
    nobody = pb.JID(User="", Server="", RawAgent=0, Device=0, Integrator=0, IsEmpty=True)
    source = pb.MessageSource(
        Chat=jid(),
        Sender=jid(),
        IsFromMe=False,
        IsGroup=False,
        SenderAlt=nobody,
        RecipientAlt=nobody,
        BroadcastListOwner=nobody,
    )
    return pb.Receipt(MessageSource=source, MessageIDs=ids, Timestamp=timestamp, Type=kind)


async def test_receipts_are_reported_under_our_message_id(rig: Rig) -> None:
    await rig.deliver(pb.Connected(status=True))
    await rig.deliver(receipt(["3EB0AAAA", "NOT-OURS"], 1766570400, pb.Receipt.READ))
    await rig.deliver(receipt(["3EB0AAAA"], 1766570300, pb.Receipt.SENDER))  # not reported
    await rig.deliver(receipt(["3EB0AAAA"], 1766570200, pb.Receipt.DELIVERED))
    await eventually(lambda: len(rig.receipts) == 2, what="two receipts")
    got = sorted((r.kind, r.id, r.wa_message_id, h.get("Nats-Msg-Id")) for r, h in rig.receipts)
    assert got == [
        ("delivered", "m-42", "3EB0AAAA", "receipt:m-42:delivered"),
        ("read", "m-42", "3EB0AAAA", "receipt:m-42:read"),
    ]
    read = next(r for r, _ in rig.receipts if r.kind == "read")
    assert read.at == datetime(2025, 12, 24, 10, 0, tzinfo=UTC)


async def test_a_new_index_finds_ids_remembered_before_a_restart(js: JetStreamContext) -> None:
    await topology.declare(js)
    await ReceiptIndex(await open_index_bucket(js)).remember("3EB0BBBB", "m-7")
    fresh = ReceiptIndex(await open_index_bucket(js))
    assert await fresh.lookup("3EB0BBBB") == "m-7"
    assert await fresh.lookup("3EB0CCCC") is None


async def test_no_network_reports_disconnected_consumes_nothing_loses_nothing(
    nc: NATS, js: JetStreamContext, nats_url: str, tmp_path: Path
) -> None:
    kv, _ = await topology.declare(js)
    statuses: list[SenderStatus] = []

    async def on_status(msg: Msg) -> None:
        statuses.append(SenderStatus.model_validate_json(msg.data))

    await nc.subscribe(topology.SENDER_STATUS, cb=on_status)
    waiting = DueMessage(
        id="offline-1", to=PHONE, message="hello", scheduled_time=datetime.now(UTC)
    )
    await js.publish(topology.DUE, waiting.to_json(), headers={"Nats-Msg-Id": "due:offline-1"})
    closed = f"http://127.0.0.1:{free_port()}"
    env = {
        "NATS_URL": nats_url,
        "WHATSAPP_TRANSPORT": "neonize",
        "WHATSAPP_SESSION": str(tmp_path / "wa" / "session.sqlite3"),
        "WHATSAPP_PROXY": closed,
        "HTTPS_PROXY": closed,
        "WHATSAPP_CONNECT_ATTEMPTS": "3",
        "WHATSAPP_CONNECT_BACKOFF_SECONDS": "0.3",
        "STATUS_INTERVAL_SECONDS": "0.5",
        "LOG_FORMAT": "text",
        "PATH": str(Path(sys.executable).parent),  # no ffmpeg, whatever this machine has
    }
    sender = ServiceProcess("sender", env, tmp_path / "neonize.log").start()
    try:
        assert sender.process is not None
        code = await asyncio.to_thread(sender.process.wait, 60)
    finally:
        sender.kill()
    log = sender.log()
    assert code == EXIT_CONNECT_FAILED, log[-2000:]
    assert "gave up after 3 failed connects" in log
    for kind, needs in (
        ("video", "ffprobe (its length) and ffmpeg (its thumbnail)"),
        ("audio", "ffprobe (its length)"),
        ("voice", "ffprobe (its length)"),
    ):
        assert f"media: cannot send {kind} needs {needs} on PATH; install ffmpeg" in log
    await eventually(lambda: "disconnected" in [s.state for s in statuses], what="disconnected")
    assert "connected" not in [s.state for s in statuses]
    assert (tmp_path / "wa" / "session.sqlite3").exists()

    info = await js.consumer_info(topology.STREAM, topology.SENDER_DUE)
    assert (info.num_pending, info.delivered.stream_seq) == (1, 0), "nothing was fetched"
    assert await ledger.read(kv, "offline-1") is None

    outcomes: list[Outcome] = []

    async def on_outcome(msg: Msg) -> None:
        outcomes.append(Outcome.model_validate_json(msg.data))

    await js.subscribe(topology.OUTCOME, cb=on_outcome, ordered_consumer=True)
    outbox = str(tmp_path / "out.jsonl")
    healthy = dict(env, WHATSAPP_TRANSPORT="dryrun", DRYRUN_MODE="record", DRYRUN_OUTBOX=outbox)
    later = ServiceProcess("sender", healthy, tmp_path / "dryrun.log").start()
    try:
        await eventually(lambda: outcomes, timeout=30, what="the waiting message sent")
    finally:
        later.stop()
    assert (outcomes[0].id, outcomes[0].status) == ("offline-1", Status.SENT)
    assert "media: every type can be sent" in later.log(), "dryrun hands nothing to ffmpeg"


# round 2: the account as a real phone sees it ----------------------------------------------


class GoStub:
    """Stands in for neonize's Go binding on one client: the named calls answer with the
    serialized neonize protobuf given, everything else goes to the real binding."""

    def __init__(self, client: Any, **answers: Message) -> None:
        self._real = client._NewAClient__client
        self._answers = answers
        self.calls: list[str] = []
        client._NewAClient__client = self

    def __getattr__(self, name: str) -> Any:
        if name not in self._answers:
            return getattr(self._real, name)

        async def call(*_: Any) -> bytes:
            self.calls.append(name)
            return self._answers[name].SerializeToString()

        return call


async def test_a_lookup_answers_the_jid_whatsapp_knows(rig: Rig) -> None:
    from wasched.common.recipients import parse_recipient

    found = pb.IsOnWhatsAppResponse(Query="+525512345678", JID=jid("5215512345678"), IsIn=True)
    GoStub(rig.client, IsOnWhatsApp=pb.IsOnWhatsAppReturnFunction(IsOnWhatsAppResponse=[found]))
    rig.transport._live = True  # as after connect()
    answer = await rig.transport.lookup(parse_recipient("+52 55 1234 5678"))
    assert answer is not None
    assert answer.jid == "5215512345678@s.whatsapp.net"

    absent = pb.IsOnWhatsAppResponse(Query="+447911123456", JID=jid("447911123456"), IsIn=False)
    GoStub(rig.client, IsOnWhatsApp=pb.IsOnWhatsAppReturnFunction(IsOnWhatsAppResponse=[absent]))
    assert await rig.transport.lookup(parse_recipient("447911123456")) is None


async def test_a_dead_socket_is_reported_and_a_fresh_client_started(rig: Rig) -> None:
    from dataclasses import replace

    await rig.deliver(pb.Connected(status=True))
    await rig.reached("connected")
    first = rig.client
    rig.lifecycle.limits = replace(rig.lifecycle.limits, dead_restart=1.0)
    rig.transport.probe_seconds = 0.2
    rig.transport.watch()  # the client was never really connected: its socket is dead
    status = await rig.reached("disconnected")
    assert "socket" in (status.detail or "")
    assert not rig.lifecycle.ready.is_set(), "nothing is fetched on a dead socket"
    await eventually(
        lambda: rig.client is not None and rig.client is not first,
        what="a fresh client after the socket stayed dead",
    )


async def test_a_second_logout_goes_back_to_linking(rig: Rig) -> None:
    success = pb.PairStatus.SUCCESS
    for round_ in (1, 2):
        client = rig.client
        await rig.show_qr(f"2@code-{round_}")
        await rig.reached("pairing")
        linked = pb.PairStatus(
            ID=jid(device=7), BusinessName="", Platform="android", Status=success
        )
        await rig.deliver(linked)
        await rig.reached("connecting")
        await rig.deliver(pb.Connected(status=True))
        await rig.reached("connected")
        await rig.deliver(pb.LoggedOut(OnConnect=False, Reason=pb.ConnectFailureReason.LOGGED_OUT))
        await eventually(
            lambda client=client: (
                rig.client is not None
                and rig.client is not client
                and rig.statuses[-1].state == "disconnected"
            ),  # its connect failed at the proxy
            what=f"a fresh client after logout {round_}",
        )
    await rig.show_qr("2@code-3")
    status = await rig.reached("pairing")
    assert status.qr == "2@code-3", "linking again after the second logout"


async def test_a_session_path_with_a_tilde_lives_in_the_home_directory(
    nc: NATS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasched.sender.connection import ConnectFailed

    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    events: list[Any] = []

    class Listener:
        def connection_event(self, event: Any) -> None:
            events.append(event)

        def receipt(self, seen: Any) -> None: ...

    neonize_events.set_event_loop(asyncio.get_running_loop())
    transport = NeonizeTransport(
        "~/wa/session.sqlite3",
        proxy=f"http://127.0.0.1:{free_port()}",
        stop_timeout=5,
        show_qr=False,
    )
    try:
        await transport.start(Listener())
        await eventually(lambda: any(isinstance(e, ConnectFailed) for e in events))
    finally:
        await transport.stop(timeout=5)
    assert (home / "wa" / "session.sqlite3").exists()
    assert not (work / "~").exists(), "a literal ~ directory in the working directory"


async def test_a_pair_code_comes_from_a_fresh_login_window(rig: Rig) -> None:
    await rig.show_qr("2@old-window")
    await rig.reached("pairing")
    old = rig.client
    rig.transport.fresh_window_seconds = 0.0  # the open window counts as old already
    asked = asyncio.create_task(rig.transport.pair_code(PHONE))
    await eventually(
        lambda: asked.done() or (rig.client is not None and rig.client is not old),
        what="a fresh client for the pair code",
    )
    assert not asked.done(), f"asked the old window: {asked.exception()!r}"
    stub = GoStub(rig.client, PairPhone=pb.PairPhoneReturnFunction(Code="ABCD1234"))
    await eventually(lambda: rig.statuses[-1].state == "disconnected")  # closed proxy
    opened = datetime.now(UTC)
    await rig.show_qr("2@fresh-window")
    assert await asyncio.wait_for(asked, 10) == "ABCD1234"
    assert stub.calls == ["PairPhone"]
    status = await eventually(
        lambda: next((s for s in rig.statuses if s.state == "pairing" and s.pair_code), None),
        what="a pairing status carrying the code",
    )  # a QR-only status of the fresh window may come first
    assert status.pair_code == "ABCD1234"
    assert status.until is not None
    assert 150 <= (status.until - opened).total_seconds() <= 170, "whatsmeow's 160 s window"
    assert "before" in (status.detail or "")


async def test_stream_replaced_waits_for_the_operator_without_a_fight(rig: Rig) -> None:
    await rig.deliver(pb.Connected(status=True))
    await rig.reached("connected")
    replaced_client = rig.client
    await rig.deliver(pb.StreamReplaced())
    status = await rig.reached("replaced")
    assert "wasched pair --take-over" in (status.detail or "")
    count = len(rig.statuses)
    await eventually(lambda: len(rig.statuses) >= count + 4, what="four more status reports")
    assert {s.state for s in rig.statuses[count:]} == {"replaced"}
    assert rig.exits == [], "no exit, so no restart policy brings it back to fight"
    assert rig.client is None and not rig.lifecycle.ready.is_set()
    await rig.deliver(pb.Connected(status=True), replaced_client)  # a late event, ignored
    assert rig.lifecycle.conn.state == "replaced"

    from wasched.sender.connection import TakeOver

    rig.lifecycle.connection_event(TakeOver())
    await eventually(lambda: rig.client is not None, what="a client taking the session back")
    assert "connecting" in rig.states()[count:]
