from django.urls import path

from . import token_views

app_name = "accounts"
urlpatterns = [
    path("account/tokens/", token_views.token_list, name="tokens"),
    path("account/tokens/<int:pk>/revoke/", token_views.token_revoke, name="token_revoke"),
    path("account/service-accounts/", token_views.service_account_list, name="service_accounts"),
    path("account/service-accounts/<int:pk>/tokens/", token_views.service_account_token, name="service_account_token"),
]
