"""Production settings pass Django's deploy checks; responses carry the security headers; /healthz answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "SECRET_KEY": "x" * 20 + "production-like-secret-key-with-plenty-of-entropy-0123456789",
    "ALLOWED_HOSTS": "exchange.example.nhs.uk",
    "DEBUG": "0",
    "PATH": os.environ["PATH"],
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_deploy_checks_pass_with_production_settings(tmp_path):
    env = {**PRODUCTION_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}

    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stderr + result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_a_nonsense_setting_fails_loudly():
    result = run_manage("check", env={**PRODUCTION_ENV, "DICOM_PORT": "70000"})

    assert result.returncode != 0
    assert "DICOM_PORT must be 1-65535" in result.stderr


@pytest.mark.django_db
def test_responses_carry_csp_nosniff_and_frame_denial():
    response = Client().get("/accounts/login/")

    csp = response["Content-Security-Policy"]
    assert "object-src 'none'" in csp
    assert "base-uri 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert len(response["X-Request-ID"]) >= 8


@pytest.mark.django_db
def test_https_responses_carry_hsts_in_production(settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True

    response = Client().get("/accounts/login/", secure=True)

    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.django_db
def test_healthz_reports_database_and_broker():
    response = Client().get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["problems"] == []
    assert body["database"] == body["broker"] == "ok"


@pytest.mark.django_db
def test_healthz_is_503_when_the_broker_is_unreachable(settings):
    from portal.celery import app

    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = Client().get("/healthz")
    finally:
        app.conf.broker_url = original

    assert response.status_code == 503
    assert response.json()["problems"] == ["broker: OperationalError"]


in_ci = pytest.mark.skipif(os.environ.get("CI") != "true", reason="CI only: .ci/run sets DATABASE_URL and REDIS_URL")


@in_ci
def test_ci_runs_the_suite_on_postgresql():
    """CI=true must mean the real database: fails if the suite fell back to SQLite."""
    assert connection.vendor == "postgresql"


@in_ci
def test_ci_uses_redis_as_the_broker(settings):
    assert settings.CELERY_BROKER_URL.startswith("redis://")
