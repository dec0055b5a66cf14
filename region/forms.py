"""Forms of the region's pages; the services validate again and their errors show on the form."""

from __future__ import annotations

from django import forms

from directory.models import Gateway, Trust

from .models import ForwardingRule, MigrationJob


class ForwardingRuleForm(forms.Form):
    trust = forms.ModelChoiceField(queryset=Trust.objects.none(), label="Trust", to_field_name="ods_code")
    archive = forms.ModelChoiceField(
        queryset=Trust.objects.filter(kind=Trust.Kind.REGION), label="Regional archive", to_field_name="ods_code"
    )
    trigger = forms.ChoiceField(choices=ForwardingRule.Trigger.choices, widget=forms.RadioSelect, label="Copy")
    modality = forms.CharField(required=False, max_length=16, label="Modality (for the modality rule)")

    def __init__(self, *args: object, trusts: list[Trust], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["trust"].queryset = Trust.objects.filter(pk__in=[t.pk for t in trusts])  # type: ignore[attr-defined]


class MigrationForm(forms.ModelForm):
    source = forms.ModelChoiceField(queryset=Gateway.objects.select_related("trust"))
    destination = forms.ModelChoiceField(queryset=Gateway.objects.select_related("trust"))

    class Meta:
        model = MigrationJob
        fields = ["name", "source", "destination", "date_from", "date_to", "max_instances_per_second", "allowed_hours"]
        widgets = {
            "date_from": forms.DateInput(attrs={"type": "date"}),
            "date_to": forms.DateInput(attrs={"type": "date"}),
        }
