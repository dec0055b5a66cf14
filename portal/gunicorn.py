"""gunicorn's logs with share-link tokens and patient identifiers removed
(`--logger-class portal.gunicorn.RedactingLogger`, as in the Procfile).

The token in /s/<token> is a credential, and searches carry NHS numbers, names and birth dates in their
query strings (`?nhs_number=...`); the access log would print both in the request line, the query
atom, the Referer and the environ atoms, and the error log in "Error handling request <uri>".
"""

from __future__ import annotations

import logging

from gunicorn.glogging import Logger

from portal.logs import redact_query, redact_urls

# Atoms that hold a bare query string (no `?` for redact_urls to find).
_BARE_QUERY_ATOMS = ("q", "{query_string}e")


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_urls(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_urls(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


class RedactingLogger(Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        self.error_log.addFilter(_RedactingFilter())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        # Every atom: the request line, the path, the Referer and the `{...}e` environ atoms (RAW_URI) alike.
        for key, value in atoms.items():
            if isinstance(value, str):
                atoms[key] = redact_query(value) if key in _BARE_QUERY_ATOMS else redact_urls(value)
        return atoms
