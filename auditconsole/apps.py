from django.apps import AppConfig


class AuditConsoleConfig(AppConfig):
    name = "auditconsole"
    verbose_name = "Audit console"
