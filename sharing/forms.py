"""Forms: the staff's new-link form, and the consultant's code and opinion forms."""

from __future__ import annotations

from django import forms
from django.conf import settings


class ShareLinkForm(forms.Form):
    """The studies are chosen among the patient's own (ticked boxes naming each study), never typed as UIDs."""

    study_instance_uids = forms.MultipleChoiceField(
        label="Which studies?",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Select at least one study to share"},
    )
    recipient_name = forms.CharField(max_length=200, label="Consultant's name")
    recipient_email = forms.EmailField(label="Consultant's email", help_text="The link is sent here.")
    purpose = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        label="What are you asking?",
        help_text="The consultant reads this with the images; it goes on the audit trail.",
    )
    expires_in_hours = forms.IntegerField(min_value=1, label="Expires after (hours)")
    allow_download = forms.BooleanField(required=False, label="Allow the consultant to download the DICOM files")
    allow_write_back = forms.BooleanField(
        required=False,
        label="Let the consultant's viewer send back reports, key images and segmentations for you to review",
    )

    def __init__(self, *args, trust, studies: list[dict] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.trust = trust
        self.fields["study_instance_uids"].choices = [(s["study_instance_uid"], study_label(s)) for s in studies or []]
        self.fields["expires_in_hours"].max_value = trust.share_link_max_hours
        self.fields["expires_in_hours"].initial = min(settings.SHARE_LINK_DEFAULT_HOURS, trust.share_link_max_hours)
        self.fields["expires_in_hours"].help_text = f"At most {trust.share_link_max_hours} hours at {trust.ods_code}."


def study_label(study: dict) -> str:
    """`CT head, 10 Jan 2026 (CT, 20 images)`: what a clinician recognises a study by."""
    from exchange.templatetags.exchange_tags import dicom_date

    if "description" not in study:
        return f"Study {study['study_instance_uid']}"
    what = study.get("description") or "(no description)"
    facts = ", ".join(f for f in (", ".join(study.get("modalities") or []), _images(study.get("instance_count"))) if f)
    return f"{what}, {dicom_date(study.get('study_date'))}" + (f" ({facts})" if facts else "")


def _images(count) -> str:
    return f"{count} image{'s' if count != 1 else ''}" if count is not None else ""


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
