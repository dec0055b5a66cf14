from django.urls import path

from . import views

app_name = "transfers"
urlpatterns = [
    path("transfers/", views.transfer_list, name="list"),
    path("transfers/operations/", views.transfer_operations, name="operations"),
    path("transfers/<int:pk>/", views.transfer_detail, name="detail"),
    path("transfers/<int:pk>/cancel/", views.transfer_cancel, name="cancel"),
    path("transfers/<int:pk>/retry/", views.transfer_retry, name="retry"),
    path("trusts/<str:ods_code>/transfers/new/", views.transfer_push, name="push"),
]
