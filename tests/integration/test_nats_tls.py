"""Optional TLS to NATS: the generated server config with certificates, and `NATS_TLS_*`.

A CA and a server certificate for 127.0.0.1 are made on the spot; the client
trusts that CA through `NATS_TLS_CA_FILE` and connects with its nkey as usual.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nats.aio.client import Client as NATS

from wasched.cli.natsconf import ServerOptions, Tls, seed_path, write_config
from wasched.cli.servers import NatsServer, nats_server
from wasched.common.connect import nats_options
from wasched.common.settings import load_settings


def _pem(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def make_certificates(directory: Path) -> tuple[str, str, str]:
    """(ca.pem, server.pem, server-key.pem) for 127.0.0.1, valid for a day."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wasched test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nats")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return (
        _pem(directory / "ca.pem", ca.public_bytes(pem)),
        _pem(directory / "server.pem", server.public_bytes(pem)),
        _pem(
            directory / "server-key.pem",
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        ),
    )


@pytest.fixture
def tls_nats(tmp_path: Path) -> tuple[NatsServer, Path, str]:
    ca, cert, key = make_certificates(tmp_path)
    secrets = tmp_path / "secrets"
    conf = secrets / "nats-server.conf"
    write_config(conf, secrets, ServerOptions(tls=Tls(cert, key)))
    server = nats_server(tmp_path / "nats", extra=["-c", str(conf)]).start()
    yield server, secrets, ca
    server.stop()


async def test_a_service_connects_over_tls_with_the_ca_from_its_settings(
    tls_nats: tuple[NatsServer, Path, str],
) -> None:
    server, secrets, ca = tls_nats
    settings = load_settings(
        _env_file=None,
        nats_url=server.url.replace("nats://", "tls://"),
        nats_nkey_seed_file=seed_path(secrets, "poller"),
        nats_tls_ca_file=ca,
    )
    nc = NATS()
    await nc.connect(
        settings.nats_servers, allow_reconnect=False, **nats_options(settings, "poller")
    )
    try:
        assert nc.is_connected
        await nc.flush()
    finally:
        await nc.close()


def test_tls_options_follow_the_settings(tls_nats: tuple[NatsServer, Path, str]) -> None:
    server, secrets, ca = tls_nats
    seed = seed_path(secrets, "poller")
    plain = load_settings(_env_file=None, nats_url=server.url, nats_nkey_seed_file=seed)
    assert "tls" not in nats_options(plain, "poller")
    by_url = load_settings(_env_file=None, nats_url="tls://127.0.0.1:1", nats_nkey_seed_file=seed)
    assert isinstance(nats_options(by_url, "poller")["tls"], ssl.SSLContext)
    by_ca = load_settings(
        _env_file=None,
        nats_url=server.url,
        nats_nkey_seed_file=seed,
        nats_tls_ca_file=ca,
        nats_tls_hostname="nats.internal",
    )
    options = nats_options(by_ca, "poller")
    trusted = {c["subject"] for c in options["tls"].get_ca_certs()}
    assert ((("commonName", "wasched test CA"),),) in trusted
    assert options["tls_hostname"] == "nats.internal"
