"""The nats-server configuration: one nkey user per role, with the permissions of
`wasched.common.permissions`, JetStream limits, and TLS when certificates are given.

Users authenticate with nkeys: the server holds only public keys, each service a
seed file of its own (`NATS_NKEY_SEED_FILE`). Without `no_auth_user`, a connection
without credentials is refused. Written by `wasched init` (compose) and by the
local stack; rendering is pure, key files are the only I/O here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nkeys

from wasched.common.permissions import ROLES, Permissions, permissions

DEFAULT_MAX_FILE_STORE = "4G"
"""JetStream's disk cap for the whole server (streams, ledger, buckets)."""


class KeyFileError(RuntimeError):
    """A seed file exists but is not a user nkey seed."""


@dataclass(frozen=True, slots=True)
class Tls:
    cert_file: str
    key_file: str
    ca_file: str | None = None
    verify_clients: bool = False
    """mTLS: clients must present a certificate signed by `ca_file` (as well as their nkey)."""


@dataclass(frozen=True, slots=True)
class ServerOptions:
    listen: str | None = None
    http: str | None = None
    store_dir: str | None = None
    server_name: str | None = None
    max_file_store: str = DEFAULT_MAX_FILE_STORE
    tls: Tls | None = None


def new_seed() -> bytes:
    return bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))


def public_key(seed: bytes) -> str:
    try:
        pair = nkeys.from_seed(bytearray(seed.strip()))
    except (nkeys.NkeysError, ValueError) as exc:
        raise KeyFileError(f"not an nkey seed ({type(exc).__name__})") from None
    key = bytes(pair.public_key).decode()
    pair.wipe()
    if not key.startswith("U"):
        raise KeyFileError("not a user nkey seed (expected one starting with SU)")
    return key


def seed_path(directory: Path, role: str) -> Path:
    return directory / f"nats-{role}.nk"


def ensure_seeds(
    directory: Path, roles: tuple[str, ...] = ROLES, *, mode: int = 0o600
) -> dict[str, str]:
    """Create a seed file per role where none exists; return role → public key."""
    keys = {}
    for role in roles:
        path = seed_path(directory, role)
        if not path.exists():
            write_secret(path, new_seed() + b"\n", mode)
        try:
            keys[role] = public_key(path.read_bytes())
        except KeyFileError as exc:
            raise KeyFileError(f"{path}: {exc}") from None
    return keys


def write_secret(path: Path, data: bytes, mode: int) -> None:
    """Create with `mode` from the start (never briefly readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(mode)


def _q(value: str) -> str:
    return json.dumps(value)


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _permissions_block(perms: Permissions) -> str:
    if perms.publish is None and perms.subscribe is None:
        return 'permissions: { publish: { allow: [">"] }, subscribe: { allow: [">"] } }'
    parts = []
    for name, allow in (("publish", perms.publish), ("subscribe", perms.subscribe)):
        # an empty allow list restricts nothing: deny everything instead
        parts.append(
            f"{name}: {{ allow: {_list(allow)} }}" if allow else f'{name}: {{ deny: [">"] }}'
        )
    return "permissions: {\n      " + ",\n      ".join(parts) + "\n    }"


def render(users: Mapping[str, str], options: ServerOptions = ServerOptions()) -> str:
    """The server config for role → public nkey."""
    lines = ["# nats-server configuration written by wasched (`wasched init`, the local stack)."]
    lines.append("# Roles and permissions: wasched.common.permissions; see docs/security.md.")
    if options.server_name:
        lines.append(f"server_name: {_q(options.server_name)}")
    if options.listen:
        lines.append(f"listen: {_q(options.listen)}")
    if options.http:
        lines.append(f"http: {_q(options.http)}")
    store = f"store_dir: {_q(options.store_dir)}, " if options.store_dir else ""
    lines.append(f"jetstream: {{ {store}max_file_store: {options.max_file_store} }}")
    if options.tls:
        lines.append(_tls_block(options.tls))
    lines.append("authorization {\n  users = [")
    for role, key in users.items():
        lines.append(
            f"    # {role}\n    {{ nkey: {_q(key)},\n    {_permissions_block(permissions(role))} }}"
        )
    lines.append("  ]\n}")
    return "\n".join(lines) + "\n"


def _tls_block(tls: Tls) -> str:
    items = [f"cert_file: {_q(tls.cert_file)}", f"key_file: {_q(tls.key_file)}"]
    if tls.ca_file:
        items.append(f"ca_file: {_q(tls.ca_file)}")
    if tls.verify_clients:
        items.append("verify: true")
    items.append("timeout: 2")
    return "tls {\n  " + "\n  ".join(items) + "\n}"


def write_config(
    path: Path, seeds_dir: Path, options: ServerOptions, *, mode: int = 0o600
) -> dict[str, str]:
    """Keys for every role (created when missing) and the config that trusts them."""
    users = ensure_seeds(seeds_dir, mode=mode)
    write_secret(path, render(users, options).encode(), mode)
    return users
