"""Fixtures shared by the integration tests of the sender (a module may define its own)."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from tests.support.sending import Collected, collect
from wasched.common import topology
from wasched.common.events import Outcome


@pytest.fixture
async def kv(js: JetStreamContext) -> KeyValue:
    """The ledger, with the streams and buckets declared as a service would."""
    ledger_kv, _ = await topology.declare(js)
    return ledger_kv


@pytest.fixture
async def outcomes(nc: NATS, kv: KeyValue) -> Collected[Outcome]:
    """Every outcome published on the stream, from the start."""
    return await collect(nc, topology.OUTCOME, Outcome, stream=True)
