from django.urls import path

from . import views

app_name = "region"
urlpatterns = [
    path("region/forwarding/", views.forwarding_rules, name="forwarding"),
    path("region/forwarding/<int:pk>/", views.forwarding_rule_switch, name="forwarding_switch"),
    path("region/migrations/", views.migration_list, name="migrations"),
    path("region/migrations/<int:pk>/", views.migration_detail, name="migration"),
]
