"""Container HEALTHCHECK probes, with no dependency beyond wasched.common.

`python -m wasched.common.probe heartbeat poller` succeeds when a heartbeat of
that service arrives on NATS within the timeout (services beat every 5 s); it
connects with the service's own settings (`NATS_URL`, its NATS credentials);
`python -m wasched.common.probe http http://127.0.0.1:3002/ping` when the URL
answers 200. Exit 0 healthy, 1 not, with one line saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.request
from collections.abc import Sequence
from typing import Any

import nats
from nats.aio.msg import Msg

from wasched.common.connect import nats_options
from wasched.common.settings import SettingsError, load_settings
from wasched.common.topology import heartbeat_subject


async def _quiet(_: Exception) -> None:
    return None


async def heard_heartbeat(
    url: str | list[str], service: str, timeout: float, **options: Any
) -> bool:
    nc = await nats.connect(
        url,
        **options,
        connect_timeout=min(timeout, 5.0),
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.2,
        error_cb=_quiet,
    )
    heard: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()

    async def on_beat(msg: Msg) -> None:
        if not heard.done():
            heard.set_result(msg)

    try:
        await nc.subscribe(heartbeat_subject(service), cb=on_beat, max_msgs=1)
        await asyncio.wait_for(heard, timeout)
    except TimeoutError:
        return False
    finally:
        await nc.close()
    return True


def http_ok(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wasched.common.probe")
    parser.add_argument("kind", choices=["heartbeat", "http"])
    parser.add_argument("target", help="service name (heartbeat) or URL (http)")
    parser.add_argument("--timeout", type=float, default=12.0)
    args = parser.parse_args(argv)
    if args.kind == "http":
        ok = http_ok(args.target, args.timeout)
        print(f"{args.target}: {'ok' if ok else 'no 200 answer'}")
        return 0 if ok else 1
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"{args.target}: {exc}")
        return 1
    try:
        options = nats_options(settings, args.target)
        ok = asyncio.run(
            heard_heartbeat(settings.nats_servers, args.target, args.timeout, **options)
        )
    except Exception as exc:  # any failure to ask is "unhealthy", said in one line
        print(f"{args.target}: cannot reach NATS ({type(exc).__name__})")
        return 1
    print(f"{args.target}: {'heartbeat heard' if ok else f'no heartbeat in {args.timeout:g}s'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run())
