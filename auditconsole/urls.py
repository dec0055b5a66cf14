from django.urls import path

from . import views

app_name = "audit"
urlpatterns = [
    path("", views.search, name="search"),
    path("patients/", views.patient_report, name="patient_report"),
    path("users/", views.user_report, name="user_report"),
    path("events/<int:seq>/", views.event_detail, name="event_detail"),
    path("alerts/", views.alert_list, name="alerts"),
    path("alerts/<int:pk>/", views.alert_detail, name="alert_detail"),
    path("verify/", views.verify, name="verify"),
]
