from django.contrib.auth.decorators import login_required
from django.urls import path

from portal import converters  # noqa: F401 - registers the uid and imgfmt converters

from . import view_pages, views

app_name = "exchange"
study = "trusts/<str:ods_code>/studies/<str:study_uid>/"
urlpatterns = [
    path("studies/", views.study_search_home, name="study_search_home"),
    path("trusts/<str:ods_code>/studies/", views.study_search, name="study_search"),
    path(study, views.study_detail, name="study_detail"),
    path(f"{study}thumbnail.png", login_required(view_pages.study_thumbnail), name="study_thumbnail"),
    path(f"{study}view/", login_required(view_pages.study_view), name="study_view"),
    path(f"{study}view/manifest.json", login_required(view_pages.study_view_manifest), name="study_view_manifest"),
    path(f"{study}view/status", login_required(view_pages.study_view_status), name="study_view_status"),
    path(f"{study}view/image/<uid:sop>/<int:frame>.png", login_required(view_pages.study_view_image)),
    path(f"{study}view/thumb/<uid:sop>.png", login_required(view_pages.study_view_thumb)),
    path("gateways/<int:pk>/echo/", views.gateway_echo, name="gateway_echo"),
    path("receiver/", views.receiver_activity, name="receiver_activity"),
]
