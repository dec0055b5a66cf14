"""The request form and the decision forms. Field names match the service's error keys."""

from __future__ import annotations

from django import forms

from directory.models import Trust
from directory.services import agreement_allows
from transfers.models import Priority

from .models import Sex


def sources_for(requesting: Trust) -> list[Trust]:
    """Trusts whose agreement lets them send to `requesting` (the direction the images travel)."""
    return [t for t in Trust.objects.exclude(pk=requesting.pk).order_by("name") if agreement_allows(t, requesting)]


class RequestForm(forms.Form):
    source_trust = forms.ModelChoiceField(queryset=Trust.objects.none(), label="Ask", empty_label="Choose a trust")
    nhs_number = forms.CharField(label="NHS number", max_length=20)
    family_name = forms.CharField(max_length=64)
    given_name = forms.CharField(max_length=64)
    birth_date = forms.DateField(label="Date of birth", widget=forms.DateInput(attrs={"type": "date"}))
    sex = forms.ChoiceField(choices=Sex.choices)
    date_from = forms.DateField(required=False, label="Studies from", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="Studies to", widget=forms.DateInput(attrs={"type": "date"}))
    modalities = forms.CharField(required=False, help_text="Comma-separated, e.g. CT, MR; empty for all.")
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.ROUTINE, widget=forms.RadioSelect)
    reason = forms.CharField(label="Clinical reason", max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, requesting: Trust, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["source_trust"].queryset = Trust.objects.filter(
            pk__in=[t.pk for t in sources_for(requesting)]
        ).order_by("name")

    def clean_modalities(self) -> list[str]:
        return [m.strip() for m in self.cleaned_data["modalities"].split(",") if m.strip()]


class DeclineForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
