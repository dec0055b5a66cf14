"""The demo commands make accounts with a published password and derivable TOTP secrets: demo machines only."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import User
from directory.demo import DEMO_EMAIL_DOMAIN, DEMO_PASSWORD, demo_totp_secret
from directory.models import Trust

pytestmark = pytest.mark.django_db

DEMO_USER = f"clinician.r0a@{DEMO_EMAIL_DOMAIN}"


def test_seed_demo_refuses_to_run_with_debug_off(settings, capsys):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")

    assert not User.objects.exists()
    assert not Trust.objects.exists()
    assert DEMO_PASSWORD not in capsys.readouterr().out


def test_demo_totp_refuses_to_print_secrets_with_debug_off(settings, capsys):
    settings.DEBUG = False
    User.objects.create_user(email=DEMO_USER, password="x")

    with pytest.raises(CommandError, match="DEBUG"):
        call_command("demo_totp", DEMO_USER)
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("demo_totp")

    assert demo_totp_secret(DEMO_USER) not in capsys.readouterr().out


def test_demo_totp_prints_the_code_on_a_demo_machine(settings, capsys):
    settings.DEBUG = True

    call_command("demo_totp", DEMO_USER)

    assert demo_totp_secret(DEMO_USER) in capsys.readouterr().out
