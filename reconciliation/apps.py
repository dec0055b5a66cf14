from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    verbose_name = "Reconciliation on arrival"

    def ready(self) -> None:
        from transfers import stages

        from .services import ArrivalReconciliation

        stages.register(ArrivalReconciliation())
