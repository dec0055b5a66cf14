"""JSON shapes of staff accounts and memberships (SPEC section 7)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from .models import ApiToken, Membership, User, trust_model
from .roles import SERVICE_ACCOUNT_ROLE_CHOICES, Role


class MembershipSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="email", queryset=User.objects.all())
    # The trust by its ODS code, reached through the membership's own relation (accounts sits below directory).
    trust = serializers.SlugRelatedField(slug_field="ods_code", queryset=trust_model()._default_manager.all())
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["id", "user", "trust", "role"]
        validators: list = []  # uniqueness is checked by the service, with a readable message


class MyMembershipSerializer(serializers.ModelSerializer):
    trust = serializers.CharField(source="trust.ods_code")
    trust_name = serializers.CharField(source="trust.name")

    class Meta:
        model = Membership
        fields = ["trust", "trust_name", "role"]


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "full_name", "is_active"]

    def validate_email(self, value: str) -> str:
        value = value.strip().lower()
        if self.instance is None and User.objects.filter(email__iexact=value).exists():
            raise serializers.ValidationError("A staff account with this email already exists.")
        if self.instance is not None and value != self.instance.email:
            raise serializers.ValidationError("The email address of an account cannot be changed here.")
        return value


class MeSerializer(serializers.ModelSerializer):
    memberships = MyMembershipSerializer(many=True, read_only=True)
    is_regional_admin = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "email", "full_name", "memberships", "is_regional_admin"]

    def get_is_regional_admin(self, user: User) -> bool:
        from .permissions import is_regional_admin

        return is_regional_admin(user)


class ApiTokenSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(
        slug_field="email",
        queryset=User.objects.filter(is_service_account=True),
        required=False,
        help_text="Whose token: yourself when left out; regional administrators may name a service account.",
    )
    created_by = serializers.EmailField(source="created_by.email", read_only=True, allow_null=True, default=None)
    expires_in_days = serializers.IntegerField(
        write_only=True,
        required=False,
        min_value=1,
        max_value=settings.API_TOKEN_MAX_DAYS,
        help_text=f"Default {settings.API_TOKEN_DEFAULT_DAYS}.",
    )
    state = serializers.ChoiceField(choices=["active", "expired", "revoked"], read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "user",
            "name",
            "prefix",
            "state",
            "created_at",
            "created_by",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "expires_in_days",
        ]
        read_only_fields = ["prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Send as `Authorization: Token <key>`. Shown this once.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]


class ServiceAccountSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="full_name", max_length=100)
    trust = serializers.SlugRelatedField(
        slug_field="ods_code", queryset=trust_model()._default_manager.all(), write_only=True
    )
    role = serializers.ChoiceField(choices=SERVICE_ACCOUNT_ROLE_CHOICES, write_only=True)
    memberships = MyMembershipSerializer(many=True, read_only=True)

    class Meta:
        model = User
        fields = ["id", "email", "name", "is_active", "trust", "role", "memberships"]
        read_only_fields = ["email", "is_active"]
