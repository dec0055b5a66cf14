from django.apps import AppConfig


class RegionConfig(AppConfig):
    """The region's archive: forwarding rules to it and bulk migrations between archives (docs/region.md)."""

    name = "region"

    def ready(self) -> None:
        from transfers.signals import transfer_ended

        from .forwarding import forward_arrival

        transfer_ended.connect(forward_arrival, dispatch_uid="region.forward_arrival")
