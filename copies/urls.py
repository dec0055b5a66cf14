from django.urls import path

from . import views

app_name = "copies"

urlpatterns = [
    path("copies/", views.register, name="register"),
    path("copies/correct/", views.correct, name="correct"),
    path("copies/corrections/", views.corrections, name="corrections"),
    path("copies/deliveries/<int:pk>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("copies/deliveries/<int:pk>/resend/", views.resend, name="resend"),
    path("copies/mapping/<str:ods_code>/", views.mapping, name="mapping"),
    path("copies/mapping/<str:ods_code>/<int:pk>/delete/", views.mapping_delete, name="mapping_delete"),
]
