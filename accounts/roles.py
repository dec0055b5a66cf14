"""The four roles a trust membership can carry (SPEC section 2)."""

from django.db import models


class Role(models.TextChoices):
    CLINICIAN = "clinician", "Clinician"
    IMAGING_MANAGER = "imaging_manager", "Imaging manager"
    IG_OFFICER = "ig_officer", "Information governance officer"
    REGIONAL_ADMIN = "regional_admin", "Regional administrator"
