from django.urls import path

from . import views

app_name = "exchange"
urlpatterns = [
    path("studies/", views.study_search_home, name="study_search_home"),
    path("trusts/<str:ods_code>/studies/", views.study_search, name="study_search"),
    path("trusts/<str:ods_code>/studies/<str:study_uid>/", views.study_detail, name="study_detail"),
    path("gateways/<int:pk>/echo/", views.gateway_echo, name="gateway_echo"),
    path("receiver/", views.receiver_activity, name="receiver_activity"),
]
