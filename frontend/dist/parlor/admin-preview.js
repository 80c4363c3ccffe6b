/* Bot admin: mirror unsaved appearance fields into the preview iframe, and copy the embed code. */
(function () {
  "use strict";
  var panel = document.querySelector("[data-parlor-preview]");
  if (!panel) return;
  var frame = panel.querySelector("[data-parlor-frame]");
  var copy = panel.querySelector("[data-parlor-copy]");
  var snippet = panel.querySelector("[data-parlor-snippet]");
  var form = panel.closest("form") || document.querySelector("form");
  var FIELDS = {
    widget_title: "title",
    widget_primary_color: "primary_color",
    widget_avatar_url: "avatar_url",
    widget_theme: "theme",
    greeting: "greeting",
    suggested_questions: "suggested_questions",
  };

  function read() {
    var appearance = {};
    Object.keys(FIELDS).forEach(function (name) {
      var field = form && form.elements[name];
      if (!field) return;
      var value = field.value;
      if (name === "suggested_questions") {
        var parsed = null;
        try {
          parsed = JSON.parse(value); // a JSON list
        } catch (e) {
          /* one question per line */
        }
        value = Array.isArray(parsed) ? parsed : value.split("\n");
        value = value.map(String).map(function (q) { return q.trim(); }).filter(Boolean);
      }
      appearance[FIELDS[name]] = value;
    });
    return appearance;
  }

  function push() {
    if (frame.contentWindow) {
      frame.contentWindow.postMessage({ parlor: 1, type: "preview", appearance: read() }, location.origin);
    }
  }

  if (form) {
    form.addEventListener("input", push);
    form.addEventListener("change", push);
  }
  frame.addEventListener("load", push);
  if (copy && snippet) {
    copy.addEventListener("click", function () {
      snippet.select();
      (navigator.clipboard ? navigator.clipboard.writeText(snippet.value) : Promise.reject())
        .catch(function () { document.execCommand("copy"); })
        .then(function () { copy.textContent = "Copied"; setTimeout(function () { copy.textContent = "Copy"; }, 1500); });
    });
  }
})();
