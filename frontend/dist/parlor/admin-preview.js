/* Bot admin: mirror unsaved appearance fields into the preview iframe, copy the embed code, and add a
 * refused website to the allowed origins. */
(() => {
  "use strict";
  const panel = document.querySelector("[data-parlor-preview]");
  if (!panel) return;
  const frame = panel.querySelector("[data-parlor-frame]");
  const copy = document.querySelector("[data-parlor-copy]");
  const snippet = document.querySelector("[data-parlor-snippet]");
  const form = panel.closest("form") || document.querySelector("form");
  const FIELDS = {
    widget_title: "title",
    widget_primary_color: "primary_color",
    widget_avatar_url: "avatar_url",
    widget_theme: "theme",
    greeting: "greeting",
    suggested_questions: "suggested_questions",
  };

  function read() {
    const appearance = {};
    Object.keys(FIELDS).forEach((name) => {
      const field = form?.elements[name];
      if (!field) return;
      let value = field.value;
      if (name === "suggested_questions") {
        let parsed = null;
        try {
          parsed = JSON.parse(value); // a JSON list
        } catch {
          /* one question per line */
        }
        value = Array.isArray(parsed) ? parsed : value.split("\n");
        value = value
          .map(String)
          .map((q) => q.trim())
          .filter(Boolean);
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
    copy.addEventListener("click", () => {
      snippet.select();
      (navigator.clipboard ? navigator.clipboard.writeText(snippet.value) : Promise.reject())
        .catch(() => {
          document.execCommand("copy");
        })
        .then(() => {
          copy.textContent = "Copied";
          setTimeout(() => {
            copy.textContent = "Copy";
          }, 1500);
        });
    });
  }
  // "Allow this website": one more line in the allowed origins, saved with the form.
  document.querySelectorAll("[data-parlor-allow]").forEach((button) => {
    button.addEventListener("click", () => {
      const field = form?.elements.allowed_origins;
      if (!field) return;
      const origin = button.getAttribute("data-parlor-allow");
      const lines = field.value.split("\n").map((line) => line.trim());
      if (!lines.includes(origin)) field.value = [...lines.filter(Boolean), origin].join("\n");
      field.dispatchEvent(new Event("input", { bubbles: true }));
      button.disabled = true;
      button.textContent = "Added: save to apply";
    });
  });
})();
