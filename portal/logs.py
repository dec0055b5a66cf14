"""Structured logging: one JSON object per line (or readable console lines in the demo).

Every line carries the request ID bound by portal.middleware.RequestIDMiddleware. Log lines name
objects by database ID and trust code, never by patient identifiers: those belong in the audit trail.
Searches carry identifiers in query strings, so URLs in log lines (here and in gunicorn's access log,
portal.gunicorn) keep only the values of a few harmless parameters.
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


# Query-string parameters whose values say nothing about a patient; every other value is logged as
# [redacted]. An allow-list, so a search field added later (nhs_number, patient_name, birth_date,
# patient_id, accession_number, study_instance_uid, user, q...) is redacted without anyone remembering to.
SAFE_QUERY_PARAMETERS = frozenset(
    {"page", "page_size", "limit", "offset", "format", "direction", "status", "priority", "role", "ordering"}
)
REDACTED = "[redacted]"
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,40}")
# A query string inside a longer text: a request line, a path, a Referer.
_QUERY_IN_TEXT = re.compile(r"\?([^\s\"'#]*)")


def redact_query(query: str) -> str:
    """A query string with every value outside SAFE_QUERY_PARAMETERS replaced by [redacted]."""
    if not query:
        return query
    parts = []
    for part in re.split(r"[&;]", query):
        name, sep, value = part.partition("=")
        if not sep:  # a bare value (`?9434765919`) is a value
            parts.append(REDACTED if part else part)
        elif not _PARAMETER_NAME.fullmatch(name):
            parts.append(f"{REDACTED}={REDACTED}")
        else:
            parts.append(f"{name}={value if name in SAFE_QUERY_PARAMETERS else REDACTED}")
    return "&".join(parts)


def _redact_queries(text: str) -> str:
    return _QUERY_IN_TEXT.sub(lambda m: "?" + redact_query(m.group(1)), text) if "?" in text else text


def redact_urls(text: str) -> str:
    """Share-link tokens and patient-identifying query values out of any text that may hold URLs."""
    if "/s/" in text:
        text = _SHARE_TOKEN.sub("/s/[token]", text)
    return _redact_queries(text)


def redact_query_strings(_logger: object, _name: str, event_dict: dict) -> dict:
    """Patient identifiers in query strings (`?nhs_number=...`) out of every string of a log line."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = _redact_queries(value)
    return event_dict


SHARED_PROCESSORS = [
    redact_share_tokens,
    redact_query_strings,
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
