"""/dicomweb/ (a share link's scope) and /dicomweb/trusts/<ODS>/ (a member of staff's): the same resources
under both roots (docs/dicomweb.md). The advanced viewer's pages are in dicomweb.ohif."""

from django.urls import include, path, register_converter

from . import ohif, views


class _Uid:
    regex = r"[0-9]+(?:\.[0-9]+)*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class _FrameList(_Uid):
    regex = r"[0-9]{1,9}(?:,[0-9]{1,9})*"


class _Tag(_Uid):
    regex = r"[0-9A-Fa-f]{8}"


register_converter(_Uid, "dwuid")
register_converter(_FrameList, "framelist")
register_converter(_Tag, "dwtag")

INSTANCE = "studies/<dwuid:study>/series/<dwuid:series>/instances/<dwuid:sop>"
resources = [
    path("studies", views.studies),
    path("series", views.search_series),
    path("instances", views.search_instances),
    path("studies/<dwuid:study>", views.study),
    path("studies/<dwuid:study>/metadata", views.metadata),
    path("studies/<dwuid:study>/thumbnail", views.thumbnail),
    path("studies/<dwuid:study>/series", views.search_series),
    path("studies/<dwuid:study>/instances", views.search_instances),
    path("studies/<dwuid:study>/series/<dwuid:series>", views.retrieve),
    path("studies/<dwuid:study>/series/<dwuid:series>/metadata", views.metadata),
    path("studies/<dwuid:study>/series/<dwuid:series>/thumbnail", views.thumbnail),
    path("studies/<dwuid:study>/series/<dwuid:series>/instances", views.search_instances),
    path(INSTANCE, views.retrieve),
    path(f"{INSTANCE}/metadata", views.metadata),
    path(f"{INSTANCE}/rendered", views.rendered),
    path(f"{INSTANCE}/thumbnail", views.thumbnail),
    path(f"{INSTANCE}/frames/<framelist:frames>", views.frames),
    path(f"{INSTANCE}/frames/<int:frame>/rendered", views.rendered),
    path(f"{INSTANCE}/frames/<int:frame>/thumbnail", views.thumbnail),
    path(f"{INSTANCE}/bulkdata/<dwtag:tag>", views.bulkdata),
]

app_name = "dicomweb"
urlpatterns = [
    path("dicomweb/trusts/<str:ods_code>/", include(resources)),
    path("dicomweb/", include(resources)),
    *ohif.urlpatterns,
]
