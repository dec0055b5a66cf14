from django.apps import AppConfig


class ManifestsConfig(AppConfig):
    name = "manifests"
    verbose_name = "Manifests for the region (XDS-I.b, FHIR)"

    def ready(self) -> None:
        from transfers.signals import transfer_ended

        from .receivers import manifest_on_transfer_end

        transfer_ended.connect(manifest_on_transfer_end, dispatch_uid="manifests.manifest_on_transfer_end")
