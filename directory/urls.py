from django.urls import path

from . import views

app_name = "directory"
urlpatterns = [
    path("directory/", views.trust_list, name="trust_list"),
    path("trusts/<str:ods_code>/", views.trust_detail, name="trust_detail"),
    path("trusts/<str:ods_code>/gateways/new/", views.gateway_create, name="gateway_create"),
    path("gateways/<int:pk>/edit/", views.gateway_edit, name="gateway_edit"),
]
