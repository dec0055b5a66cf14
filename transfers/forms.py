"""The push form: which studies, to which trust, how urgently and why. The service has the last word."""

from __future__ import annotations

from django import forms
from django.db.models import Q

from directory.models import SharingAgreement, Trust
from directory.services import agreement_allows

from .models import Priority, Status


def destinations_for(source: Trust) -> list[Trust]:
    """Trusts an active agreement lets `source` send to; agreement_allows stays the one rule."""
    pairs = SharingAgreement.objects.filter(Q(trust_a=source) | Q(trust_b=source), active=True)
    partner_ids = {pk for pair in pairs.values_list("trust_a_id", "trust_b_id") for pk in pair} - {source.pk}
    partners = Trust.objects.filter(pk__in=partner_ids).order_by("name")
    return [trust for trust in partners if agreement_allows(source, trust)]


class StudyUIDsField(forms.Field):
    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[str]:
        if not value:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        return [str(v).strip() for v in values if str(v).strip()]


class PushForm(forms.Form):
    """Field names match the keys of transfer_create's ValidationError, so its messages land on them."""

    study_instance_uids = StudyUIDsField(error_messages={"required": "Choose at least one study to send."})
    destination_trust = forms.ModelChoiceField(
        queryset=Trust.objects.none(),
        label="Send to",
        empty_label="Choose a trust",
        help_text="Only trusts whose sharing agreement lets yours send to them.",
    )
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.ROUTINE, widget=forms.RadioSelect)
    reason = forms.CharField(
        label="Clinical reason",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why the images are needed; it goes on the audit trail.",
    )

    def __init__(self, *args, source: Trust, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["destination_trust"].queryset = Trust.objects.filter(
            pk__in=[trust.pk for trust in destinations_for(source)]
        ).order_by("name")


class TransferFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "Any status"), *Status.choices], required=False)
