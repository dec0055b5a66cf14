"""Path converters every app's URLs share, registered once when this module is first imported."""

from django.urls import register_converter


class DicomUID:
    """A DICOM UID: digits in dot-separated groups."""

    regex = r"[0-9]+(?:\.[0-9]+)*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class ImageFormat:
    regex = r"png|jpg"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(DicomUID, "uid")
register_converter(ImageFormat, "imgfmt")
