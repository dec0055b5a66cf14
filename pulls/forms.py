"""The request form and the decision forms. Field names match the service's error keys."""

from __future__ import annotations

from django import forms

from directory.models import Trust
from directory.services import agreement_allows
from portal.forms import DatePartsField
from transfers.models import Priority

from .models import Sex


def sources_for(requesting: Trust) -> list[Trust]:
    """Trusts whose agreement lets them send to `requesting` (the direction the images travel)."""
    return [t for t in Trust.objects.exclude(pk=requesting.pk).order_by("name") if agreement_allows(t, requesting)]


class RequestForm(forms.Form):
    """Sex has no default: a preselected answer is an answer nobody gave (it used to start on Male)."""

    source_trust = forms.ModelChoiceField(
        queryset=Trust.objects.none(), label="Which trust holds the images?", empty_label="Choose a trust"
    )
    nhs_number = forms.CharField(label="NHS number", max_length=20, help_text="For example, 943 476 5919")
    family_name = forms.CharField(label="Family name", max_length=64)
    given_name = forms.CharField(label="Given name", max_length=64)
    birth_date = DatePartsField(label="Date of birth", past_only=True)
    sex = forms.ChoiceField(
        label="Sex", choices=Sex.choices, widget=forms.RadioSelect, error_messages={"required": "Select the sex"}
    )
    date_from = DatePartsField(required=False, label="Studies from")
    date_to = DatePartsField(required=False, label="Studies to")
    modalities = forms.CharField(required=False, help_text="For example, CT, MR. Leave empty for all.")
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.ROUTINE, widget=forms.RadioSelect)
    reason = forms.CharField(
        label="Clinical reason",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why the images are needed; it goes on the audit trail.",
    )

    def __init__(self, *args, requesting: Trust, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["source_trust"].queryset = Trust.objects.filter(
            pk__in=[t.pk for t in sources_for(requesting)]
        ).order_by("name")

    def clean_modalities(self) -> list[str]:
        return [m.strip() for m in self.cleaned_data["modalities"].split(",") if m.strip()]


class DeclineForm(forms.Form):
    reason = forms.CharField(label="Why are you declining?", max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
