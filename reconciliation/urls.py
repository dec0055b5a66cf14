from django.urls import path

from . import views

app_name = "reconciliation"
urlpatterns = [
    path("reconciliation/", views.queue, name="queue"),
    path("reconciliation/<int:pk>/", views.detail, name="detail"),
    path("reconciliation/<int:pk>/resolve/", views.resolve, name="resolve"),
    path("trusts/<str:ods_code>/reconciliation/", views.switches, name="switches"),
]
