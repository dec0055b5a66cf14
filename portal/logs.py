"""Structured logging: one JSON object per line (or readable console lines in the demo).

Every line carries the request ID bound by portal.middleware.RequestIDMiddleware. Log lines name
objects by database ID and trust code, never by patient identifiers: those belong in the audit trail.
"""

from __future__ import annotations

import logging.config
import re

import structlog

# A share link's token is a credential: /s/<token> is logged as /s/[token] (sharing/urls.py; the token is
# 43 URL-safe characters). Whatever follows it (a dot or bracket pasted from an email) does not matter:
# none of the viewer's own /s/... paths begins with 20 such characters.
_SHARE_TOKEN = re.compile(r"/s/[A-Za-z0-9_-]{20,}")


def redact_share_tokens(_logger: object, _name: str, event_dict: dict) -> dict:
    """Remove share-link tokens from every string of a log line (request paths, Django's 4xx warnings)."""
    for key, value in event_dict.items():
        if isinstance(value, str) and "/s/" in value:
            event_dict[key] = _SHARE_TOKEN.sub("/s/[token]", value)
    return event_dict


SHARED_PROCESSORS = [
    redact_share_tokens,
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(*, level: str, fmt: str) -> None:
    """Route both structlog and the standard library's loggers through one renderer."""
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structured": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info,
                        renderer,
                    ],
                    "foreign_pre_chain": SHARED_PROCESSORS,
                }
            },
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
            "root": {"handlers": ["console"], "level": level},
            # pynetdicom logs every PDU at DEBUG and dataset contents (patient data) at its DEBUG too.
            "loggers": {"pynetdicom": {"level": "WARNING"}, "django.db.backends": {"level": "INFO"}},
        }
    )
    structlog.configure(
        processors=[*SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
