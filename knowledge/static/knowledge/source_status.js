// Live ingest status for the Source admin: polls a small JSON endpoint while any source is queued or processing,
// and updates each source's status pill and its chunk and token counts in place.
(function () {
  "use strict";
  var ACTIVE = { queued: true, processing: true };

  function statusUrl() {
    var match = window.location.pathname.match(/^(.*\/knowledge\/source\/)/);
    return match ? match[1] + "status/" : null;
  }

  function render(el, info) {
    el.textContent = info.status === "processing" ? info.label + " " + info.progress + "%" : info.label;
    el.title = info.reason || "";
    el.className = "source-status source-status-" + info.status;
    el.dataset.state = info.status;
    // The counts of the same source (list row or change page) follow its status.
    var counts = document.querySelectorAll('[data-source-count="' + el.dataset.sourceStatus + '"]');
    Array.prototype.forEach.call(counts, function (count) {
      if (info[count.dataset.field] !== undefined) count.textContent = String(info[count.dataset.field]);
    });
  }

  function poll() {
    var url = statusUrl();
    var els = Array.prototype.slice.call(document.querySelectorAll("[data-source-status]"));
    var pending = els.filter(function (el) {
      var state = el.dataset.state || (el.className.match(/source-status-(\w+)/) || [])[1];
      return ACTIVE[state];
    });
    if (!url || pending.length === 0) return;
    var ids = pending.map(function (el) { return el.dataset.sourceStatus; }).join(",");
    fetch(url + "?ids=" + ids, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (data) {
        pending.forEach(function (el) {
          var info = data[el.dataset.sourceStatus];
          if (info) render(el, info);
        });
      })
      .catch(function () {})
      .finally(function () { window.setTimeout(poll, 1500); });
  }

  document.addEventListener("DOMContentLoaded", function () { window.setTimeout(poll, 1000); });
})();
