"""`python -m wasched.health`: metrics, /health and the status page on HEALTH_PORT.

`--check` asks a running instance's /ping and exits 0 or 1 (a container
HEALTHCHECK without curl).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.error
import urllib.request

from wasched.common.logs import setup_logging
from wasched.common.settings import Settings, SettingsError, load_settings
from wasched.health.app import Server, create_service, log, serve_until_signalled, uvicorn_config
from wasched.health.web import bind_refusal


def check(settings: Settings, timeout: float = 3.0) -> int:
    """0 when this host's health service answers /ping, else 1."""
    host = "127.0.0.1" if settings.health_host in ("0.0.0.0", "::", "") else settings.health_host
    try:
        url = f"http://{host}:{settings.health_port}/ping"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


def serve(settings: Settings) -> int:
    setup_logging(settings, "health")
    service = create_service(settings)
    server = Server(uvicorn_config(service))
    service.on_fatal = server.request_exit
    asyncio.run(serve_until_signalled(server))
    if not server.started or service.fatal:
        log.error("health service stopped: %s", service.fatal or "http side did not start")
        return 1
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wasched.health", description=__doc__)
    parser.add_argument("--check", action="store_true", help="probe a running instance's /ping")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"wasched health: {exc}", file=sys.stderr)
        return 2
    if args.check:
        return check(settings)
    refusal = bind_refusal(settings)
    if refusal:
        print(f"wasched health: {refusal}", file=sys.stderr)
        return 2
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
