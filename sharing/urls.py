from django.urls import path

from portal import converters  # noqa: F401 - registers the uid and imgfmt converters

from . import link_views, views

app_name = "sharing"
urlpatterns = [
    # Staff
    path("share-links/", views.share_link_list, name="list"),
    path("share-links/<int:pk>/", views.share_link_detail, name="detail"),
    path("share-links/<int:pk>/created/", views.share_link_created, name="created"),
    path("share-links/<int:pk>/revoke/", views.share_link_revoke, name="revoke"),
    path("share-links/<int:pk>/write-backs/<int:write_back_id>/file/", views.write_back_file, name="write_back_file"),
    path("trusts/<str:ods_code>/share-links/new/", views.share_link_new, name="new"),
    # The consultant (link session). Fixed paths first: a token never looks like them (no dot, 43 chars).
    path("s/", link_views.viewer, name="viewer"),
    path("s/code/", link_views.code, name="code"),
    path("s/manifest.json", link_views.manifest, name="manifest"),
    path("s/image/<uid:sop>/<int:frame>.<imgfmt:fmt>", link_views.image, name="image"),
    path("s/thumb/<uid:sop>.png", link_views.thumb, name="thumb"),
    path("s/opinion/", link_views.opinion, name="opinion"),
    path("s/status", link_views.status, name="status"),
    path("s/download.zip", link_views.download, name="download"),
    path("s/dicomweb/", link_views.dicomweb_access, name="dicomweb"),
    path("s/<str:token>", link_views.open_link, name="open"),
]
