"""Share links under production HTTPS settings: the `__Host-` cookie, and tokens kept out of access logs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.test import Client

from tests.helpers import signed_in

pytestmark = pytest.mark.django_db


def test_over_https_the_session_cookie_is_a_host_prefixed_secure_cookie(ready_link, settings):
    settings.SHARE_LINK_COOKIE_SECURE = True
    settings.SHARE_LINK_COOKIE_NAME = "__Host-share_session"
    response = Client().post(ready_link.path, secure=True)
    cookie = response.cookies["__Host-share_session"]
    # What browsers demand of a __Host- cookie: Secure, Path=/ and no Domain.
    assert cookie["secure"] and cookie["path"] == "/" and not cookie["domain"] and cookie["httponly"]
    assert "share_session" not in response.cookies


def test_production_settings_name_the_cookie_host_prefixed():
    import subprocess
    import sys

    code = "from django.conf import settings; print(settings.SHARE_LINK_COOKIE_NAME, settings.SHARE_LINK_COOKIE_SECURE)"
    env = {"DJANGO_SETTINGS_MODULE": "portal.settings", "SECRET_KEY": "x" * 50, "DATABASE_URL": "sqlite://:memory:"}
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env={**__import__("os").environ, **env, "DEBUG": "0"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["__Host-share_session", "True"]


def test_gunicorns_access_log_never_shows_a_token(ready_link):
    from portal.gunicorn import RedactingLogger

    logger = RedactingLogger(SimpleNamespace(**_gunicorn_cfg()))
    request = SimpleNamespace(
        method="GET", path=ready_link.path, query="", uri=ready_link.path, version=(1, 1), headers=[]
    )
    response = SimpleNamespace(status="302 Found", response_length=0, sent=0, headers=[])
    environ = {
        "REMOTE_ADDR": "192.0.2.1",
        "REQUEST_METHOD": "GET",
        "RAW_URI": ready_link.path,
        "PATH_INFO": ready_link.path,
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    atoms = logger.atoms(response, request, environ, __import__("datetime").timedelta(seconds=0.01))
    assert ready_link.token not in repr(atoms)
    assert "/s/[token]" in atoms["r"]


def _gunicorn_cfg() -> dict:
    from gunicorn.config import Config

    cfg = Config()
    return {name: setting.get() for name, setting in cfg.settings.items()}


def test_the_study_page_offers_sharing_to_clinicians(alice, trust_a):
    # The link on a study page goes to the form with the study filled in.
    response = signed_in(alice).get("/trusts/RAA/share-links/new/?study=1.2.3.4")
    assert response.status_code == 200 and b"1.2.3.4" in response.content
