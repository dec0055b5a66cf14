from django.urls import path

from portal import converters  # noqa: F401 - registers the uid and imgfmt converters

from . import views

app_name = "reconciliation"
urlpatterns = [
    path("reconciliation/", views.queue, name="queue"),
    path("reconciliation/<int:pk>/", views.detail, name="detail"),
    path("reconciliation/<int:pk>/resolve/", views.resolve, name="resolve"),
    path("reconciliation/<int:pk>/view/", views.held_view, name="view"),
    path("reconciliation/<int:pk>/view/manifest.json", views.held_manifest),
    path("reconciliation/<int:pk>/view/status", views.held_status),
    path("reconciliation/<int:pk>/view/image/<uid:sop>/<int:frame>.png", views.held_image),
    path("reconciliation/<int:pk>/view/thumb/<uid:sop>.png", views.held_thumb),
    path("trusts/<str:ods_code>/reconciliation/", views.switches, name="switches"),
]
