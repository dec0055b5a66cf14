"""JSON shapes of staff accounts and memberships (SPEC section 7)."""

from __future__ import annotations

from rest_framework import serializers

from .models import Membership, User
from .roles import Role


class MembershipSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="email", queryset=User.objects.all())
    # The trust by its ODS code, reached through the membership's own relation (accounts sits below directory).
    trust = serializers.SlugRelatedField(
        slug_field="ods_code", queryset=Membership._meta.get_field("trust").related_model._default_manager.all()
    )
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
