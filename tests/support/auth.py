"""A nats-server started with the generated configuration: one nkey user per role.

`secured_nats` gives each test its own server (as the `nats_url` fixture does),
the seed files of every role, and helpers to connect as one of them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from wasched.cli.natsconf import ServerOptions, seed_path, write_config
from wasched.cli.servers import NatsServer, nats_server
from wasched.common.permissions import inbox

VIOLATION = re.compile(
    r'"\$G/(?:nkey|user):(?P<user>\w+)" - (?P<kind>Publish|Subscription) Violation - (?P<what>.*)'
)


@dataclass
class SecuredNats:
    server: NatsServer
    secrets: Path
    keys: dict[str, str]
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def seed(self, role: str) -> Path:
        return seed_path(self.secrets, role)

    def env(self, role: str) -> dict[str, str]:
        """What a service process needs to connect as `role`."""
        return {"NATS_URL": self.url, "NATS_NKEY_SEED_FILE": str(self.seed(role))}

    @asynccontextmanager
    async def connect(self, role: str, **options: Any) -> AsyncIterator[NATS]:
        """Connected as `role`; permission errors the client hears go to `errors[role]`."""
        heard = self.errors.setdefault(role, [])

        async def on_error(exc: Exception) -> None:
            heard.append(str(exc))

        nc = await nats.connect(
            self.url,
            nkeys_seed=str(self.seed(role)),
            inbox_prefix=inbox(role),
            error_cb=on_error,
            allow_reconnect=False,
            **options,
        )
        try:
            yield nc
        finally:
            await nc.close()

    def violations(self) -> list[tuple[str, str, str]]:
        """(role, Publish|Subscription, subject...) for every refusal in the server log."""
        roles = {key: role for role, key in self.keys.items()}
        text = self.server.log_path.read_text(errors="replace")
        return [
            (roles.get(m["user"], m["user"]), m["kind"], m["what"])
            for m in VIOLATION.finditer(text)
        ]


def start_secured(root: Path) -> SecuredNats:
    secrets = root / "secrets"
    conf = secrets / "nats-server.conf"
    keys = write_config(conf, secrets, ServerOptions())
    server = nats_server(root / "nats", extra=["-c", str(conf)]).start()
    return SecuredNats(server=server, secrets=secrets, keys=keys)


@pytest.fixture
def secured_nats(tmp_path: Path) -> Iterator[SecuredNats]:
    secured = start_secured(tmp_path)
    yield secured
    secured.server.stop()
