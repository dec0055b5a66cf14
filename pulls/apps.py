from django.apps import AppConfig


class PullsConfig(AppConfig):
    name = "pulls"
    verbose_name = "Requests (pull)"

    def ready(self) -> None:
        from transfers.signals import transfer_ended

        from .receivers import announce_arrival

        transfer_ended.connect(announce_arrival, dispatch_uid="pulls.announce_arrival")
