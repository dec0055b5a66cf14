"""The advanced viewer: OHIF's published build (`@ohif/app`, installed by frontend/ohif.py, never a CDN)
served by the portal, configured at run time to the caller's DICOMweb root.

OHIF's build expects to live at the site root: its bundles, chunks, workers and codecs are served from
there by WhiteNoise (WHITENOISE_ROOT = OHIF_DIR/dist, with OHIF's own index.html, app-config.js and
service-worker files left out). Its pages are ours: `/ohif/s/...` for a consultant (the link session's
cookie carries the authority: no token in any URL), `/ohif/trusts/<ODS>/...` for staff. Each page is
OHIF's index.html without its inline scripts, pointing at this module's app-config.js, under a CSP that
is relaxed for these pages only (OHIF_CSP; docs/dicomweb.md says why each directive is there).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from csp.decorators import csp_replace
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_http_methods

from exchange import viewing
from exchange.apis import trust_for_study_search
from sharing import access
from sharing.link_views import link_page

# What OHIF needs, and nothing more (the portal's own pages stay on the strict policy):
#   script-src 'wasm-unsafe-eval': the image codecs (JPEG, JPEG-LS, JPEG 2000, HTJ2K) are WebAssembly;
#   worker-src blob:: cornerstone starts decode and compute workers, some from blob: URLs;
#   style-src 'unsafe-inline': React components and the UI kit set inline styles;
#   img-src/connect-src blob: data:: thumbnails and decoded images are handed around as blob:/data: URLs.
OHIF_CSP = {
    "default-src": ["'none'"],
    "script-src": ["'self'", "'wasm-unsafe-eval'"],
    "worker-src": ["'self'", "blob:"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:", "blob:"],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'", "data:", "blob:"],
    "media-src": ["'self'", "blob:"],
    "manifest-src": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
    "object-src": ["'none'"],
    "form-action": ["'none'"],
}
_INLINE_SCRIPT = re.compile(r"<script>.*?</script>", re.DOTALL)
_DROPPED_TAGS = re.compile(
    r'<script[^>]*src="/(init-service-worker|app-config)\.js"[^>]*></script>|<link rel="manifest"[^>]*>'
)


class ViewerMissing(Exception):
    """The OHIF build is not installed (`make venv` installs it)."""


def _dist() -> Path:
    return Path(settings.OHIF_DIR)


@functools.lru_cache(maxsize=4)
def _page_template(index_mtime: float) -> str:
    source = _dist() / "index.html"
    html = source.read_text(encoding="utf-8")
    html = _INLINE_SCRIPT.sub("", html)
    html = _DROPPED_TAGS.sub("", html)
    boot = f'<script src="{static("ohif/boot.js")}"></script><script src="__CONFIG__"></script>'
    return html.replace("<title>", boot + "<title>", 1)


def page_html(config_url: str) -> str:
    """OHIF's index.html with no inline script, loading our boot script and this page's configuration."""
    source = _dist() / "index.html"
    if not source.exists():
        raise ViewerMissing(str(source))
    return _page_template(source.stat().st_mtime).replace("__CONFIG__", config_url)


def app_config(*, root: str, basename: str, name: str, writable: bool) -> dict:
    """OHIF's `window.config`: one DICOMweb data source, this caller's root; no study list, no other
    source, nothing loaded by URL parameters."""
    return {
        "routerBasename": basename,
        "showStudyList": False,
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 10},
        "defaultDataSourceName": "portal",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "portal",
                "configuration": {
                    "friendlyName": name,
                    "name": "portal",
                    "wadoUriRoot": root,
                    "qidoRoot": root,
                    "wadoRoot": root,
                    "qidoSupportsIncludeField": True,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "supportsFuzzyMatching": False,
                    "supportsWildcard": True,
                    "supportsStow": writable,
                    "dicomUploadEnabled": False,
                    "staticWado": False,
                    "singlepart": "bulkdata,video",
                    "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
                    "omitQuotationForMultipartRequest": True,
                },
            }
        ],
    }


def _config_response(config: dict) -> HttpResponse:
    body = "window.config = " + json.dumps(config, indent=1) + ";\n"
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


def _page_response(config_url: str) -> HttpResponse:
    try:
        html = page_html(config_url)
    except ViewerMissing:
        return HttpResponse(
            "The advanced viewer is not installed on this server (make venv installs it).",
            status=503,
            content_type="text/plain",
        )
    response = HttpResponse(html)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


# --- a consultant's ------------------------------------------------------------------------------------


def _ohif_link_page(view):
    """A link page (re-reads the link, plain refusals, no-store) under OHIF's CSP instead of the link's."""
    return csp_replace(OHIF_CSP)(link_page(view))


@_ohif_link_page
@require_GET
def link_viewer(request: HttpRequest, rest: str = "") -> HttpResponse:
    access.require_session(request)
    return _page_response(reverse("dicomweb:link_config"))


@link_page
@require_GET
def link_config(request: HttpRequest) -> HttpResponse:
    session = access.require_session(request)
    link = session.link
    config = app_config(
        root="/dicomweb", basename="/ohif/s", name=f"Shared by {link.trust.name}", writable=link.allow_write_back
    )
    return _config_response(config)


def link_viewer_url(link) -> str:
    """Where the link page's "Open in advanced viewer" goes: OHIF's viewer route with the link's studies."""
    return "/ohif/s/viewer?StudyInstanceUIDs=" + ",".join(link.study_instance_uids)


