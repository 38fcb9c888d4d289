"""Logging: one line per event, wall time in the display zone, text or JSON."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime, tzinfo

from wasched.common.clock import format_display
from wasched.common.settings import LogFormat, Settings


class _TextFormatter(logging.Formatter):
    def __init__(self, zone: tzinfo, service: str) -> None:
        super().__init__()
        self.zone, self.service = zone, service

    def format(self, record: logging.LogRecord) -> str:
        stamp = format_display(datetime.fromtimestamp(record.created, UTC), self.zone)
        level = "" if record.levelno == logging.INFO else f"{record.levelname} "
        line = f"[{stamp}] {self.service}: {level}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(settings: Settings, service: str) -> None:
    """Replace any handlers (neonize calls basicConfig on import) with ours."""
    handler = logging.StreamHandler(sys.stdout)
    if settings.log_format is LogFormat.JSON:
        handler.setFormatter(_JsonFormatter(service))
    else:
        handler.setFormatter(_TextFormatter(settings.zone, service))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    for noisy in ("botocore", "aiobotocore", "aioboto3", "nats", "faststream", "urllib3"):
        logging.getLogger(noisy).setLevel(
            max(logging.WARNING, logging.getLevelName(settings.log_level))
        )
