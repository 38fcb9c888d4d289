"""Ports for the embedded servers: listening ports never come from the ephemeral range."""

from __future__ import annotations

import socket
from pathlib import Path

from wasched.cli.servers import LISTEN_PORTS_FROM, RECENT_PORTS, free_port


def test_a_free_port_is_below_the_ephemeral_range_and_can_be_bound() -> None:
    """Outgoing connections draw from the ephemeral range; a listening port taken from it
    can be grabbed by a client socket before the server binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(50)}
    assert all(LISTEN_PORTS_FROM <= port < low for port in ports)
    assert len(ports) > 40, "ports are spread, so parallel tests rarely pick the same one"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports.pop()))


def test_a_process_is_not_given_a_port_again_soon() -> None:
    """Its own stopped server may still come back on that port."""
    ports = [free_port() for _ in range(RECENT_PORTS)]
    assert len(set(ports)) == len(ports)
