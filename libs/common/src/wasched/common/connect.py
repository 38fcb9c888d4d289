"""How this process connects to NATS: its credentials, TLS, and its role's reply inbox.

Every place that connects takes its options from here, so a credential or TLS
setting works the same in every service, the CLI and the health probe. Each role
gets its own inbox prefix (`_INBOX.<role>`): the server lets a role read only
replies under its own (wasched.common.permissions).
"""

from __future__ import annotations

import ssl
from typing import Any

from faststream.nats.security import NatsCredentials, NatsNKey, NatsSecurity, NatsUserPassword
from faststream.security import BaseSecurity

from wasched.common.permissions import inbox
from wasched.common.settings import Settings


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """A client TLS context when any `NATS_TLS_*` is set or a URL says `tls://`."""
    wanted = any(url.startswith("tls://") for url in settings.nats_servers) or any(
        (settings.nats_tls_ca_file, settings.nats_tls_cert_file)
    )
    if not wanted:
        return None
    ca = str(settings.nats_tls_ca_file) if settings.nats_tls_ca_file else None
    context = ssl.create_default_context(cafile=ca)
    if settings.nats_tls_cert_file and settings.nats_tls_key_file:
        context.load_cert_chain(str(settings.nats_tls_cert_file), str(settings.nats_tls_key_file))
    return context


def nats_options(
    settings: Settings, role: str, *, inbox_prefix: str | None = None
) -> dict[str, Any]:
    """Keyword arguments for `nats.connect` (add servers, callbacks and timeouts)."""
    options: dict[str, Any] = {"inbox_prefix": inbox_prefix or inbox(role)}
    if settings.nats_nkey_seed_file is not None:
        options["nkeys_seed"] = str(settings.nats_nkey_seed_file)
    elif settings.nats_creds_file is not None:
        options["user_credentials"] = str(settings.nats_creds_file)
    elif settings.nats_user is not None and settings.nats_password is not None:
        options["user"] = settings.nats_user
        options["password"] = settings.nats_password.get_secret_value()
    context = tls_context(settings)
    if context is not None:
        options["tls"] = context
        if settings.nats_tls_hostname:
            options["tls_hostname"] = settings.nats_tls_hostname
    return options


def broker_security(settings: Settings) -> BaseSecurity | None:
    """The same credentials and TLS as FastStream's `security=` (its other way is deprecated)."""
    tls = {"ssl_context": tls_context(settings), "tls_hostname": settings.nats_tls_hostname}
    if settings.nats_nkey_seed_file is not None:
        return NatsNKey.from_file(settings.nats_nkey_seed_file, **tls)
    if settings.nats_creds_file is not None:
        return NatsCredentials.from_file(settings.nats_creds_file, **tls)
    if settings.nats_user is not None and settings.nats_password is not None:
        return NatsUserPassword(
            settings.nats_user, settings.nats_password.get_secret_value(), **tls
        )
    if tls["ssl_context"] is not None:
        return NatsSecurity(**tls)
    return None


def pull_inbox(role: str) -> bytes:
    """For FastStream's pull subscribers (`inbox_prefix=`), which otherwise fetch into the
    plain `_INBOX.` whatever the connection's prefix is."""
    return f"{inbox(role)}.".encode()


def broker_options(settings: Settings, role: str) -> dict[str, Any]:
    """Keyword arguments for `NatsBroker(settings.nats_servers, ...)`."""
    return {"security": broker_security(settings), "inbox_prefix": inbox(role)}
