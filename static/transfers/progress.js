/* Live progress on the transfer page: poll the API every 2 s and update the numbers, rate and ETA.
   Progressive enhancement: the page already shows the server-rendered numbers without this script. */
(function () {
  "use strict";
  var section = document.getElementById("transfer-progress");
  if (!section || !window.fetch || section.getAttribute("data-finished") === "true") { return; }
  var url = section.getAttribute("data-api-url");
  // Ended, or waiting for a person (an imaging manager matching the arrival to a patient): no more polling.
  var RESTING = ["completed", "completed_with_errors", "failed", "cancelled", "awaiting_reconciliation"];
  // The same words as transfers/progress.py (the API's `stage` carries them; these are the fallback).
  var LABELS = {
    queued: "Waiting to start", retrieving: "On its way", sending: "On its way", verifying: "On its way",
    awaiting_reconciliation: "Arrived, being matched to a patient", completed: "Arrived",
    completed_with_errors: "Arrived with gaps", failed: "Failed", cancelled: "Cancelled"
  };
  var COLOURS = {
    queued: "blue", retrieving: "blue", sending: "blue", verifying: "blue", awaiting_reconciliation: "yellow",
    completed: "green", completed_with_errors: "orange", failed: "red", cancelled: "grey"
  };
  var previous = null;  // {t, bytes, done}
  var rateBytes = null;  // smoothed bytes per second
  var rateInstances = null;  // smoothed instances per second

  function field(name) { return section.querySelector('[data-field="' + name + '"]'); }
  function set(name, text) { var el = field(name); if (el) { el.textContent = text; } }

  function duration(seconds) {
    if (!isFinite(seconds) || seconds < 0) { return "—"; }
    seconds = Math.round(seconds);
    if (seconds < 60) { return seconds + " s"; }
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) { return minutes + " min " + (seconds % 60) + " s"; }
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function smooth(old, value) { return old === null ? value : 0.7 * old + 0.3 * value; }

  function update(data) {
    var p = data.progress || {};
    var now = Date.now() / 1000;
    var stage = data.stage || {};
    set("status", stage.label || LABELS[data.status] || data.status);
    if (stage.next_step) { set("next_step", stage.next_step); }
    var status = field("status");
    if (status) {
      status.className = "nhsuk-tag nhsuk-tag--" + (COLOURS[data.status] || "grey");
      status.setAttribute("data-stage", stage.key || data.status);
    }
    set("instances_done", p.instances_done);
    set("instances_total", p.instances_total);
    set("instances_failed", p.instances_failed);
    set("megabytes", (p.bytes_done / 1e6).toFixed(1));
    var bar = field("bar");
    if (bar) { bar.max = Math.max(p.instances_total, 1); bar.value = p.instances_done; }
    if (previous && now > previous.t) {
      var elapsed = now - previous.t;
      rateBytes = smooth(rateBytes, Math.max(p.bytes_done - previous.bytes, 0) / elapsed);
      rateInstances = smooth(rateInstances, Math.max(p.instances_done - previous.done, 0) / elapsed);
    }
    previous = { t: now, bytes: p.bytes_done, done: p.instances_done };
    var finished = RESTING.indexOf(data.status) >= 0;
    if (finished) {
      set("rate", "—");
      set("eta", "—");
      return false;
    }
    if (rateBytes !== null) { set("rate", (rateBytes / 1e6).toFixed(1) + " MB/s"); }
    var left = p.instances_total - p.instances_done - p.instances_failed;
    set("eta", rateInstances ? duration(left / rateInstances) : "—");
    return true;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) { if (update(data)) { window.setTimeout(poll, 2000); } })
      .catch(function () { window.setTimeout(poll, 10000); });  // back off; the page numbers still stand
  }

  window.setTimeout(poll, 2000);
})();
