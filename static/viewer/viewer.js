/* The share-link image viewer: series thumbnails, stack scrolling, window/level, zoom and pan over
   server-rendered PNGs. Vanilla JS, no framework, CSP-safe (no inline code, no eval): every URL
   comes from data- attributes on #viewer.

   Loading policy, so a drag or a fast scroll never floods the server: the displayed image has at
   most one request in flight and the last one asked for wins (ones asked for meanwhile are skipped,
   though prefetched images between the one shown and the one wanted are shown as they arrive);
   once the first image has shown, the next PREFETCH images in the scroll direction are fetched ahead
   at the current window, PREFETCH_PARALLEL at a time, and kept (as loaded Image elements, so even a
   no-store response is never fetched twice) in a small LRU; prefetches the reader has scrolled past
   are cancelled. Window changes re-prefetch only once the window has been still for WINDOW_SETTLE_MS.

   Test hooks: #viewer[data-ready="true"] once the first image has loaded; #viewer-image (its src
   and data-sop/data-frame/data-wc/data-ww name the image shown); #slice-slider; [data-preset];
   #overlay (contains "k / n"). */
(function () {
  "use strict";

  var PREFETCH = 10;
  var PREFETCH_PARALLEL = 3;
  var KEEP_IMAGES = 48;
  var WINDOW_SETTLE_MS = 250;
  var WHEEL_STEP_PX = 40;
  var ZOOM_MIN = 0.25;
  var ZOOM_MAX = 16;
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  var root = document.getElementById("viewer");
  if (!root || !window.fetch) { return; }

  var el = {
    seriesList: document.getElementById("series-list"),
    viewport: document.getElementById("viewport"),
    layer: document.getElementById("image-layer"),
    image: document.getElementById("viewer-image"),
    slider: document.getElementById("slice-slider"),
    status: document.getElementById("viewer-status"),
    patient: document.getElementById("overlay-patient"),
    study: document.getElementById("overlay-study"),
    position: document.getElementById("overlay-image"),
    windowText: document.getElementById("overlay-window"),
    panButton: document.getElementById("pan-mode")
  };
  var config = {
    statusUrl: root.getAttribute("data-status-url"),
    manifestUrl: root.getAttribute("data-manifest-url"),
    imageTemplate: root.getAttribute("data-image-url-template"),
    thumbnailTemplate: root.getAttribute("data-thumbnail-url-template")
  };

  var STATUS_EVERY_MS = 1000;  // a scroll through images already fetched asks the server at most this often
  var state = {
    gone: false,       // the images may no longer be shown (a revoked or expired link): nothing more is
    lastStatus: 0,     // fetched or shown, and the last image leaves the screen
    manifest: null,
    stacks: [],        // one per image series: {study, series, items: [{sop, frame, window}]}
    stack: null,
    index: 0,
    direction: 1,      // +1 scrolling forwards, -1 backwards: where to prefetch
    window: null,      // {center, width} chosen by the reader, or null for each image's own
    zoom: 1,
    panX: 0,
    panY: 0,
    panMode: false
  };

  // ---- formatting -------------------------------------------------------------------------------

  function personName(pn) {
    // DICOM PN: Family^Given^Middle^Prefix^Suffix (alphabetic group only).
    var parts = String(pn || "").split("=")[0].split("^");
    var family = parts[0] || "";
    var rest = [parts[3], parts[1], parts[2], parts[4]].filter(Boolean).join(" ");
    return family && rest ? family + ", " + rest : family || rest;
  }

  function dicomDate(value) {
    var m = /^(\d{4})(\d{2})(\d{2})$/.exec(String(value || "").trim());
    if (!m) { return value || ""; }
    return m[3] + "-" + (MONTHS[parseInt(m[2], 10) - 1] || m[2]) + "-" + m[1];  // NHS style: 02-Jan-2024
  }

  function nhsNumber(id) {
    // Shown as 943 476 5919 when it is a valid NHS number (modulus 11), otherwise as stored.
    if (!/^\d{10}$/.test(id || "")) { return id || ""; }
    var sum = 0;
    for (var i = 0; i < 9; i++) { sum += parseInt(id[i], 10) * (10 - i); }
    var check = 11 - (sum % 11);
    if (check === 11) { check = 0; }
    if (check === 10 || check !== parseInt(id[9], 10)) { return id; }
    return id.slice(0, 3) + " " + id.slice(3, 6) + " " + id.slice(6);
  }

  function number(value) {
    var rounded = Math.round(value * 100) / 100;
    return String(rounded);
  }

  // ---- URLs -------------------------------------------------------------------------------------

  function fill(template, sop, frame) {
    // Accept the placeholders raw or percent-encoded (as reverse() may have left them).
    return template
      .replace(/\{sop\}|%7Bsop%7D/gi, encodeURIComponent(sop))
      .replace(/\{frame\}|%7Bframe%7D/gi, String(frame));
  }

  function quantise(value, width) {
    // Coarse enough that a drag reuses the server's cache, fine enough for small-valued data.
    var step = width >= 100 ? 1 : width >= 10 ? 0.1 : 0.01;
    return Math.round(value / step) * step;
  }

  function quantised(win) {
    if (!win) { return null; }
    return { center: Number(number(quantise(win.center, win.width))), width: Number(number(Math.max(1, quantise(win.width, win.width)))) };
  }

  function imageUrl(item, win) {
    var url = fill(config.imageTemplate, item.sop, item.frame);
    win = quantised(win);
    if (!win) { return url; }
    return url + (url.indexOf("?") === -1 ? "?" : "&") + "wc=" + encodeURIComponent(number(win.center)) +
      "&ww=" + encodeURIComponent(number(win.width));
  }

  // ---- image cache and loading --------------------------------------------------------------------

  var images = new Map();  // url -> {img, done, failed, waiters}; insertion order is the LRU order

  function entry(url) {
    var found = images.get(url);
    if (found) {
      images.delete(url);
      images.set(url, found);
      return found;
    }
    var record = { url: url, img: new Image(), done: false, failed: false, waiters: [] };
    record.img.decoding = "async";
    record.img.alt = "";
    record.img.draggable = false;
    record.img.onload = function () { settle(record, false); };
    record.img.onerror = function () { settle(record, true); };
    record.img.src = url;
    images.set(url, record);
    trim();
    return record;
  }

  function settle(record, failed) {
    record.done = true;
    record.failed = failed;
    // A failure is not remembered: asking for the same image again should try again.
    if (failed && images.get(record.url) === record) { images.delete(record.url); }
    var waiters = record.waiters;
    record.waiters = [];
    waiters.forEach(function (callback) { callback(record); });
  }

  function whenLoaded(record, callback) {
    if (record.done) { callback(record); } else { record.waiters.push(callback); }
  }

  function trim() {
    var iterator = images.keys();
    while (images.size > KEEP_IMAGES) {
      var oldest = iterator.next().value;
      var record = images.get(oldest);
      if (record.img === el.image) { images.delete(oldest); images.set(oldest, record); continue; }
      images.delete(oldest);
      if (!record.done) { record.img.src = ""; }  // abandon a prefetch that is no longer wanted
    }
  }

  var display = { wanted: null, inFlight: null };
  var shown = null;  // {url, stack, item, win} of the image on screen: the overlay describes this one

  // ---- may the images still be shown? ---------------------------------------------------------------

  function checkStatus() {
    // Images already fetched (prefetched ahead) are shown without asking the server: ask it now and
    // then whether they may still be, so a link revoked meanwhile stops on the next image.
    if (!config.statusUrl || state.gone) { return; }
    var now = Date.now();
    if (now - state.lastStatus < STATUS_EVERY_MS) { return; }
    state.lastStatus = now;
    fetch(config.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.ok) { return null; }
        return response.json().catch(function () { return {}; }).then(function (body) { return body; });
      })
      .then(function (refusal) { if (refusal) { goneWith(refusal); } })
      .catch(function () {});  // the network, not the link: the next image will tell
  }

  function goneWith(refusal) {
    state.gone = true;
    display.wanted = null;
    prefetchQueue = [];
    prefetching.forEach(function (job) { abandon(job.record); });
    images.clear();
    // Nothing of the last image stays: not the pixels, not the overlay that described them.
    el.image.removeAttribute("src");
    el.image.alt = "";
    el.image.hidden = true;
    [el.patient, el.study, el.position, el.windowText].forEach(function (node) { node.textContent = ""; });
    el.slider.disabled = true;
    root.setAttribute("data-gone", "true");
    var message = (refusal && refusal.message) || "";
    problem("This link is no longer available." + (message ? " " + message : ""));
  }

  function failed() {
    // An image that did not load: ask why, and say so (a withdrawn link is not "could not be loaded").
    if (!config.statusUrl) { problem("This image could not be loaded."); return; }
    state.lastStatus = Date.now();
    fetch(config.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.ok) { problem("This image could not be loaded."); return null; }
        return response.json().catch(function () { return {}; });
      })
      .then(function (refusal) { if (refusal) { goneWith(refusal); } })
      .catch(function () { problem("This image could not be loaded."); });
  }

  function show(item, win) {
    if (state.gone) { return; }
    var url = imageUrl(item, win);
    if (images.has(url)) { checkStatus(); }
    display.wanted = { url: url, stack: state.stack, item: item, win: quantised(win) };
    if (display.inFlight) { return; }  // the request in flight picks up `wanted` when it finishes
    load();
  }

  function load() {
    var want = display.wanted;
    if (!want || (el.image.getAttribute("src") === want.url && el.image.complete)) {
      display.inFlight = null;
      return;
    }
    display.inFlight = want.url;
    var record = entry(want.url);
    whenLoaded(record, function () {
      display.inFlight = null;
      if (display.wanted === want) {
        display.wanted = null;
        if (record.failed) { failed(); } else { present(record, want); }
      } else if (!record.failed && onTheWay(want)) {
        present(record, want);  // overtaken, but still between the screen and the wanted image: show it
      }
      load();  // a newer image was asked for meanwhile: fetch only that one
    });
  }

  function present(record, want) {
    if (state.gone) { return; }
    var img = record.img;
    if (img !== el.image) {
      img.id = "viewer-image";
      el.image.removeAttribute("id");
      el.image.replaceWith(img);
      el.image = img;
    }
    img.alt = "Image " + (want.item.index + 1) + " of " + want.stack.items.length;
    img.setAttribute("data-sop", want.item.sop);
    img.setAttribute("data-frame", String(want.item.frame));
    var win = want.win || want.item.window;
    img.setAttribute("data-wc", win ? number(win.center) : "");
    img.setAttribute("data-ww", win ? number(win.width) : "");
    shown = want;
    updateOverlay();
    clearProblem();
    if (root.getAttribute("data-ready") !== "true") {
      root.setAttribute("data-ready", "true");
      loadThumbnails();
    }
  }

  function loadThumbnails() {
    Array.prototype.forEach.call(el.seriesList.querySelectorAll("img[data-src]"), function (thumb) {
      thumb.src = thumb.getAttribute("data-src");
      thumb.removeAttribute("data-src");
    });
  }

  // ---- prefetch ----------------------------------------------------------------------------------

  var prefetchQueue = [];
  var prefetching = new Map();  // url -> record, prefetches in flight
  var prefetchTimer = null;

  function schedulePrefetch(delay) {
    clearTimeout(prefetchTimer);
    prefetchTimer = setTimeout(planPrefetch, delay || 0);
  }

  function planPrefetch() {
    if (!state.stack || state.gone) { return; }
    if (root.getAttribute("data-ready") !== "true") {
      // The first image goes alone: prefetches would compete with it for the server.
      prefetchTimer = setTimeout(planPrefetch, 50);
      return;
    }
    var items = state.stack.items;
    var ahead = new Set();
    prefetchQueue = [];
    for (var i = 1; i <= PREFETCH; i++) {
      var index = state.index + state.direction * i;
      if (index < 0 || index >= items.length) { break; }
      var url = imageUrl(items[index], state.window);
      ahead.add(url);
      if (!images.has(url)) {
        prefetchQueue.push({ url: url, stack: state.stack, item: items[index], win: quantised(state.window) });
      }
    }
    // A prefetch for another series or window, or behind the image on screen, will never be shown:
    // give its connection to one ahead. One between the screen and the wanted image still can be.
    prefetching.forEach(function (job, url) {
      var wanted = display.wanted && display.wanted.url === url;
      if (!ahead.has(url) && !wanted && display.inFlight !== url && !onTheWay(job)) { abandon(job.record); }
    });
    pumpPrefetch();
  }

  function abandon(record) {
    if (record.done) { return; }
    if (images.get(record.url) === record) { images.delete(record.url); }
    record.img.src = "";  // cancels the request; its error event settles the record
  }

  function pumpPrefetch() {
    while (prefetching.size < PREFETCH_PARALLEL && prefetchQueue.length) {
      var job = prefetchQueue.shift();
      if (images.has(job.url)) { continue; }
      job.record = entry(job.url);
      prefetching.set(job.url, job);
      whenLoaded(job.record, arrived);
    }
  }

  function arrived(record) {
    var job = prefetching.get(record.url);
    if (!job || job.record !== record) { return; }  // an abandoned request, since asked for again
    prefetching.delete(record.url);
    if (!record.failed) { showOnTheWay(job); }
    pumpPrefetch();
  }

  function onTheWay(job) {
    var want = display.wanted;
    if (!want || !shown || job.stack !== want.stack || job.stack !== shown.stack) { return false; }
    if (imageUrl(job.item, want.win) !== job.url) { return false; }  // prefetched at another window
    var from = shown.item.index;
    var to = want.item.index;
    var at = job.item.index;
    return (from < at && at < to) || (to < at && at < from);
  }

  function showOnTheWay(job) {
    // Scrolling faster than the server renders: show an image between the one on screen and the
    // one asked for, rather than none until the last arrives. The overlay follows what is shown.
    if (onTheWay(job)) { present(job.record, job); }
  }

  // ---- stack navigation ----------------------------------------------------------------------------

  function go(index) {
    if (!state.stack) { return; }
    var last = state.stack.items.length - 1;
    index = Math.max(0, Math.min(last, index));
    if (index !== state.index) { state.direction = index > state.index ? 1 : -1; }
    state.index = index;
    if (String(el.slider.value) !== String(index + 1)) { el.slider.value = String(index + 1); }
    render();
    schedulePrefetch(0);
  }

  function render() {
    show(state.stack.items[state.index], state.window);
  }

  function selectStack(stack) {
    state.stack = stack;
    state.index = 0;
    state.direction = 1;
    var buttons = el.seriesList.querySelectorAll(".series-button");
    Array.prototype.forEach.call(buttons, function (button) {
      button.setAttribute("aria-pressed", button.stackRef === stack ? "true" : "false");
    });
    el.slider.min = "1";
    el.slider.max = String(stack.items.length);
    el.slider.value = "1";
    el.slider.disabled = stack.items.length < 2;
    render();
    schedulePrefetch(0);
  }

  // ---- window / level ----------------------------------------------------------------------------

  function currentWindow() {
    if (state.window) { return state.window; }
    var item = state.stack && state.stack.items[state.index];
    if (item && item.window) { return item.window; }
    // The image names no window (the server used its full range): start a drag from a usual one.
    var modality = state.stack ? state.stack.series.modality : "";
    return modality === "CT" ? { center: 40, width: 400 } : { center: 2048, width: 4096 };
  }

  function setWindow(win, settleDelay) {
    state.window = win ? { center: win.center, width: Math.max(1, win.width) } : null;
    var presets = document.querySelectorAll("[data-preset]");
    Array.prototype.forEach.call(presets, function (button) {
      var active = win ? Number(button.getAttribute("data-center")) === win.center &&
        Number(button.getAttribute("data-width")) === win.width : button.getAttribute("data-preset") === "default";
      button.setAttribute("aria-pressed", active ? "true" : "false");
    });
    if (!state.stack) { return; }
    render();
    schedulePrefetch(settleDelay === undefined ? WINDOW_SETTLE_MS : settleDelay);
  }

  // ---- zoom and pan ------------------------------------------------------------------------------

  function applyTransform() {
    // CSSOM transforms are allowed by a CSP without 'unsafe-inline' (only style attributes are not).
    el.layer.style.transform = "translate(" + state.panX + "px, " + state.panY + "px) scale(" + state.zoom + ")";
  }

  function zoomBy(factor) {
    state.zoom = Math.max(ZOOM_MIN, Math.min(ZOOM_MAX, state.zoom * factor));
    applyTransform();
    updateOverlay();
  }

  function resetView() {
    state.zoom = 1;
    state.panX = 0;
    state.panY = 0;
    applyTransform();
    updateOverlay();
  }

  function setPanMode(on) {
    state.panMode = on;
    el.panButton.setAttribute("aria-pressed", on ? "true" : "false");
    el.viewport.classList.toggle("pan-mode", on);
  }

  // ---- overlay and status --------------------------------------------------------------------------

  function updateOverlay() {
    var m = state.manifest;
    if (!m || !state.stack) { return; }
    var p = m.patient || {};
    el.patient.textContent = [
      personName(p.name),
      "ID " + nhsNumber(p.id),
      "Born " + dicomDate(p.birth_date) + (p.sex ? "  " + p.sex : "")
    ].join("\n");
    // Everything below describes the image on screen, which may lag the one asked for.
    var view = shown || { stack: state.stack, item: state.stack.items[state.index], win: state.window };
    var study = view.stack.study;
    var series = view.stack.series;
    el.study.textContent = [
      dicomDate(study.date) + (study.accession_number ? "  Acc " + study.accession_number : ""),
      study.description || "",
      "Series " + (series.number === null ? "–" : series.number) + " · " + (series.modality || "") +
        (series.description ? " · " + series.description : "")
    ].join("\n");
    var item = view.item;
    var frameNote = item.frames > 1 ? "  (frame " + (item.frame + 1) + " of " + item.frames + ")" : "";
    el.position.textContent = "Image " + (item.index + 1) + " / " + view.stack.items.length + frameNote;
    var win = view.win || item.window;
    el.windowText.textContent = (win ? "W " + number(win.width) + "  L " + number(win.center) : "W/L auto") +
      (state.zoom !== 1 ? "\nZoom " + Math.round(state.zoom * 100) + "%" : "");
  }

  function problem(message) {
    el.status.textContent = message;
    el.status.classList.add("error");
  }

  function clearProblem() {
    el.status.textContent = "";
    el.status.classList.remove("error");
  }

  // ---- building the page from the manifest -------------------------------------------------------

  function buildStacks(manifest) {
    var stacks = [];
    (manifest.studies || []).forEach(function (study) {
      (study.series || []).forEach(function (series) {
        var items = [];
        (series.instances || []).forEach(function (instance) {
          var frames = Math.max(1, instance.frames || 1);
          var win = instance.window ? { center: instance.window[0], width: instance.window[1] } : null;
          for (var f = 0; f < frames; f++) {
            items.push({ index: items.length, sop: instance.sop_instance_uid, frame: f, frames: frames, window: win });
          }
        });
        if (items.length) { stacks.push({ study: study, series: series, items: items }); }
      });
    });
    return stacks;
  }

  function seriesButton(stack) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "series-button";
    button.setAttribute("aria-pressed", "false");
    button.setAttribute("data-series-uid", stack.series.series_instance_uid);
    button.stackRef = stack;
    var middle = stack.items[Math.floor(stack.items.length / 2)];
    var thumb = document.createElement("img");
    thumb.alt = "";
    thumb.loading = "lazy";
    thumb.decoding = "async";
    // Thumbnails wait for the first image, so they do not compete with it for the connection.
    thumb.setAttribute("data-src", fill(config.thumbnailTemplate, middle.sop, middle.frame));
    var label = document.createElement("span");
    label.textContent = (stack.series.number === null ? "" : stack.series.number + " · ") +
      (stack.series.modality || "") + " " + (stack.series.description || "");
    var count = document.createElement("span");
    count.className = "count";
    count.textContent = " (" + stack.items.length + ")";
    button.appendChild(thumb);
    button.appendChild(label);
    button.appendChild(count);
    button.addEventListener("click", function () { selectStack(stack); el.viewport.focus(); });
    return button;
  }

  function buildSeriesList(stacks) {
    el.seriesList.textContent = "";
    var lastStudy = null;
    stacks.forEach(function (stack) {
      if (stack.study !== lastStudy && state.manifest.studies.length > 1) {
        var heading = document.createElement("p");
        heading.className = "study-heading";
        heading.textContent = dicomDate(stack.study.date) + " " + (stack.study.description || "");
        el.seriesList.appendChild(heading);
      }
      lastStudy = stack.study;
      el.seriesList.appendChild(seriesButton(stack));
    });
    listDocuments();
  }

  function listDocuments() {
    // Reports and other non-image objects were shared too; they are named here, not rendered.
    var documents = [];
    (state.manifest.studies || []).forEach(function (study) { documents = documents.concat(study.documents || []); });
    if (!documents.length) { return; }
    var heading = document.createElement("p");
    heading.className = "study-heading";
    heading.textContent = "Also shared (not images)";
    var list = document.createElement("ul");
    list.className = "documents";
    documents.forEach(function (doc) {
      var item = document.createElement("li");
      item.textContent = (doc.modality || "Document") + (doc.description ? " · " + doc.description : "");
      list.appendChild(item);
    });
    el.seriesList.appendChild(heading);
    el.seriesList.appendChild(list);
  }

  function start(manifest) {
    state.manifest = manifest;
    state.stacks = buildStacks(manifest);
    if (!state.stacks.length) {
      el.seriesList.textContent = "";
      problem("There are no images to show in this share.");
      return;
    }
    buildSeriesList(state.stacks);
    setWindow(null, 0);
    selectStack(state.stacks[0]);
  }

  // ---- input -------------------------------------------------------------------------------------

  var wheelDelta = 0;

  function onWheel(event) {
    event.preventDefault();  // neither the page nor the browser's own zoom should move
    var delta = event.deltaY * (event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? 400 : 1);
    if (event.ctrlKey || event.metaKey) {
      zoomBy(Math.pow(1.0015, -delta));
      return;
    }
    var steps;
    if (Math.abs(delta) >= WHEEL_STEP_PX) {
      // A mouse wheel notch: one image per notch, however large the browser makes the delta.
      wheelDelta = 0;
      steps = Math.sign(delta);
    } else {
      // A touchpad sends many small deltas: one image per WHEEL_STEP_PX of travel.
      wheelDelta += delta;
      steps = Math.trunc(wheelDelta / WHEEL_STEP_PX);
      wheelDelta -= steps * WHEEL_STEP_PX;
    }
    if (steps) { go(state.index + steps); }
  }

  function onKey(event) {
    var target = event.target;
    var tag = target && target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable)) { return; }
    if (event.altKey || event.ctrlKey || event.metaKey || !state.stack) { return; }
    var last = state.stack.items.length - 1;
    var moves = {
      ArrowUp: state.index - 1, ArrowLeft: state.index - 1, ArrowDown: state.index + 1, ArrowRight: state.index + 1,
      PageUp: state.index - 10, PageDown: state.index + 10, Home: 0, End: last
    };
    if (Object.prototype.hasOwnProperty.call(moves, event.key)) {
      event.preventDefault();
      go(moves[event.key]);
    } else if (event.key === "+" || event.key === "=") {
      zoomBy(1.25);
    } else if (event.key === "-") {
      zoomBy(0.8);
    } else if (event.key === "0") {
      resetView();
    } else if (event.key === "p" || event.key === "P") {
      setPanMode(!state.panMode);
    }
  }

  var drag = null;

  function onPointerDown(event) {
    if (!state.stack || (event.button !== 0 && event.button !== 2)) { return; }
    event.preventDefault();
    el.viewport.focus({ preventScroll: true });
    var panning = event.button === 2 || state.panMode || event.shiftKey;
    var win = currentWindow();
    drag = {
      id: event.pointerId, x: event.clientX, y: event.clientY, panning: panning,
      panX: state.panX, panY: state.panY, center: win.center, width: win.width,
      // Sensitivity follows the window: a brain window moves finely, a bone window quickly.
      perPixel: Math.max(win.width / 256, 0.01)
    };
    el.viewport.setPointerCapture(event.pointerId);
    if (panning) { el.viewport.classList.add("panning"); }
  }

  function onPointerMove(event) {
    if (!drag || event.pointerId !== drag.id) { return; }
    var dx = event.clientX - drag.x;
    var dy = event.clientY - drag.y;
    if (drag.panning) {
      state.panX = drag.panX + dx;
      state.panY = drag.panY + dy;
      applyTransform();
      return;
    }
    if (!dx && !dy) { return; }
    // Horizontal changes the width, vertical the centre (down makes the image darker).
    setWindow({ center: drag.center + dy * drag.perPixel, width: Math.max(1, drag.width + dx * drag.perPixel) });
  }

  function onPointerUp(event) {
    if (!drag || event.pointerId !== drag.id) { return; }
    if (el.viewport.hasPointerCapture(event.pointerId)) { el.viewport.releasePointerCapture(event.pointerId); }
    el.viewport.classList.remove("panning");
    drag = null;
  }

  function bind() {
    el.viewport.addEventListener("wheel", onWheel, { passive: false });
    el.viewport.addEventListener("pointerdown", onPointerDown);
    el.viewport.addEventListener("pointermove", onPointerMove);
    el.viewport.addEventListener("pointerup", onPointerUp);
    el.viewport.addEventListener("pointercancel", onPointerUp);
    el.viewport.addEventListener("contextmenu", function (event) { event.preventDefault(); });
    document.addEventListener("keydown", onKey);
    el.slider.addEventListener("input", function () { go(parseInt(el.slider.value, 10) - 1); });
    Array.prototype.forEach.call(document.querySelectorAll("[data-preset]"), function (button) {
      button.addEventListener("click", function () {
        var center = button.getAttribute("data-center");
        var width = button.getAttribute("data-width");
        setWindow(center && width ? { center: Number(center), width: Number(width) } : null, 0);
      });
    });
    document.getElementById("zoom-in").addEventListener("click", function () { zoomBy(1.25); });
    document.getElementById("zoom-out").addEventListener("click", function () { zoomBy(0.8); });
    document.getElementById("zoom-fit").addEventListener("click", resetView);
    el.panButton.addEventListener("click", function () { setPanMode(!state.panMode); });
  }

  bind();
  // Plain same-origin GET, exactly as the page's <link rel="preload"> asked for it, so that is reused.
  fetch(config.manifestUrl, { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    })
    .then(start)
    .catch(function () {
      el.seriesList.textContent = "";
      problem("The images could not be loaded. Reload the page to try again; if this link has expired or was withdrawn, ask the sender for a new one.");
    });
})();
