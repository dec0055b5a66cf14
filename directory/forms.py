"""Forms for the directory pages. Model validation (full_clean) gives the same errors as the API."""

from django import forms

from .models import Gateway


class GatewayForm(forms.ModelForm):
    class Meta:
        model = Gateway
        fields = list(Gateway.SETTINGS_FIELDS)
        widgets = {
            "dicomweb_password": forms.PasswordInput(render_value=False),
            "dicomweb_token": forms.PasswordInput(render_value=False),
        }

    def __init__(self, *args: object, trust=None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if trust is not None:
            self.instance.trust = trust
        if self.instance.pk:
            # Blank secret fields mean "keep what is stored", so the form never echoes them back.
            for secret in ("dicomweb_password", "dicomweb_token"):
                self.fields[secret].help_text = "Leave blank to keep the stored value."

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.instance.pk:
            for secret in ("dicomweb_password", "dicomweb_token"):
                if not cleaned.get(secret):
                    cleaned[secret] = getattr(Gateway.objects.get(pk=self.instance.pk), secret)
        return cleaned
