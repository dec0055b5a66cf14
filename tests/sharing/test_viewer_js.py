"""viewer.js in Debian's Chromium, against the real template and renderer behind a tiny local server.

No Django views are involved (they belong to the share-link views' own tests): a ThreadingHTTPServer
on 127.0.0.1 serves the rendered viewer.html under the project's Content-Security-Policy, the static
files, and manifest/image/thumbnail answers from dicomkit.staged and dicomkit.rendering over a
synthetic CT and MR. It catches script errors, CSP violations and broken controls early.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from pydicom import dcmread
from pydicom.uid import generate_uid
from pynetdicom.sop_class import BasicTextSRStorage

from dicomkit import rendering, staged
from dicomkit.sim.synthetic import SyntheticPatient, make_study
from tests.browser.conftest import chromium  # noqa: F401 - the session's browser (one Playwright per process)

pytestmark = pytest.mark.browser

STATIC_DIR = Path(settings.BASE_DIR) / "static"
CT_SLICES = 24
PATIENT = SyntheticPatient("9990000018", "Jones", "Aoife", birth_date="19700203", sex="F")


def _csp() -> str:
    directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


class _Portal(BaseHTTPRequestHandler):
    """The four URLs the share-link views serve, answered straight from the staged folder."""

    folder: Path
    page: str
    requests: list[str]
    delay: float = 0.0  # seconds added to each windowed image: a slow server, for the drag test
    peak: dict[str, int]  # most windowed requests for one instance in flight at once
    active: dict[str, int]
    lock: threading.Lock

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.requests.append(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if url.path == "/s/":
            self._send(self.page.encode(), "text/html; charset=utf-8", csp=True)
        elif url.path == "/s/manifest.json":
            self._send(json.dumps(staged.manifest(self.folder)).encode(), "application/json")
        elif match := re.fullmatch(r"/s/image/([0-9.]+)/(\d+)\.(png|jpg)", url.path):
            self._image(match, query)
        elif match := re.fullmatch(r"/s/thumb/([0-9.]+)\.png", url.path):
            self._send(rendering.thumbnail(staged.instance_path(self.folder, match[1]), 96), "image/png")
        elif url.path.startswith("/static/viewer/") and (STATIC_DIR / url.path[len("/static/") :]).is_file():
            path = STATIC_DIR / url.path[len("/static/") :]
            kind = "text/css" if path.suffix == ".css" else "text/javascript"
            self._send(path.read_bytes(), kind)
        else:
            self.send_error(404)

    def _image(self, match: re.Match, query: dict[str, str]) -> None:
        if "wc" not in query:
            self._answer(match, self._render(match, query))
            return
        # In flight means being rendered: counted out before the answer goes back, since the viewer may
        # ask for its next image the moment the last byte arrives, before this thread runs again.
        with self.lock:
            self.active[match[1]] = self.active.get(match[1], 0) + 1
            self.peak[match[1]] = max(self.peak.get(match[1], 0), self.active[match[1]])
        try:
            time.sleep(self.delay)
            data = self._render(match, query)
        finally:
            with self.lock:
                self.active[match[1]] -= 1
        self._answer(match, data)

    def _render(self, match: re.Match, query: dict[str, str]) -> bytes | None:
        try:
            return rendering.render(
                staged.instance_path(self.folder, match[1]),
                int(match[2]),
                center=float(query["wc"]) if "wc" in query else None,
                width=float(query["ww"]) if "ww" in query else None,
                fmt=match[3],
            )
        except ValueError:
            return None

    def _answer(self, match: re.Match, data: bytes | None) -> None:
        if data is None:
            self.send_error(404)
        else:
            self._send(data, "image/png" if match[3] == "png" else "image/jpeg")

    def _send(self, body: bytes, kind: str, *, csp: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "private, max-age=300")
        if csp:
            self.send_header("Content-Security-Policy", _csp())
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # The viewer cancels prefetches the reader has scrolled past: a closed socket is expected.
        if isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            return
        super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def share_folder(tmp_path_factory) -> Path:
    """A staged folder, flat: a CT of CT_SLICES slices and a three-series MR of the same patient."""
    out = tmp_path_factory.mktemp("staged-build")
    folder = tmp_path_factory.mktemp("staged")
    ct = make_study(out, modality="CT", n_instances=CT_SLICES, rows=64, columns=64, patient=PATIENT, seed=1)
    mr = make_study(out, modality="MR", n_instances=6, rows=48, columns=48, patient=PATIENT, seed=2)
    for path in ct + mr:
        shutil.move(path, folder / path.name)
    report = dcmread(folder / ct[0].name, stop_before_pixels=True)
    for keyword in ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation", "SamplesPerPixel"):
        delattr(report, keyword)
    report.SOPClassUID = report.file_meta.MediaStorageSOPClassUID = BasicTextSRStorage
    report.SOPInstanceUID = report.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    report.Modality, report.SeriesInstanceUID, report.SeriesNumber = "SR", generate_uid(), 99
    report.SeriesDescription = "Earlier report"
    report.save_as(folder / f"{report.SOPInstanceUID}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture(scope="module")
def portal(share_folder) -> Iterator[SimpleNamespace]:
    link = SimpleNamespace(
        recipient_name="Dr Rhys Evans",
        purpose="Second opinion on a head CT",
        expires_at=datetime(2030, 1, 1, 12, tzinfo=UTC),
        allow_download=False,
    )
    page = render_to_string(
        "sharing/viewer.html",
        {
            "link": link,
            "manifest_url": "/s/manifest.json",
            "image_url_template": "/s/image/{sop}/{frame}.png",
            "thumbnail_url_template": "/s/thumb/{sop}.png",
            "opinion_url": "/s/opinion/",
            "download_url": None,
            "presets": rendering.PRESETS,
        },
    )
    requests: list[str] = []
    handler = type(
        "Portal",
        (_Portal,),
        {
            "folder": share_folder,
            "page": page,
            "requests": requests,
            "peak": {},
            "active": {},
            "lock": threading.Lock(),
        },
    )
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_address[1]}", requests=requests, handler=handler)
    server.shutdown()
    server.server_close()


@pytest.fixture
def viewer(chromium, portal):  # noqa: F811 - the session's shared browser
    context = chromium.new_context(base_url=portal.url, viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    portal.requests.clear()
    page.goto("/s/")
    page.wait_for_selector("#viewer[data-ready='true']")
    yield SimpleNamespace(page=page, errors=errors, requests=portal.requests)
    context.close()
    assert errors == []


def ct_uids(share_folder: Path) -> list[str]:
    series = staged.manifest(share_folder)["studies"]
    ct = next(s for study in series for s in study["series"] if s["modality"] == "CT")
    return [item["sop_instance_uid"] for item in ct["instances"]]


# Predicates are passed as functions: a bare expression would be eval'd, which the CSP forbids.


def src(page) -> str:
    return page.get_attribute("#viewer-image", "src") or ""


def wait_for_src(page, pattern: str) -> None:
    page.wait_for_function(
        "pattern => new RegExp(pattern).test(document.getElementById('viewer-image').getAttribute('src') || '')",
        arg=pattern,
    )


def test_the_first_image_and_overlay_appear_without_errors(viewer, share_folder):
    page = viewer.page
    first = ct_uids(share_folder)[0]
    assert src(page) == f"/s/image/{first}/0.png"
    assert page.evaluate("document.getElementById('viewer-image').naturalWidth") == 64
    overlay = page.inner_text("#overlay")
    assert f"1 / {CT_SLICES}" in overlay
    assert "Jones, Aoife" in overlay and "999 000 0018" in overlay and "03-Feb-1970" in overlay
    assert "W 80 L 40" in overlay
    assert page.locator("#series-list .series-button").count() == 4  # CT, then MR T1, T2, FLAIR
    assert "SR · Earlier report" in page.inner_text("#series-list")  # listed, never rendered
    assert viewer.requests.count("/s/manifest.json") == 1  # the preload is the script's fetch


def test_keys_wheel_and_slider_move_through_the_stack(viewer, share_folder):
    page, uids = viewer.page, ct_uids(share_folder)
    page.focus("#viewport")
    page.keyboard.press("End")
    wait_for_src(page, f"/{re.escape(uids[-1])}/0\\.png$")
    assert f"{CT_SLICES} / {CT_SLICES}" in page.inner_text("#overlay")
    page.keyboard.press("Home")
    page.keyboard.press("ArrowDown")
    wait_for_src(page, f"/{re.escape(uids[1])}/0\\.png$")
    page.keyboard.press("PageDown")
    wait_for_src(page, f"/{re.escape(uids[11])}/0\\.png$")

    page.hover("#viewport")
    page.mouse.wheel(0, 100)
    wait_for_src(page, f"/{re.escape(uids[12])}/0\\.png$")
    assert f"13 / {CT_SLICES}" in page.inner_text("#overlay")

    page.fill("#slice-slider", "5")
    wait_for_src(page, f"/{re.escape(uids[4])}/0\\.png$")
    assert f"5 / {CT_SLICES}" in page.inner_text("#overlay")


def test_presets_and_default_change_the_window_in_the_url(viewer):
    page = viewer.page
    page.click("[data-preset='lung']")
    wait_for_src(page, r"\?wc=-600&ww=1500$")
    assert "W 1500 L -600" in page.inner_text("#overlay")
    assert page.get_attribute("[data-preset='lung']", "aria-pressed") == "true"
    page.click("[data-preset='soft tissue']")
    wait_for_src(page, r"\?wc=40&ww=400$")
    page.click("[data-preset='default']")
    wait_for_src(page, r"/0\.png$")


def test_dragging_changes_width_and_center_with_one_request_at_a_time(viewer, portal, share_folder, monkeypatch):
    page, first = viewer.page, ct_uids(share_folder)[0]
    monkeypatch.setattr(portal.handler, "delay", 0.4)
    monkeypatch.setattr(portal.handler, "peak", {})
    box = page.locator("#viewport").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(x + 5 * step, y + 3 * step)
    page.mouse.up()
    # 100 px right and 60 px down from W 80 L 40, at 80/256 per pixel: W 111, L 59 (give or take a pixel).
    page.wait_for_function(
        """() => {
            const query = new URLSearchParams((document.getElementById('viewer-image').src.split('?')[1] || ''));
            return Number(query.get('ww')) >= 105 && Number(query.get('wc')) >= 55;
        }"""
    )
    query = parse_qs(urlsplit(src(page)).query)
    overlay = page.inner_text("#overlay-window").strip()
    assert overlay == f"W {query['ww'][0]} L {query['wc'][0]}"  # the overlay describes the image shown
    # While one image was being rendered the drag went on: never two at once, and far fewer than moves.
    assert portal.handler.peak[first] == 1
    dragged = [r for r in viewer.requests if r.startswith(f"/s/image/{first}/") and "wc=" in r]
    assert 1 <= len(dragged) < 20, dragged


def test_images_ahead_in_the_scroll_direction_are_prefetched(viewer, share_folder):
    page, uids = viewer.page, ct_uids(share_folder)
    page.wait_for_function(
        "n => performance.getEntriesByType('resource').filter(e => e.name.includes('/s/image/')).length >= n",
        arg=11,
    )
    fetched = {r.split("/")[3] for r in viewer.requests if r.startswith("/s/image/")}
    assert set(uids[:11]) <= fetched


def test_zoom_pan_and_series_selection(viewer):
    page = viewer.page
    page.click("#zoom-in")
    assert "scale(1.25)" in page.eval_on_selector("#image-layer", "el => el.style.transform")
    page.click("#zoom-fit")
    assert "scale(1)" in page.eval_on_selector("#image-layer", "el => el.style.transform")

    box = page.locator("#viewport").bounding_box()
    page.mouse.move(box["x"] + 100, box["y"] + 100)
    page.mouse.down(button="right")
    page.mouse.move(box["x"] + 130, box["y"] + 120)
    page.mouse.up(button="right")
    assert "translate(30px, 20px)" in page.eval_on_selector("#image-layer", "el => el.style.transform")

    page.locator("#series-list .series-button").nth(2).click()
    page.wait_for_function("() => document.getElementById('overlay').innerText.includes('T2 axial')")
    assert "1 / 2" in page.inner_text("#overlay")
    assert page.locator("#series-list .series-button").nth(2).get_attribute("aria-pressed") == "true"


def test_thumbnails_load_after_the_first_image(viewer):
    page = viewer.page
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#series-list img')).every(i => i.complete && i.naturalWidth > 0)"
    )
    first_image = next(i for i, r in enumerate(viewer.requests) if r.startswith("/s/image/"))
    first_thumb = next(i for i, r in enumerate(viewer.requests) if r.startswith("/s/thumb/"))
    assert first_image < first_thumb


def test_the_opinion_section_links_to_the_opinion_page(viewer):
    page = viewer.page
    assert page.get_attribute("#opinion a", "href") == "/s/opinion/"
    assert page.locator("#download-link").count() == 0
