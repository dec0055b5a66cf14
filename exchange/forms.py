"""Study search criteria: the one validation the search page and the API share."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from dicomkit import nhs
from portal.forms import DatePartsField

CRITERIA = (
    "nhs_number",
    "patient_id",
    "patient_name",
    "birth_date",
    "study_date_from",
    "study_date_to",
    "modality",
    "accession_number",
)
_MODALITY = re.compile(r"^[A-Z]{2,16}$")
# DICOM LO/SH values: no backslash (the value separator) and no control characters.
_DICOM_TEXT = re.compile(r"^[^\\\x00-\x1f]*$")


class StudySearchForm(forms.Form):
    """The search page shows family and given name as two boxes; API clients send `patient_name` as a
    DICOM name (`Family^Given`). Both end as one `patient_name` criterion."""

    nhs_number = forms.CharField(
        label="NHS number", required=False, max_length=20, help_text="For example, 943 476 5919"
    )
    patient_id = forms.CharField(label="Local patient ID", required=False, max_length=64)
    family_name = forms.CharField(
        label="Family name", required=False, max_length=40, help_text="* matches any letters, for example Kh*"
    )
    given_name = forms.CharField(label="Given name", required=False, max_length=23)
    patient_name = forms.CharField(label="Patient name (DICOM)", required=False, max_length=64)
    birth_date = DatePartsField(label="Date of birth", required=False)
    study_date_from = DatePartsField(label="Study date from", required=False)
    study_date_to = DatePartsField(label="Study date to", required=False)
    modality = forms.CharField(required=False, max_length=16, help_text="For example, CT, MR or CR")
    accession_number = forms.CharField(label="Accession number", required=False, max_length=16)

    def clean_nhs_number(self) -> str:
        value = self.cleaned_data["nhs_number"].strip()
        if not value:
            return ""
        try:
            return nhs.normalise(value)
        except nhs.InvalidNHSNumber as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_modality(self) -> str:
        value = self.cleaned_data["modality"].strip().upper()
        if value and not _MODALITY.match(value):
            raise forms.ValidationError("A modality is a DICOM code such as CT, MR or CR.")
        return value

    def _clean_text(self, name: str) -> str:
        value = self.cleaned_data[name].strip()
        if not _DICOM_TEXT.match(value):
            raise forms.ValidationError("Backslashes and control characters cannot be searched for.")
        return value

    def clean_patient_id(self) -> str:
        return self._clean_text("patient_id")

    def clean_patient_name(self) -> str:
        return self._clean_text("patient_name")

    def clean_accession_number(self) -> str:
        return self._clean_text("accession_number")

    def clean_family_name(self) -> str:
        return self._clean_name("family_name")

    def clean_given_name(self) -> str:
        return self._clean_name("given_name")

    def _clean_name(self, name: str) -> str:
        value = self._clean_text(name)
        if "^" in value or "=" in value:
            raise forms.ValidationError("Type the name as people write it, without ^ or =.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        family, given = data.pop("family_name", ""), data.pop("given_name", "")
        if (family or given) and not data.get("patient_name"):
            data["patient_name"] = f"{family or '*'}^{given}" if given else family
        if not self.errors and not any(data.get(name) for name in CRITERIA):
            raise forms.ValidationError("Give at least one search criterion, for example the NHS number.")
        start, end = data.get("study_date_from"), data.get("study_date_to")
        if start and end and start > end:
            self.add_error("study_date_to", "The end of the date range is before its start.")
        return data
