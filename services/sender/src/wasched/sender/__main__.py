"""`python -m wasched.sender` runs the sender; `python -m wasched.sender pair --phone 447...`
asks the running sender for a pair code.

Exit codes: 0 stopped on request, 1 failed (NATS refused the setup, no answer to `pair`),
2 bad configuration, 3 gave up connecting to WhatsApp, 5 no device linked within the
pairing window. (Another client taking the session no longer exits: the sender stays up
as `replaced` until an operator takes it back.)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from urllib.parse import urlsplit

from nats.errors import Error as NatsError

from wasched.common.connect import nats_options
from wasched.common.logs import setup_logging
from wasched.common.settings import SettingsError
from wasched.sender.app import build_app
from wasched.sender.config import SenderSettings, load_sender_settings
from wasched.sender.pairing import request_code

log = logging.getLogger("wasched.sender")
EXIT_START_FAILED = 1
EXIT_CONFIG = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m wasched.sender", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    pair = commands.add_parser("pair", help="get a pair code to link WhatsApp by phone number")
    pair.add_argument("--phone", required=True, help="the account's number, e.g. 447957189696")
    pair.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (60)")
    return parser.parse_args(argv)


async def run(settings: SenderSettings) -> int:
    app, runtime = build_app(settings)
    log.info("connecting to NATS at %s", nats_location(settings.nats_url))
    try:
        await app.run()
    except NatsError as exc:
        if not runtime.stopping:
            log.error("the sender could not run: %s", exc)
            return EXIT_START_FAILED
        # `docker compose down` stops NATS beside us: nothing is lost (unacked messages
        # stay in JetStream, results not yet in NATS are in the journal)
        log.warning("NATS went away while the sender stopped (%s)", exc)
    except Exception as exc:
        log.error("the sender could not run: %s", exc)
        return EXIT_START_FAILED
    if not runtime.clean_stop:
        # a Go thread that did not stop would keep the interpreter from exiting
        logging.shutdown()
        sys.stdout.flush()
        os._exit(runtime.exit_code)
    return runtime.exit_code


def nats_location(urls: str) -> str:
    """host:port of each NATS URL, never its credentials."""
    parts = (urlsplit(url.strip()) for url in urls.split(","))
    return ", ".join(f"{part.hostname}:{part.port or 4222}" for part in parts)


async def pair(settings: SenderSettings, phone: str, timeout: float) -> int:
    try:
        options = nats_options(settings, "sender")
        reply = await request_code(settings.nats_url, phone, timeout, **options)
    except Exception as exc:
        print(f"cannot reach NATS at {nats_location(settings.nats_url)}: {exc}", file=sys.stderr)
        return EXIT_START_FAILED
    if not reply.ok or not reply.id:
        print(f"no pair code: {reply.error}", file=sys.stderr)
        return EXIT_START_FAILED
    print(f"pair code: {reply.id}")
    print(
        "on the phone: WhatsApp → Settings → Linked devices → Link a device → "
        "Link with phone number instead, then enter the code"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_sender_settings()
    except SettingsError as exc:
        print(f"wasched.sender: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "pair":
        return asyncio.run(pair(settings, args.phone, args.timeout))
    setup_logging(settings, "sender")
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
