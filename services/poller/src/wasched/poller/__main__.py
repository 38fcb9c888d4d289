"""`python -m wasched.poller`: exit 0 on SIGTERM/SIGINT, 2 on bad settings, 1 on bad S3 credentials,
3 when another poller took the lease (the supervisor restarts it as a standby)."""

from __future__ import annotations

import asyncio
import logging
import sys

from wasched.common.settings import SettingsError, load_settings

log = logging.getLogger("wasched.poller")


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"poller: {exc}", file=sys.stderr)
        return 2
    from wasched.poller.plan import settings_problem

    problem = settings_problem(settings)
    if problem is not None:
        print(f"poller: invalid configuration: {problem}", file=sys.stderr)
        return 2
    from wasched.common.logs import setup_logging  # the rest only once settings are good
    from wasched.common.store import StoreAuthError
    from wasched.poller.app import PollerApp

    setup_logging(settings, "poller")

    try:
        return asyncio.run(PollerApp(settings).run())
    except StoreAuthError as exc:
        log.error("%s; check S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY and S3_BUCKET", exc)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