# --- staff ---------------------------------------------------------------------------------------------


@csp_replace(OHIF_CSP)
@login_required
@require_GET
def staff_viewer(request: HttpRequest, ods_code: str, rest: str = "") -> HttpResponse:
    trust_for_study_search(request.user, ods_code)
    return _page_response(reverse("dicomweb:staff_config", kwargs={"ods_code": ods_code}))


@login_required
@require_GET
def staff_config(request: HttpRequest, ods_code: str) -> HttpResponse:
    trust = trust_for_study_search(request.user, ods_code)
    config = app_config(
        root=f"/dicomweb/trusts/{trust.ods_code}",
        basename=f"/ohif/trusts/{trust.ods_code}",
        name=f"{trust.name} (copies for viewing)",
        writable=False,
    )
    return _config_response(config)


@login_required
@require_http_methods(["GET", "POST"])
def staff_open(request: HttpRequest, ods_code: str, study_uid: str) -> HttpResponse:
    """ "Open in advanced viewer" on a study page: the POST asks for a copy; the GET waits for it (the page
    refreshes itself) and sends the browser on to the viewer once it is ready."""
    trust = trust_for_study_search(request.user, ods_code)
    try:
        if request.method == "POST":
            viewing.view_request(trust=trust, study_uid=study_uid)
            return redirect("dicomweb:staff_open", ods_code=trust.ods_code, study_uid=study_uid)
        state, detail = viewing.view_state(trust, study_uid)
    except viewing.NotViewable:
        raise Http404("No such study.") from None
    if state == "ready":
        viewing.view_request(trust=trust, study_uid=study_uid)  # keeps it for another while
        return HttpResponseRedirect(f"/ohif/trusts/{trust.ods_code}/viewer?StudyInstanceUIDs={study_uid}")
    if state == "failed":
        messages.error(request, detail)
    context = {"trust": trust, "study_uid": study_uid, "state": state, "count": detail if state == "staging" else ""}
    response = render(request, "dicomweb/staff_open.html", context, status=502 if state == "failed" else 200)
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [
    path("ohif/s/app-config.js", link_config, name="link_config"),
    path("ohif/s/", link_viewer, name="link_viewer"),
    path("ohif/s/<path:rest>", link_viewer),
    path("ohif/trusts/<str:ods_code>/app-config.js", staff_config, name="staff_config"),
    path("ohif/trusts/<str:ods_code>/", staff_viewer, name="staff_viewer"),
    path("ohif/trusts/<str:ods_code>/<path:rest>", staff_viewer),
    path("trusts/<str:ods_code>/studies/<str:study_uid>/advanced-viewer/", staff_open, name="staff_open"),
]
