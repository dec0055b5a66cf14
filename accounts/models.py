"""Staff accounts (signing in by email) and their role-carrying memberships of trusts."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from .roles import Role


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        if not email:
            raise ValueError("Users sign in by email, so an email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A member of staff. Never deleted once they have acted (the audit trail points at them)."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="May use the Django admin.")
    is_service_account = models.BooleanField(
        default=False,
        help_text="A machine client made by a regional administrator: no password, one trust, API tokens only.",
    )
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.full_name or self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


class Membership(models.Model):
    """One role a user holds at one trust. A person may hold several roles and several trusts."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    trust = models.ForeignKey("directory.Trust", on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=32, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["trust__ods_code", "user__email", "role"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "trust", "role"],
                name="membership_unique_role",
                violation_error_message="This user already holds that role at that trust.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user.email} — {self.get_role_display()} at {self.trust_id and self.trust.ods_code}"

    def clean(self) -> None:
        # A service account's tokens must not reach beyond the one trust it was made for.
        if self.user_id is None or not self.user.is_service_account:
            return
        if self.role == Role.REGIONAL_ADMIN:
            raise ValidationError({"role": "A service account cannot be a regional administrator."})
        other_trusts = Membership.objects.filter(user_id=self.user_id).exclude(trust_id=self.trust_id)
        if other_trusts.exclude(pk=self.pk).exists():
            raise ValidationError({"trust": "A service account works for one trust only."})


class SignInSession(models.Model):
    """The sessions a user signed in with, so deactivation can end every one of them."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sign_in_sessions")
    session_key = models.CharField(max_length=40, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"session of {self.user_id} since {self.created_at:%Y-%m-%d %H:%M}"


class ApiToken(models.Model):
    """A key a machine client sends as `Authorization: Token <key>`. Only its SHA-256 is stored: the key
    is shown once, when made. It expires, can be revoked, and is refused when its owner has no second
    factor (service accounts excepted), so it never gives more than the owner's own signed-in session."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the client's host name.")
    prefix = models.CharField(max_length=8, help_text="The key's first characters, to tell tokens apart.")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the key, in hex.")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) of {self.user.email}"

    @property
    def fingerprint(self) -> str:
        """How the audit trail names the token: the same value audit.context.token_fingerprint(key) gives."""
        return "token:" + self.digest[:16]

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        return "expired" if self.expires_at <= timezone.now() else "active"


def trust_model() -> type[models.Model]:
    """directory.Trust, reached through the membership's relation: accounts sits below directory and does
    not import it (docs/architecture.md)."""
    return Membership._meta.get_field("trust").related_model
