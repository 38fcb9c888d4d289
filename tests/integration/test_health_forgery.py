"""A forged sender status must never reach the status page.

Whoever publishes a `SenderStatus` with their own QR code gets the operator to
link the attacker's device to the account. The server lets only the `sender`
user publish status and heartbeats; the health service also refuses what it can
tell apart itself: a heartbeat naming another service than its subject does, and
live signals that came out of a stream (a republish) rather than from a service.
"""

from __future__ import annotations

from nats.aio.client import Client as NATS

from tests.integration.test_health_nats import health_settings
from tests.support.auth import SecuredNats, secured_nats  # noqa: F401  (fixture)
from tests.support.waiting import eventually
from tests.unit.test_health_page import page_qr
from wasched.common import topology
from wasched.common.events import Heartbeat, SenderStatus
from wasched.health.app import running

FORGED_QR = "2@forged-by-an-attacker"
GENUINE_QR = "2@genuine-from-the-sender"


async def test_a_forged_status_from_the_client_role_is_refused_by_the_server(
    secured_nats: SecuredNats,  # noqa: F811
) -> None:
    async with secured_nats.connect("poller") as poller:
        await topology.declare(poller.jetstream())
    settings = health_settings(secured_nats.url, nats_nkey_seed_file=secured_nats.seed("health"))
    async with running(settings) as service:
        seen: list[SenderStatus] = []
        believe = service.monitor.on_status
        service.monitor.on_status = lambda status: (seen.append(status), believe(status))[1]  # type: ignore[method-assign]
        async with secured_nats.connect("client") as client:
            forged = SenderStatus(state="pairing", transport="neonize", qr=FORGED_QR)
            await client.publish(topology.SENDER_STATUS, forged.to_json())
            await client.flush()
            # the server's refusal reaches the client's error callback on its own schedule
            await eventually(lambda: secured_nats.errors["client"], what="the server's refusal")
        async with secured_nats.connect("sender") as sender:
            genuine = SenderStatus(state="pairing", transport="neonize", qr=GENUINE_QR)
            await sender.publish(topology.SENDER_STATUS, genuine.to_json())
            await sender.flush()
        await eventually(lambda: seen, what="the sender's status at the health service")
        assert [status.qr for status in seen] == [GENUINE_QR]
        assert page_qr(service.monitor.page()) == [GENUINE_QR]
    assert secured_nats.errors["client"] == [
        f'nats: permissions violation for publish to "{topology.SENDER_STATUS}"'
    ]


async def test_health_refuses_live_signals_it_can_tell_are_not_from_their_service(
    nc: NATS, nats_url: str
) -> None:
    await topology.declare(nc.jetstream())
    async with running(health_settings(nats_url)) as service:
        heard: list[Heartbeat] = []
        believe = service.monitor.on_heartbeat
        service.monitor.on_heartbeat = lambda beat: (heard.append(beat), believe(beat))[1]  # type: ignore[method-assign]
        statuses: list[SenderStatus] = []
        trust = service.monitor.on_status
        service.monitor.on_status = lambda status: (statuses.append(status), trust(status))[1]  # type: ignore[method-assign]

        impostor = Heartbeat(service="poller", details={"active": True, "overdue": 0})
        await nc.publish(topology.heartbeat_subject("sender"), impostor.to_json())
        replayed = SenderStatus(state="pairing", transport="neonize", qr=FORGED_QR)
        await nc.publish(
            topology.SENDER_STATUS,
            replayed.to_json(),
            headers={"Nats-Stream": topology.STREAM, "Nats-Sequence": "7"},
        )
        genuine = Heartbeat(service="sender", details={"state": "connected"})
        await nc.publish(topology.heartbeat_subject("sender"), genuine.to_json())
        status = SenderStatus(state="connected", transport="dryrun")
        await nc.publish(topology.SENDER_STATUS, status.to_json())
        await nc.flush()
        await eventually(lambda: heard and statuses, what="the genuine signals")
        assert [beat.service for beat in heard] == ["sender"]
        assert service.monitor.state.poller is None
        assert [s.state for s in statuses] == ["connected"]
