"""Forms of the API token and service account pages."""

from __future__ import annotations

from django import forms
from django.conf import settings

from .models import trust_model
from .roles import SERVICE_ACCOUNT_ROLE_CHOICES


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. the client machine's name.")
    expires_in_days = forms.IntegerField(
        label="Expires in (days)",
        min_value=1,
        max_value=settings.API_TOKEN_MAX_DAYS,
        initial=settings.API_TOKEN_DEFAULT_DAYS,
    )


class ServiceAccountForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="The client it is for, e.g. “RAA PACS router”.")
    trust = forms.ModelChoiceField(queryset=trust_model()._default_manager.order_by("name"), to_field_name="ods_code")
    role = forms.ChoiceField(choices=SERVICE_ACCOUNT_ROLE_CHOICES)
