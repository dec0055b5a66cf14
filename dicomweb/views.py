"""The DICOMweb endpoints (QIDO-RS, WADO-RS; STOW-RS in dicomweb.stow): resolve the caller's scope,
read the staged copy through its index, shape the answer. docs/dicomweb.md is the conformance note.

Every answer is `no-store` and sends no referrer; an error carries no data, only `{"detail": ...}`.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from pathlib import Path

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from dicomkit import qido, rendering, webindex
from sharing.access import Denied

from . import media, scopes
from .scopes import Scope

ROOT_BYTES = webindex.ROOT.encode()
ANSWERS_KEPT = 64
_answers: dict[tuple, tuple[list[webindex.Index], bytes]] = {}
_answers_lock = threading.Lock()
THUMBNAIL_SIZE = 128
MAX_FRAMES_PER_REQUEST = 1000


def _error(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"detail": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="dicomweb"'
    return response


def dicomweb_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Resolve the scope from the URL (a trust's for staff, the link's otherwise), answer Denied and bad
    queries as errors, and set the headers every answer carries."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, ods_code: str | None = None, **kwargs) -> HttpResponse:
        try:
            if ods_code is not None:
                scope = scopes.staff_scope(
                    request, request.build_absolute_uri(f"/dicomweb/trusts/{ods_code}"), ods_code
                )
            else:
                scope = scopes.link_scope(request, request.build_absolute_uri("/dicomweb"))
            response = view(request, scope, *args, **kwargs)
        except Denied as denied:
            response = _error(denied.status, denied.message)
        except qido.QueryError as exc:
            response = _error(400, str(exc))
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "no-referrer"
        response._has_been_logged = True  # type: ignore[attr-defined] # our request log line says it
        return response

    return csrf_exempt(wrapper)


def _not_found() -> Denied:
    return Denied(404, "Not found", "No such study, series or instance here.")


def _selected(scope: Scope, study: str, series: str | None = None, sop: str | None = None) -> list[webindex.Entry]:
    if sop is not None:
        found = scope.located(sop)
        if found is None or found[1].study != study or (series is not None and found[1].series != series):
            raise _not_found()
        return [found[1]]
    entries = scope.entries(study, series)
    if not entries:
        raise _not_found()
    return entries


def _note(scope: Scope, entries: list[webindex.Entry]) -> None:
    seen = set()
    for entry in entries:
        if entry.series not in seen:
            seen.add(entry.series)
            scope.note_series(entry)


def _index_of(scope: Scope, entry: webindex.Entry) -> webindex.Index:
    located = scope.located(entry.sop)
    assert located is not None  # noqa: S101 - entries come from the scope
    return located[0]


# --- QIDO-RS -------------------------------------------------------------------------------------------


def _search(request: HttpRequest, scope: Scope, level: str, study: str | None, series: str | None) -> HttpResponse:
    if request.method != "GET":
        return _error(405, "Use GET to search.")
    if not media.accepts_json(request.headers.get("Accept")):
        return _error(406, "Search results are application/dicom+json.")
    params = [(k, v) for k, values in request.GET.lists() for v in values]
    query = qido.parse(params)
    # The same search over the same unchanged copies gives the same answer (viewers repeat theirs): keep
    # a few answers, keyed on the index objects themselves (a changed folder gets a new index).
    indexes = scope.indexes()
    key = (tuple(id(i) for i in indexes), scope.root, tuple(sorted(scope.studies or ())), level, study, series)
    key += (tuple(sorted(params)),)
    cached = _answers.get(key)
    if cached is not None and all(a is b for a, b in zip(cached[0], indexes, strict=True)):
        return HttpResponse(cached[1], content_type="application/dicom+json")
    entries = scope.entries(study, series)
    if study is not None and not entries:
        raise _not_found()
    by_study: dict[str, list[webindex.Entry]] = {}
    if level != "studies":  # study-level counts come with series and instances, over the whole study
        for entry in scope.entries(study):
            by_study.setdefault(entry.study, []).append(entry)
    found = qido.search(level, qido.records(level, entries, root=scope.root, study_entries=by_study), query)
    body = json.dumps(found, separators=(",", ":")).encode()
    with _answers_lock:
        _answers[key] = (indexes, body)
        while len(_answers) > ANSWERS_KEPT:
            _answers.pop(next(iter(_answers)))
    return HttpResponse(body, content_type="application/dicom+json")


@dicomweb_view
def studies(request: HttpRequest, scope: Scope) -> HttpResponse:
    if request.method == "POST":
        from .stow import stow

        return stow(request, scope, None)
    return _search(request, scope, "studies", None, None)


@dicomweb_view
def search_series(request: HttpRequest, scope: Scope, study: str | None = None) -> HttpResponse:
    return _search(request, scope, "series", study, None)


@dicomweb_view
def search_instances(request: HttpRequest, scope: Scope, study: str | None = None, series: str | None = None):
    return _search(request, scope, "instances", study, series)


# --- WADO-RS ---------------------------------------------------------------------------------------------


@dicomweb_view
def study(request: HttpRequest, scope: Scope, study: str) -> HttpResponse:
    if request.method == "POST":
        from .stow import stow

        return stow(request, scope, study)
    return _retrieve(request, scope, _selected(scope, study))


@dicomweb_view
def retrieve(request: HttpRequest, scope: Scope, study: str, series: str, sop: str | None = None) -> HttpResponse:
    return _retrieve(request, scope, _selected(scope, study, series, sop))


def _retrieve(request: HttpRequest, scope: Scope, entries: list[webindex.Entry]) -> HttpResponse:
    """Whole instances, as stored when the client takes their transfer syntax, else in Explicit VR Little
    Endian (decompressed if need be); 406 when it takes neither."""
    accept = request.headers.get("Accept")
    plans = []
    for entry in entries:
        chosen = media.choose(
            accept,
            [("application/dicom", entry.transfer_syntax), ("application/dicom", media.EXPLICIT_LE)],
            default_ts=media.EXPLICIT_LE,
        )
        if chosen is None:
            return _error(
                406,
                f"Instances are served as stored ({entry.transfer_syntax}) or in {media.EXPLICIT_LE}.",
            )
        plans.append((entry, chosen[1]))
    _note(scope, entries)
    if len(plans) == 1 and _single_part_wanted(accept, "application/dicom"):
        entry, ts = plans[0]
        path = _index_of(scope, entry).path(entry)
        if ts == entry.transfer_syntax:
            return FileResponse(open(path, "rb"), content_type="application/dicom")
        return HttpResponse(media.as_explicit_little_endian(path), content_type="application/dicom")
    body = media.Multipart("application/dicom")
    for entry, ts in plans:
        path = _index_of(scope, entry).path(entry)
        content: bytes | Path = path if ts == entry.transfer_syntax else media.as_explicit_little_endian(path)
        location = f"{scope.root}/studies/{entry.study}/series/{entry.series}/instances/{entry.sop}"
        body.add(content, f"application/dicom; transfer-syntax={ts}", location)
    return body.response()


def _single_part_wanted(accept: str | None, media_type: str) -> bool:
    wanted = media.ranges(accept)
    return all(r.media != "multipart/related" for r in wanted) and any(r.media == media_type for r in wanted)


@dicomweb_view
def metadata(
    request: HttpRequest, scope: Scope, study: str, series: str | None = None, sop: str | None = None
) -> HttpResponse:
    """From the index made at staging: no file is read."""
    if not media.accepts_json(request.headers.get("Accept")):
        return _error(406, "Metadata is application/dicom+json.")
    entries = _selected(scope, study, series, sop)
    _note(scope, entries)
    body = b"[" + b",".join(e.encoded for e in entries) + b"]"
    return HttpResponse(body.replace(ROOT_BYTES, scope.root.encode()), content_type="application/dicom+json")


def _frame_offers(entry: webindex.Entry) -> list[tuple[str, str, bool]]:
    """(media type, transfer syntax, whether to decode) we can send a frame of `entry` as, best first."""
    pixels, ts = entry.pixels, entry.transfer_syntax
    decoded = ("application/octet-stream", media.EXPLICIT_LE, True)
    if pixels is not None and pixels.mode == "native" and ts in media.NATIVE:
        return [("application/octet-stream", media.EXPLICIT_LE, False)]
    if pixels is not None and pixels.mode == "encapsulated" and ts in media.FRAME_MEDIA_TYPES:
        return [(media.FRAME_MEDIA_TYPES[ts], ts, False), ("application/octet-stream", ts, False), decoded]
    return [decoded]


def _frame_numbers(text: str, entry: webindex.Entry) -> list[int]:
    numbers = [int(n) for n in text.split(",")]
    if len(numbers) > MAX_FRAMES_PER_REQUEST or not all(1 <= n <= entry.frames for n in numbers):
        raise Denied(404, "Not found", "No such frame.")
    return numbers


@dicomweb_view
def frames(request: HttpRequest, scope: Scope, study: str, series: str, sop: str, frames: str) -> HttpResponse:
    """Frames as stored when the client takes that (native as octet-stream, compressed in their own media
    type or as octet-stream naming the transfer syntax), else decoded to native bytes."""
    (entry,) = _selected(scope, study, series, sop)
    if entry.pixels is None:
        return _error(404, "This instance has no pixel data.")
    numbers = _frame_numbers(frames, entry)
    offers = _frame_offers(entry)
    chosen = media.choose(request.headers.get("Accept"), [(m, ts) for m, ts, _ in offers], default_ts=media.EXPLICIT_LE)
    if chosen is None:
        return _error(406, f"Frames are served as {', '.join(sorted({m for m, _, _ in offers}))}.")
    decode = next(d for m, ts, d in offers if (m, ts) == chosen)
    index = _index_of(scope, entry)
    scope.note_series(entry)
    body = media.Multipart(chosen[0], chosen[1])
    for number in numbers:
        if decode:
            data = media.decoded_frame(index.path(entry), number, entry.frames)
        else:
            data = webindex.frame_bytes(index, entry, number)
        body.add(data, f"{chosen[0]}; transfer-syntax={chosen[1]}")
    return body.response()


@dicomweb_view
def bulkdata(request: HttpRequest, scope: Scope, study: str, series: str, sop: str, tag: str) -> HttpResponse:
    (entry,) = _selected(scope, study, series, sop)
    index = _index_of(scope, entry)
    accept = request.headers.get("Accept")
    scope.note_series(entry)
    if tag.upper() == "7FE00010" and entry.pixels is not None and entry.pixels.mode == "encapsulated":
        body = media.Multipart(media.FRAME_MEDIA_TYPES.get(entry.transfer_syntax, "application/octet-stream"))
        for number in range(1, entry.frames + 1):
            body.add(
                webindex.frame_bytes(index, entry, number), f"{body.part_type}; transfer-syntax={entry.transfer_syntax}"
            )
        return body.response()
    try:
        data = (
            webindex.pixel_value(index, entry)
            if tag.upper() == "7FE00010"
            else webindex.element_value(index, entry, tag)[1]
        )
    except LookupError:
        raise _not_found() from None
    if _single_part_wanted(accept, "application/octet-stream"):
        return HttpResponse(data, content_type="application/octet-stream")
    body = media.Multipart("application/octet-stream")
    body.add(data, "application/octet-stream")
    return body.response()


# --- rendered and thumbnails -------------------------------------------------------------------------------


def _image_format(request: HttpRequest) -> str | None:
    chosen = media.choose(request.headers.get("Accept"), [("image/jpeg", ""), ("image/png", "")], default_ts="")
    return None if chosen is None else ("jpg" if chosen[0] == "image/jpeg" else "png")


def _window(request: HttpRequest) -> tuple[float | None, float | None]:
    value = request.GET.get("window")
    if not value:
        return None, None
    try:
        center, width = (float(v) for v in value.split(",")[:2])
    except ValueError:
        raise qido.QueryError("window is center,width[,function].") from None
    return center, width


def _viewport(request: HttpRequest, default: int | None) -> int | None:
    value = request.GET.get("viewport")
    if not value:
        return default
    try:
        sizes = [int(v) for v in value.split(",")[:2] if v]
    except ValueError:
        raise qido.QueryError("viewport is width,height.") from None
    return max(sizes) if sizes else default


def _render(request: HttpRequest, scope: Scope, entry: webindex.Entry, frame: int, size: int | None) -> HttpResponse:
    fmt = _image_format(request)
    if fmt is None:
        return _error(406, "Rendered images are image/jpeg or image/png.")
    if entry.pixels is None or not 1 <= frame <= entry.frames:
        return _error(404, "No such frame, or this instance is not an image.")
    center, width = _window(request)
    try:
        data = rendering.render(
            _index_of(scope, entry).path(entry),
            frame - 1,
            center=center,
            width=width,
            max_size=_viewport(request, size),
            fmt=fmt,
        )
    except ValueError as exc:
        return _error(400, str(exc))
    scope.note_series(entry)
    return HttpResponse(data, content_type="image/jpeg" if fmt == "jpg" else "image/png")


def _representative(entries: list[webindex.Entry]) -> webindex.Entry:
    """The middle image of the first series that has images (what a thumbnail of a study or series shows)."""
    images = [e for e in entries if e.pixels is not None]
    if not images:
        raise Denied(404, "Not found", "There is no image to show here.")
    first_series = [e for e in images if e.series == images[0].series]
    return first_series[len(first_series) // 2]


@dicomweb_view
def rendered(
    request: HttpRequest, scope: Scope, study: str, series: str, sop: str, frame: int | None = None
) -> HttpResponse:
    (entry,) = _selected(scope, study, series, sop)
    return _render(request, scope, entry, frame or 1, None)


@dicomweb_view
def thumbnail(
    request: HttpRequest,
    scope: Scope,
    study: str,
    series: str | None = None,
    sop: str | None = None,
    frame: int | None = None,
) -> HttpResponse:
    entries = _selected(scope, study, series, sop)
    entry = entries[0] if sop is not None else _representative(entries)
    return _render(request, scope, entry, frame or max(entry.frames // 2, 1), THUMBNAIL_SIZE)
