"""Behind a TLS proxy the portal must know how many proxies to trust, or every client shares one address."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.portal.test_deployment import PRODUCTION_ENV, run_manage

ROOT = Path(__file__).resolve().parents[2]


def test_behind_a_proxy_without_a_proxy_count_the_portal_refuses_to_start(tmp_path):
    env = {**PRODUCTION_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "BEHIND_TLS_PROXY": "1"}

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "TRUSTED_PROXY_COUNT" in result.stderr


def test_behind_a_proxy_a_count_of_zero_is_refused_too(tmp_path):
    env = {**PRODUCTION_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "BEHIND_TLS_PROXY": "1"}

    result = run_manage("check", env={**env, "TRUSTED_PROXY_COUNT": "0"})

    assert result.returncode != 0 and "TRUSTED_PROXY_COUNT" in result.stderr


def test_behind_a_proxy_with_its_count_the_portal_starts(tmp_path):
    env = {**PRODUCTION_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}

    result = run_manage("check", env={**env, "BEHIND_TLS_PROXY": "1", "TRUSTED_PROXY_COUNT": "1"})

    assert result.returncode == 0, result.stderr


def test_docker_compose_names_the_proxy_count_wherever_it_sets_the_proxy():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    behind = [name for name, svc in services.items() if svc.get("environment", {}).get("BEHIND_TLS_PROXY")]

    assert "web" in behind
    for name in behind:
        assert int(services[name]["environment"]["TRUSTED_PROXY_COUNT"]) >= 1, name
