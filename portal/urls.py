"""URL map: the UI, allauth, the admin (behind allauth's sign-in, so MFA applies), the API and /healthz."""

from allauth.account.decorators import secure_admin_login
from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from accounts import views as accounts_views
from accounts.apis import ApiTokenViewSet, MembershipViewSet, MeView, ServiceAccountViewSet, UserViewSet
from auditconsole.apis import AuditAlertViewSet, AuditEventViewSet
from copies.apis import CopiesView, CorrectionViewSet, MappingView
from directory.apis import AgreementViewSet, TrustViewSet
from exchange.apis import GatewayViewSet, StudyDetailView, StudyListView
from pulls.apis import RequestViewSet
from reconciliation.apis import ReconciliationViewSet
from region.apis import ForwardingRuleViewSet, MigrationJobViewSet
from sharing.apis import ShareLinkViewSet
from transfers.apis import TransferViewSet

from . import errors
from .health import healthz
from .home import home
from .schema_views import CachedSchemaView, docs_view

# The admin's own login form would skip the second factor; send everyone through allauth instead.
admin.site.login = secure_admin_login(admin.site.login)
admin.site.site_header = "Regional Image Exchange administration"

router = DefaultRouter()
router.register("users", UserViewSet, basename="user")
router.register("memberships", MembershipViewSet, basename="membership")
router.register("tokens", ApiTokenViewSet, basename="api-token")
router.register("service-accounts", ServiceAccountViewSet, basename="service-account")
router.register("trusts", TrustViewSet, basename="trust")
router.register("gateways", GatewayViewSet, basename="gateway")
router.register("agreements", AgreementViewSet, basename="agreement")
router.register("audit-events", AuditEventViewSet, basename="audit-event")
router.register("audit-alerts", AuditAlertViewSet, basename="audit-alert")
router.register("transfers", TransferViewSet, basename="transfer")
router.register("requests", RequestViewSet, basename="request")
router.register("reconciliation", ReconciliationViewSet, basename="reconciliation")
router.register("share-links", ShareLinkViewSet, basename="share-link")
router.register("forwarding-rules", ForwardingRuleViewSet, basename="forwarding-rule")
router.register("migrations", MigrationJobViewSet, basename="migration")
router.register("corrections", CorrectionViewSet, basename="correction")

api_v1 = [
    path("me/", MeView.as_view(), name="me"),
    path("trusts/<str:ods_code>/studies/", StudyListView.as_view(), name="trust-studies"),
    path("trusts/<str:ods_code>/studies/<str:study_uid>/", StudyDetailView.as_view(), name="trust-study-detail"),
    path("trusts/<str:ods_code>/procedure-mappings/", MappingView.as_view(), name="trust-procedure-mappings"),
    path("copies/", CopiesView.as_view(), name="copies"),
    *router.urls,
]

urlpatterns = [
    path("", home, name="home"),
    path("", include("directory.urls")),
    path("", include("exchange.urls")),
    path("", include("transfers.urls")),
    path("", include("pulls.urls")),
    path("", include("reconciliation.urls")),
    path("", include("sharing.urls")),
    path("", include("copies.urls")),
    path("", include("accounts.urls")),
    path("", include("dicomweb.urls")),
    path("", include("region.urls")),
    path("", include("manifests.urls")),
    # Ahead of allauth's own: removing the last security key must be refused as the TOTP form refuses it.
    path("accounts/2fa/webauthn/keys/<int:pk>/remove/", accounts_views.remove_webauthn),
    path("accounts/", include("allauth.urls")),
    path("audit/", include("auditconsole.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", CachedSchemaView.as_view(), name="schema"),
    # Swagger UI sets inline styles; the docs page alone may (scripts stay 'self' only).
    path("api/docs/", csp_update({"style-src": ["'self'", "'unsafe-inline'"]})(docs_view()), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    re_path(r"^.*$", errors.unmatched),  # last: the portal's own 404 page, also under DEBUG (the demo)
]
handler404 = errors.not_found
