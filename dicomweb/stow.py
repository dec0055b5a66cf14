"""STOW-RS into review (PS3.18 10.5): a link that allows write-back takes the consultant's SR, key object
selections and segmentations into a review area (sharing.writeback); nothing reaches the source PACS
until the link's creator files it. The answer names every object stored and every one refused, with a
FailureReason code; refusals' reasons also go in Warning headers."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from dicomkit import multipart
from dicomkit.errors import ProtocolError
from sharing import access, writeback

from .scopes import Scope

READ_CHUNK = 256 * 1024


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"detail": message}, status=status)


def stow(request: HttpRequest, scope: Scope, study_in_url: str | None) -> HttpResponse:
    if not scope.may_write or scope.link is None:
        return _error(403, "This link does not take objects back; ask the person who shared it.")
    content_type = request.headers.get("Content-Type", "")
    try:
        boundary = multipart.boundary_of(content_type)
    except ProtocolError:
        return _error(415, 'Send multipart/related; type="application/dicom".')
    length = int(request.headers.get("Content-Length") or 0)
    if length > settings.DICOMWEB_STOW_MAX_BYTES:
        return _error(413, f"At most {settings.DICOMWEB_STOW_MAX_BYTES} bytes in one request.")
    incoming = Path(settings.SPOOL_DIR) / "review" / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    actor = access.link_actor(request, scope.link)
    results = []
    try:
        for path in _parts(request, boundary, incoming):
            results.append(
                writeback.writeback_receive(link=scope.link, path=path, study_in_url=study_in_url, actor=actor)
            )
    except ProtocolError as exc:
        return _error(400, f"The multipart body could not be read: {exc}")
    return _answer(results)


def _parts(request: HttpRequest, boundary: str, folder: Path):
    """Each part of the body written to its own file as it arrives (an object is never held in memory)."""
    chunks = iter(lambda: request.read(READ_CHUNK), b"")
    current = None
    for kind, value in multipart.iter_events(chunks, boundary):
        if kind == "headers":
            current = tempfile.NamedTemporaryFile(dir=folder, suffix=".dcm", delete=False)  # noqa: SIM115
        elif kind == "data" and current is not None:
            current.write(value)
        elif kind == "end" and current is not None:
            current.close()
            yield Path(current.name)
            current = None


def _answer(results: list[writeback.Received]) -> HttpResponse:
    stored = [r for r in results if r.failure is None]
    failed = [r for r in results if r.failure is not None]
    body: dict = {}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": [_reference(r) for r in stored]}
    if failed:
        body["00081198"] = {
            "vr": "SQ",
            "Value": [{**_reference(r), "00081197": {"vr": "US", "Value": [r.failure]}} for r in failed],
        }
    status = 200 if not failed else 409 if not stored else 202
    response = JsonResponse(body, status=status, content_type="application/dicom+json")
    if failed:
        warnings = [
            f'299 portal "{r.sop_instance_uid or "?"}: {r.reason.replace(chr(34), chr(39))}"' for r in failed[:10]
        ]
        response["Warning"] = ", ".join(warnings)
    return response


def _reference(received: writeback.Received) -> dict:
    item = {}
    if received.sop_class_uid:
        item["00081150"] = {"vr": "UI", "Value": [received.sop_class_uid]}
    if received.sop_instance_uid:
        item["00081155"] = {"vr": "UI", "Value": [received.sop_instance_uid]}
    return item
