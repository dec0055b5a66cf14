"""The four roles a trust membership can carry (SPEC section 2)."""

from django.db import models


class Role(models.TextChoices):
    CLINICIAN = "clinician", "Clinician"
    IMAGING_MANAGER = "imaging_manager", "Imaging manager"
    IG_OFFICER = "ig_officer", "Information governance officer"
    REGIONAL_ADMIN = "regional_admin", "Regional administrator"


# What a service account (a machine client of one trust, accounts.tokens) may be: never regional.
SERVICE_ACCOUNT_ROLES = (Role.CLINICIAN, Role.IMAGING_MANAGER, Role.IG_OFFICER)
SERVICE_ACCOUNT_ROLE_CHOICES = [(role.value, role.label) for role in SERVICE_ACCOUNT_ROLES]
