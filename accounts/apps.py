from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self) -> None:
        from audit import alerts

        from . import (
            permissions,
            receivers,  # noqa: F401  (connects the sign-in audit receivers)
        )

        alerts.register_audience(lambda ods_code: permissions.emails(permissions.audit_alert_audience(ods_code)))
