"""Talking to a running wasched over NATS, with every failure turned into one line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NoStreamResponseError
from pydantic import ValidationError

from wasched.common.events import Event, Reply
from wasched.common.requests import NoAnswer, request


class BusError(RuntimeError):
    """wasched could not be reached, or did not answer."""


HINT = "is wasched running? (`make run`, or `docker compose up -d`)"


def public_url(url: str) -> str:
    """The NATS URL without user or password, for messages."""
    parts = urlsplit(url.split(",")[0].strip())
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def _quiet(_: Exception) -> None:
    """nats-py logs every failed attempt; the CLI reports once instead."""


@asynccontextmanager
async def connected(url: str, timeout: float = 3.0, **options: Any) -> AsyncIterator[NATS]:
    """`options`: credentials, TLS and inbox (`wasched.common.connect.nats_options`)."""
    try:
        # nats-py reads max_reconnect_attempts=0 as "forever": 1 means one retry, then stop.
        nc = await asyncio.wait_for(
            nats.connect(
                url,
                name="wasched-cli",
                connect_timeout=timeout,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                error_cb=_quiet,
                **options,
            ),
            timeout * 2 + 1,
        )
    except (NoServersError, OSError, TimeoutError, NatsError) as exc:
        if "authorization violation" in str(exc).lower():
            raise BusError(
                f"NATS at {public_url(url)} refused our credentials: check NATS_NKEY_SEED_FILE "
                "(or NATS_USER/NATS_PASSWORD)"
            ) from exc
        raise BusError(f"cannot reach NATS at {public_url(url)}: {HINT}") from exc
    try:
        yield nc
    finally:
        await nc.close()


async def ask(nc: NATS, subject: str, event: Event, msg_id: str, timeout: float) -> Reply:
    """Publish to a stream subject and wait for the consuming service's `Reply`."""
    try:
        return await request(nc, subject, event, msg_id, timeout=timeout)
    except (NoRespondersError, NoStreamResponseError) as exc:
        raise BusError(
            f"NATS is up but holds no wasched stream for {subject}: are the services running?"
        ) from exc
    except NoAnswer as exc:
        raise BusError(
            f"NATS stored the request but nothing answered on {subject} within {timeout:g}s; "
            "it will be handled when the service runs (is it running?)"
        ) from exc
    except ValidationError as exc:
        raise BusError(f"unreadable answer on {subject}: {exc.errors()[0]['msg']}") from exc


async def ask_core(nc: NATS, subject: str, payload: bytes, timeout: float) -> Reply:
    """A plain NATS request to a core subject (no stream)."""
    try:
        msg = await nc.request(subject, payload, timeout=timeout)
    except NoRespondersError as exc:
        raise BusError(f"nothing listens on {subject}: {HINT}") from exc
    except (NatsTimeout, TimeoutError) as exc:
        raise BusError(f"no answer on {subject} within {timeout:g}s") from exc
    try:
        return Reply.model_validate_json(msg.data)
    except ValidationError as exc:
        raise BusError(f"unreadable answer on {subject}: {exc.errors()[0]['msg']}") from exc
