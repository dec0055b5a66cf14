"""Staff image viewing pages and the endpoints the viewer calls (see exchange.viewing). Each request checks
that the user may still search the trust's PACS: losing the role stops the next image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts import permissions as perms
from audit.context import actor_from_request
from dicomkit import rendering, staged

from . import viewing
from .apis import trust_for_study_search
from .services import GatewayUnavailable


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


def _number(value: str | None) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise Http404("Window centre and width must be numbers.") from None


def viewer_context(base: str, presets: bool = True) -> dict:
    """URLs viewer.js needs, under one base path that serves manifest.json, image/, thumb/ and status."""
    return {
        "manifest_url": f"{base}manifest.json",
        "image_url_template": f"{base}image/{{sop}}/{{frame}}.png",
        "thumbnail_url_template": f"{base}thumb/{{sop}}.png",
        "status_url": f"{base}status",
        "presets": rendering.PRESETS if presets else {},
    }


@require_GET
def study_view(request: HttpRequest, ods_code: str, study_uid: str) -> HttpResponse:
    """The viewer over the portal's copy of the study; while the copy is made, a page that reloads itself.
    Who the study belongs to is looked up once per browser session (the reloads are not new accesses: the
    images themselves are audited as they are shown)."""
    from .views import chosen_studies

    trust = trust_for_study_search(request.user, ods_code)
    summaries, error = chosen_studies(request, trust, [study_uid], "view images")
    summary = summaries[0] if summaries else {}
    if not error and "patient_name" not in summary:
        raise Http404("No such study in this trust's PACS.")
    try:
        state = "failed" if error else viewing.view_request(trust=trust, study_uid=study_uid)
    except viewing.NotViewable as exc:
        raise Http404("No such study in this trust's PACS.") from exc
    detail = error or viewing.view_state(trust, study_uid)[1]
    base = reverse("exchange:study_view", args=[trust.ods_code, study_uid])
    context = {
        "trust": trust,
        "summary": summary,
        "state": state,
        "detail": detail,
        "back_url": reverse("exchange:study_detail", args=[trust.ods_code, study_uid]),
        **viewer_context(base),
    }
    return _no_store(render(request, "exchange/study_viewer.html", context))


def serve_folder(
    request: HttpRequest,
    *,
    folder: Callable[[], Path],
    note_view: Callable[[Path], None],
    what: str,
    sop: str = "",
    frame: int = 0,
) -> HttpResponse:
    """manifest.json, image, thumb or status of a flat folder of instances (a viewing copy or a held arrival)."""
    try:
        root = folder()
        if what == "status":
            return _no_store(JsonResponse({"ok": True}))
        if what == "manifest":
            return _no_store(JsonResponse(staged.manifest(root)))
        path = staged.instance_path(root, sop)
    except (ValueError, FileNotFoundError, viewing.NotViewable) as exc:
        raise Http404("No such image.") from exc
    try:
        if what == "thumb":
            data = rendering.thumbnail(path)
        else:
            data = rendering.render(
                path, frame, center=_number(request.GET.get("wc")), width=_number(request.GET.get("ww"))
            )
    except ValueError as exc:
        raise Http404(str(exc)) from exc
    note_view(path)
    return _no_store(HttpResponse(data, content_type="image/png"))


def _copy_endpoint(what: str):
    @require_GET
    def endpoint(request: HttpRequest, ods_code: str, study_uid: str, sop: str = "", frame: int = 0) -> HttpResponse:
        trust = trust_for_study_search(request.user, ods_code)

        def folder() -> Path:
            if viewing.view_state(trust, study_uid)[0] != "ready":
                raise viewing.NotViewable(study_uid)
            return viewing.view_dir(trust, study_uid)

        def note(path: Path) -> None:
            viewing.note_series_viewed(
                request.session, trust=trust, study_uid=study_uid, path=path, actor=actor_from_request(request)
            )

        return serve_folder(request, folder=folder, note_view=note, what=what, sop=sop, frame=frame)

    return endpoint


study_view_manifest = _copy_endpoint("manifest")
study_view_image = _copy_endpoint("image")
study_view_thumb = _copy_endpoint("thumb")
study_view_status = _copy_endpoint("status")


@require_GET
def study_thumbnail(request: HttpRequest, ods_code: str, study_uid: str) -> HttpResponse:
    """The small picture beside a study in search results and on request and transfer pages."""
    trust = trust_for_study_search(request.user, ods_code)
    perms.require(perms.may_search_studies(request.user, trust.pk))
    try:
        data, path = viewing.study_thumbnail(trust, study_uid)
    except viewing.NotViewable as exc:
        raise Http404("No image for this study.") from exc
    except GatewayUnavailable:
        return _no_store(HttpResponse(status=503))
    viewing.note_series_viewed(
        request.session,
        trust=trust,
        study_uid=study_uid,
        path=path,
        actor=actor_from_request(request),
        what="thumbnail",
    )
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, max-age=600"
    return response
