"""`wasched`: schedule, list, cancel and send messages, link WhatsApp, check health.

A thin layer: it parses arguments and calls library code. It talks to the running
system over the NATS subjects of docs/contracts.md, never by editing S3 behind its
back (`schedule list` only reads). Every error is one line on stderr:
exit 2 for bad input, 1 when the system cannot be reached or refuses.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wasched.cli import kinds, listing, pairing, status
from wasched.cli.bus import BusError, ask, connected
from wasched.cli.init import InitError, init
from wasched.cli.kinds import UploadError
from wasched.cli.natsconf import Tls
from wasched.cli.outgoing import (
    InputError,
    cancel_request,
    pair_phone,
    schedule_request,
    send_request,
)
from wasched.cli.when import WhenError, parse_when, require_future
from wasched.common import topology
from wasched.common.clock import format_display, format_utc, utcnow
from wasched.common.connect import nats_options
from wasched.common.document import STATUSES
from wasched.common.events import Event
from wasched.common.permissions import ADMIN
from wasched.common.settings import Settings, SettingsError, load_settings

OK, FAILED, BAD_INPUT = 0, 1, 2


class Failure(Exception):
    def __init__(self, text: str, code: int = FAILED) -> None:
        super().__init__(text)
        self.code = code


class Report(Exception):
    """A full answer for stdout that still ends with a non-zero exit (e.g. unhealthy)."""

    def __init__(self, text: str, code: int = FAILED) -> None:
        super().__init__(text)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wasched", description="Scheduled WhatsApp messages, on time, once.")
    parser.add_argument("--env-file", help="settings file (default: .env when present)")
    parser.add_argument("--nats-url", help="NATS server (default: NATS_URL)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _schedule_parsers(commands)
    send = commands.add_parser("send", help="send a message now")
    _text_args(send)
    kinds.add_arguments(send, schedule=False)
    send.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (60)")
    send.set_defaults(run=cmd_send)
    pair = commands.add_parser("pair", help="link the WhatsApp account (QR, or --phone code)")
    pair.add_argument("--phone", help="get an 8-character pairing code for this number")
    pair.add_argument("--timeout", type=float, default=180.0, help="seconds to wait (180)")
    pair.add_argument(
        "--take-over",
        action="store_true",
        help="take the session back after another client replaced this sender",
    )
    pair.set_defaults(run=cmd_pair)
    health = commands.add_parser("status", help="the health checks (exit 0 when healthy)")
    health.add_argument("--url", help="health endpoint (default http://127.0.0.1:HEALTH_PORT)")
    health.add_argument("--check", action="store_true", help="one line only (for scripts)")
    health.set_defaults(run=cmd_status)
    _init_parser(commands)
    return parser


def _init_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    setup = commands.add_parser(
        "init", help="write .env, the NATS server config and credentials for compose"
    )
    setup.add_argument("--dir", default=".", help="where compose.yaml is (default: here)")
    setup.add_argument(
        "--from", dest="source", help="an older .env to carry over (its secrets move to files)"
    )
    setup.add_argument("--force", action="store_true", help="replace an existing .env")
    setup.add_argument(
        "--rotate", action="store_true", help="renew the NATS keys and the status page token only"
    )
    setup.add_argument("--tls-cert", help="NATS TLS: the server certificate, as nats sees it")
    setup.add_argument("--tls-key", help="NATS TLS: its private key, as nats sees it")
    setup.add_argument("--tls-ca", help="NATS TLS: the CA that signs client certificates")
    setup.add_argument(
        "--tls-verify-clients", action="store_true", help="require client certificates (mTLS)"
    )
    setup.set_defaults(run=cmd_init, settings=False)


def _schedule_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schedule = commands.add_parser("schedule", help="add, list or cancel scheduled messages")
    actions = schedule.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="schedule a message")
    _text_args(add)
    add.add_argument(
        "--at", required=True, help="2025-12-24T10:00 (in --tz), 2025-12-24T10:00:00Z, or +5m"
    )
    add.add_argument("--tz", help="zone of --at without offset (default: DISPLAY_TIMEZONE)")
    add.add_argument("--name", dest="contact_name", help="contact name (display only)")
    kinds.add_arguments(add)
    add.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (10)")
    add.set_defaults(run=cmd_add)
    show = actions.add_parser("list", help="the stored schedule, earliest first")
    show.add_argument("--status", action="append", choices=sorted(STATUSES), default=[])
    show.set_defaults(run=cmd_list)
    cancel = actions.add_parser("cancel", help="cancel a pending message")
    cancel.add_argument("id")
    cancel.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (10)")
    cancel.set_defaults(run=cmd_cancel)


def _text_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--to", required=True, help="phone in international digits, or a JID")
    parser.add_argument("--message", help="the text (a caption with --media; none for audio)")
    parser.add_argument("--id", dest="message_id", help="message id (default: generated)")


def _settings(args: argparse.Namespace) -> Settings:
    if args.env_file and not Path(args.env_file).is_file():
        raise Failure(f"--env-file {args.env_file}: no such file", BAD_INPUT)
    overrides: dict[str, object] = {"_env_file": args.env_file or ".env"}
    if args.nats_url:
        overrides["nats_url"] = args.nats_url
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise Failure(str(exc), BAD_INPUT) from None


def _nats(settings: Settings) -> dict[str, Any]:
    """The CLI connects as `admin` (or as the role whose inbox NATS_INBOX_PREFIX names)."""
    return nats_options(settings, ADMIN, inbox_prefix=settings.nats_inbox_prefix)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Failure(f"--tz: unknown time zone {name!r} (e.g. Europe/London)", BAD_INPUT) from None


async def _request(settings: Settings, subject: str, event: Event, msg_id: str, wait: float) -> str:
    async with connected(settings.nats_url, **_nats(settings)) as nc:
        reply = await ask(nc, subject, event, msg_id, wait)
    if not reply.ok:
        raise Failure(f"refused: {reply.error or 'no reason given'}")
    return reply.id or ""


def cmd_add(args: argparse.Namespace, settings: Settings) -> str:
    zone_name = args.tz or settings.display_timezone
    zone = _zone(zone_name)
    now = utcnow()
    at = require_future(parse_when(args.at, zone, now), now, zone)
    plan = kinds.plan_for(args, settings, at, zone_name)
    event = schedule_request(
        to=args.to,
        message=args.message,
        at=at,
        now=now,
        message_id=args.message_id,
        contact_name=args.contact_name,
        fields=plan.fields,
    )
    if plan.upload is not None:
        asyncio.run(kinds.upload(settings, plan.upload))
    asyncio.run(_request(settings, topology.SCHEDULE, event, f"schedule:{event.id}", args.timeout))
    shown = format_display(at, settings.zone)
    text = f"scheduled {event.id} for {shown} {settings.display_timezone} ({format_utc(at)})"
    if plan.kinds is not None and plan.kinds.series is not None:
        text += f", repeating {plan.fields['repeat']} in {zone_name}"
    return text


def cmd_list(args: argparse.Namespace, settings: Settings) -> str:
    doc = asyncio.run(listing.load(settings))
    return listing.render(listing.rows(doc.messages, settings.zone, args.status))


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> str:
    event = cancel_request(args.id)
    asyncio.run(_request(settings, topology.CANCEL, event, f"cancel:{event.id}", args.timeout))
    return f"cancelled {event.id}"


def cmd_send(args: argparse.Namespace, settings: Settings) -> str:
    now = utcnow()
    plan = kinds.plan_for(args, settings, now, settings.display_timezone)
    event = send_request(
        to=args.to, message=args.message, now=now, message_id=args.message_id, fields=plan.fields
    )
    assert event.id is not None
    if plan.upload is not None:
        asyncio.run(kinds.upload(settings, plan.upload))
    asyncio.run(_request(settings, topology.SEND, event, f"send:{event.id}", args.timeout))
    return f"sent {event.id}"


def cmd_pair(args: argparse.Namespace, settings: Settings) -> str:
    phone = pair_phone(args.phone) if args.phone else None

    async def run() -> str:
        async with connected(settings.nats_url, **_nats(settings)) as nc:
            if args.take_over:
                return await pairing.take_over(nc, min(args.timeout, 30.0))
            if phone:
                code = await pairing.pair_code(nc, phone, args.timeout)
                return f"{pairing.CODE_HINT}: {code}"
            done = await pairing.watch_qr(nc, args.timeout, _say)
        if not done.ok:
            raise Failure(done.text)
        return done.text

    return asyncio.run(run())


def cmd_init(args: argparse.Namespace, _: Settings | None) -> str:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise Failure("--tls-cert and --tls-key go together", BAD_INPUT)
    if args.tls_verify_clients and not args.tls_ca:
        raise Failure("--tls-verify-clients needs --tls-ca", BAD_INPUT)
    tls = (
        Tls(args.tls_cert, args.tls_key, args.tls_ca, args.tls_verify_clients)
        if args.tls_cert
        else None
    )
    root = Path(args.dir).resolve()
    source = Path(args.source) if args.source else None
    report = init(root, source=source, force=args.force, rotate=args.rotate, tls=tls)
    return report.text(root)


def cmd_status(args: argparse.Namespace, settings: Settings) -> str:
    default = os.environ.get("WASCHED_HEALTH_URL") or f"http://127.0.0.1:{settings.health_port}"
    url = args.url or f"{default.rstrip('/')}/health"
    token = settings.health_token.get_secret_value() if settings.health_token else None
    healthy, body = status.fetch(url, token)
    checks = status.parse_checks(body)
    text = status.summary(checks, healthy) if args.check else status.render(checks, healthy)
    if not healthy:
        raise Report(text)
    return text


def _say(text: str) -> None:
    print(text, flush=True)


_ERRORS = (InputError, WhenError)
_FAILURES = (BusError, listing.ListError, status.StatusError, InitError, UploadError)


def run(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed on one line
        return exc.code if isinstance(exc.code, int) else BAD_INPUT
    command: Callable[[argparse.Namespace, Settings | None], str] = args.run
    try:
        settings = _settings(args) if getattr(args, "settings", True) else None
        print(command(args, settings), flush=True)
    except Report as exc:
        print(exc, flush=True)
        return exc.code
    except Failure as exc:
        return _fail(str(exc), exc.code)
    except _ERRORS as exc:
        return _fail(str(exc), BAD_INPUT)
    except _FAILURES as exc:
        return _fail(str(exc), FAILED)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    return OK


def _fail(text: str, code: int) -> int:
    print(f"wasched: {text}", file=sys.stderr, flush=True)
    return code


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
