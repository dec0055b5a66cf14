from django.apps import AppConfig


class CopiesConfig(AppConfig):
    name = "copies"
    verbose_name = "Copies, corrections and coercion"

    def ready(self) -> None:
        from transfers import signals, stages

        from .coercion import ArrivalCoercion
        from .services import on_transfer_ended
        from .stage import CopyNote

        stages.register(ArrivalCoercion(), order=10)  # before reconciliation: held files wait coerced
        stages.register(CopyNote(), order=90)  # after every change: the identity the holder's copy carries
        signals.transfer_recorded.connect(on_transfer_ended, dispatch_uid="copies.on_transfer_recorded")
