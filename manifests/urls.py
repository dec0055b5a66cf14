"""/fhir/: the region's read-only FHIR R4 API (docs/fhir.md)."""

from django.urls import path, re_path

from . import fhir_api

app_name = "fhir"
urlpatterns = [
    path("fhir/metadata", fhir_api.CapabilityView.as_view(), name="metadata"),
    path("fhir/ImagingStudy", fhir_api.ImagingStudySearchView.as_view(), name="imagingstudy-search"),
    path("fhir/ImagingStudy/<str:pk>", fhir_api.ImagingStudyReadView.as_view(), name="imagingstudy-read"),
    path("fhir/Binary/<str:pk>", fhir_api.BinaryReadView.as_view(), name="binary-read"),
    re_path(r"^fhir/.*$", fhir_api.UnknownView.as_view(), name="unknown"),
]
