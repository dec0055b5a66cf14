"""Forms: the staff's new-link form, and the consultant's code and opinion forms."""

from __future__ import annotations

from django import forms
from django.conf import settings


class ShareLinkForm(forms.Form):
    study_instance_uids = forms.CharField(
        label="Study Instance UIDs", widget=forms.Textarea(attrs={"rows": 3}), help_text="One per line."
    )
    recipient_name = forms.CharField(max_length=200, label="Consultant's name")
    recipient_email = forms.EmailField(label="Consultant's email")
    purpose = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Purpose (what you are asking)")
    expires_in_hours = forms.IntegerField(min_value=1, label="Expires after (hours)")
    allow_download = forms.BooleanField(required=False, label="Allow the consultant to download the DICOM files")
    allow_write_back = forms.BooleanField(
        required=False,
        label="Let the consultant's viewer send back reports, key images and segmentations for you to review",
    )

    def __init__(self, *args, trust, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.trust = trust
        self.fields["expires_in_hours"].max_value = trust.share_link_max_hours
        self.fields["expires_in_hours"].initial = min(settings.SHARE_LINK_DEFAULT_HOURS, trust.share_link_max_hours)
        self.fields["expires_in_hours"].help_text = f"At most {trust.share_link_max_hours} hours at {trust.ods_code}."

    def clean_study_instance_uids(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["study_instance_uids"].split() if line.strip()]


class CodeForm(forms.Form):
    code = forms.CharField(
        max_length=20,
        label="Code from the email",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


class OpinionForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), max_length=20000, label="Opinion")
    conclusion = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=5000)
    urgent = forms.BooleanField(required=False, label="Urgent: needs action today")
    consultant_name = forms.CharField(max_length=200, label="Your name")
    registration_number = forms.CharField(max_length=32, label="Professional registration number (e.g. GMC)")
