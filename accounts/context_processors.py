"""Template context: the signed-in user's memberships, for the navigation bar."""

from django.http import HttpRequest

from .permissions import is_regional_admin


def memberships(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "my_memberships": user.memberships.select_related("trust").order_by("trust__name", "role"),
        "is_regional_admin": is_regional_admin(user),
    }
