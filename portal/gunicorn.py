"""gunicorn's access log with share-link tokens removed (`--logger-class portal.gunicorn.RedactingLogger`).

The token in /s/<token> is a credential; the access log would otherwise print it in the request line.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from portal.logs import _SHARE_TOKEN


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        # Every atom: the request line, the path, and the `{...}e` environ atoms (RAW_URI, PATH_INFO) alike.
        for key, value in atoms.items():
            if isinstance(value, str) and "/s/" in value:
                atoms[key] = _SHARE_TOKEN.sub("/s/[token]", value)
        return atoms
