"""What the external consultant's browser reaches, under /s/. No account: the link's own session.

Every view re-reads the link (access.require_session) before serving anything, so revocation and expiry
take effect on the next request, each image and frame included. Every response is `no-store`, sends no
referrer and carries a strict Content-Security-Policy (`link_page`).
"""

from __future__ import annotations

import functools
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from csp.decorators import csp_replace
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from dicomkit import rendering, staged

from . import access, capabilities, services
from .access import Denied
from .forms import CodeForm, OpinionForm
from .staging import share_dir

# Tighter than the portal's own policy: nothing from elsewhere, no plugins, no framing, no <base>.
LINK_CSP = {
    "default-src": ["'none'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "blob:", "data:"],
    "connect-src": ["'self'"],
    "font-src": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
    "object-src": ["'none'"],
}


def plain(request: HttpRequest, denied: Denied) -> HttpResponse:
    response = render(
        request, "sharing/link/plain.html", {"title": denied.title, "message": denied.message}, status=denied.status
    )
    if denied.status == 503:
        response["Retry-After"] = "30"
    return response


def link_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Headers for every share-link response, and a Denied turned into its plain page."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
        except Denied as denied:
            response = plain(request, denied)
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "no-referrer"
        response["X-Robots-Tag"] = "noindex, nofollow"
        return response

    return csp_replace(LINK_CSP)(wrapper)


def _set_cookie(response: HttpResponse, key: str) -> None:
    response.set_cookie(
        settings.SHARE_LINK_COOKIE_NAME,
        key,
        path="/",  # `__Host-` requires Path=/ and no Domain
        secure=settings.SHARE_LINK_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )


@link_page
@csrf_exempt  # the token in the address is the unguessable part; see open_link's docstring
@require_http_methods(["GET", "POST"])
def open_link(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link. A GET only shows a page with a button (scanners and previews open links before
    people do, and must spend nothing); the button's POST exchanges the token for a session cookie,
    emails the code and leaves the token's URL at once.

    No CSRF token: the POST carries the link token in its address, which a forging site would need to
    know, and the session it makes is the poster's own."""
    try:
        if request.method == "GET":
            link = access.link_for_token(request, token)
            if access.holds_session_of(request, link):
                response = HttpResponseRedirect(reverse("sharing:viewer"))
            else:
                response = render(request, "sharing/link/landing.html", {"link": link})
        else:
            key = access.open_link(request, token)
            response = HttpResponseRedirect(reverse("sharing:viewer"))
            if key:
                _set_cookie(response, key)
    except Denied as denied:
        response = plain(request, denied)
    # Django would log a 4xx here with the path, token and all; our request log line redacts it instead.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


@link_page
@require_GET
def viewer(request: HttpRequest) -> HttpResponse:
    session = access.require_session(request, verified=False)
    if not session.verified_at:
        return HttpResponseRedirect(reverse("sharing:code"))
    link = session.link
    context = {
        "link": link,
        "manifest_url": reverse("sharing:manifest"),
        "image_url_template": "/s/image/{sop}/{frame}.png",
        "thumbnail_url_template": "/s/thumb/{sop}.png",
        "opinion_url": reverse("sharing:opinion"),
        "status_url": reverse("sharing:status"),
        "download_url": reverse("sharing:download") if link.allow_download else None,
        "advanced_viewer_url": "/ohif/s/viewer?StudyInstanceUIDs=" + ",".join(link.study_instance_uids),
        "own_viewer_url": reverse("sharing:dicomweb"),
        "presets": rendering.PRESETS,
    }
    return render(request, "sharing/viewer.html", context)


@link_page
@csrf_exempt  # access.check_form_token instead: see its docstring
@require_http_methods(["GET", "POST"])
def code(request: HttpRequest) -> HttpResponse:
    session = access.require_session(request, verified=False)
    if request.method == "POST":
        access.check_form_token(request)
    if session.verified_at:
        return HttpResponseRedirect(reverse("sharing:viewer"))
    form = CodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and "resend" in request.POST:
        sent = access.send_code_if_needed(session.link, force=True)
        form = CodeForm()
        message = "A new code is on its way." if sent else "A code was sent under a minute ago; please wait for it."
        return render(
            request,
            "sharing/link/code.html",
            {"share_form_token": access.form_token(request), "form": form, "link": session.link, "notice": message},
        )
    if request.method == "POST" and form.is_valid():
        if access.verify_code(request, session, form.cleaned_data["code"]):
            return HttpResponseRedirect(reverse("sharing:viewer"))
        session.link.refresh_from_db()
        if session.link.locked_at:
            raise Denied(410, "Link no longer available", access.GONE["locked"])
        form.add_error("code", "That code is not right, or it has expired. Check the latest email from us.")
        status = 400
    return render(
        request,
        "sharing/link/code.html",
        {"share_form_token": access.form_token(request), "form": form, "link": session.link},
        status=status,
    )


def _folder(session) -> Path:
    return share_dir(session.link_id)


@link_page
@require_GET
def manifest(request: HttpRequest) -> HttpResponse:
    session = access.require_session(request)
    return JsonResponse(staged.manifest(_folder(session)))


def _instance(session, sop: str) -> Path:
    """The staged file, or 404: the staged folder holds the link's studies and nothing else (its scope)."""
    try:
        path = staged.instance_path(_folder(session), sop)
    except ValueError:
        raise Denied(404, "Not found", "No such image.") from None
    if not path.is_file():
        raise Denied(404, "Not found", "No such image.")
    return path


def _number(value: str | None) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise Denied(400, "Bad request", "Window centre and width must be numbers.") from None


@link_page
@require_GET
def image(request: HttpRequest, sop: str, frame: int, fmt: str) -> HttpResponse:
    session = access.require_session(request)
    path = _instance(session, sop)
    try:
        data = rendering.render(
            path, frame, center=_number(request.GET.get("wc")), width=_number(request.GET.get("ww")), fmt=fmt
        )
    except ValueError as exc:
        raise Denied(400, "Bad request", str(exc)) from None
    access.note_series_viewed(request, session, path)
    return HttpResponse(data, content_type="image/png" if fmt == "png" else "image/jpeg")


@link_page
@require_GET
def thumb(request: HttpRequest, sop: str) -> HttpResponse:
    session = access.require_session(request)
    path = _instance(session, sop)
    try:
        data = rendering.thumbnail(path)
    except ValueError as exc:
        raise Denied(400, "Bad request", str(exc)) from None
    access.note_series_viewed(request, session, path)  # a thumbnail shows the series as well
    return HttpResponse(data, content_type="image/png")


@link_page
@require_GET
def download(request: HttpRequest) -> HttpResponse:
    session = access.require_session(request)
    link = session.link
    if not link.allow_download:
        raise Denied(403, "Download not allowed", "The person who shared these images did not allow downloading.")
    # A temporary file, not memory: a study can be hundreds of megabytes.
    spooled = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it
    with zipfile.ZipFile(spooled, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(_folder(session).glob("*.dcm")):
            archive.write(path, f"DICOM/{path.name}")
    spooled.seek(0)
    access.accessed(request, link, "download")
    return FileResponse(spooled, as_attachment=True, filename="images.zip", content_type="application/zip")


@link_page
@csrf_exempt  # access.check_form_token instead: see its docstring
@require_http_methods(["GET", "POST"])
def opinion(request: HttpRequest) -> HttpResponse:
    """The opinion form; once sent, this page shows what was sent (a second visit no longer meets an empty
    form as if nothing had been sent), with the choice to add a further opinion."""
    session = access.require_session(request)
    if request.method == "POST":
        access.check_form_token(request)
    link = session.link
    form = OpinionForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            services.opinion_submit(link=link, actor=access.link_actor(request, link), **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
                form.add_error(field if field in form.fields else None, errors)
            status = 400
        else:
            return HttpResponseRedirect(reverse("sharing:opinion") + "?sent=1")  # a reload sends nothing again
    elif request.method == "POST":
        status = 400
    sent = list(link.opinions.order_by("created_at"))
    if request.method == "GET" and sent and request.GET.get("another") != "1":
        return render(request, "sharing/link/opinion_sent.html", {"link": link, "sent": sent})
    return render(
        request,
        "sharing/link/opinion.html",
        {"share_form_token": access.form_token(request), "form": form, "link": link},
        status=status,
    )


@link_page
@require_GET
def status(request: HttpRequest) -> HttpResponse:
    """Whether the viewer may go on showing images: 200, or the refusal (410 for a revoked or expired link)
    as JSON, so an open viewer says why on its next image instead of keeping the last one on screen."""
    try:
        access.require_session(request)
    except Denied as denied:
        return JsonResponse({"ok": False, "title": denied.title, "message": denied.message}, status=denied.status)
    return JsonResponse({"ok": True})


@csrf_exempt  # access.check_form_token instead: see its docstring
@require_http_methods(["GET", "POST"])
def dicomweb_access(request: HttpRequest) -> HttpResponse:
    """For the consultant's own viewer (Weasis, 3D Slicer, a script): the DICOMweb root and, on the
    button's POST, a bearer token shown once (docs/dicomweb.md)."""
    session = access.require_session(request)
    context = {
        "link": session.link,
        "root": request.build_absolute_uri("/dicomweb"),
        "share_form_token": access.form_token(request),
    }
    if request.method == "POST":
        access.check_form_token(request)
        try:
            context["token"], context["token_row"] = capabilities.token_mint(request, session)
        except ValidationError as exc:
            context["error"] = " ".join(exc.messages)
    return render(request, "sharing/link/dicomweb.html", context, status=400 if "error" in context else 200)
