/* Parlor widget loader.
 *   <script src="https://<parlor>/widget.js" data-bot="<public id>" defer></script>
 * Adds a launcher button (in a shadow root, so host CSS cannot reach it) and, only when the
 * visitor opens the chat, an iframe served by Parlor. Optional attributes: data-open="true",
 * data-launcher="false" (use your own button with Parlor.open()), data-theme="light|dark", data-lang.
 * API: Parlor.open() .close() .toggle() .ask(text) .newConversation() .identify({..}) .on(event, cb)
 * .off(event, cb); events: ready, open, close, conversation, user_message, message, feedback, lead, error.
 * Calls made before this script loaded (window.Parlor = {q: [["open"]]}) are replayed.
 */
((w, d) => {
  "use strict";
  const script = d.currentScript || d.querySelector("script[data-bot]");
  if (!script || w.__parlorWidget) return;
  w.__parlorWidget = 1;
  const bot = script.getAttribute("data-bot");
  const base = new URL(script.src, location.href).origin;
  const opt = (name) => script.getAttribute(`data-${name}`);
  const queued = w.Parlor?.q || [];
  const handlers = {};
  const outbox = [];
  const pending = [];
  let cfg = null;
  let shadow, launcher, frame, frameReady, isOpen;
  const OPEN_KEY = `parlor:open:${bot}`;
  // The visitor and conversation ids live in this (first-party) page's storage: browsers block or
  // partition storage inside third-party iframes, so the chat would forget the visitor on every page.
  const KEPT = { visitor: "parlor:visitor", conversation: `parlor:conversation:${bot}` };

  function kept(name, value) {
    try {
      if (value === undefined) return localStorage.getItem(KEPT[name]) || "";
      if (value) localStorage.setItem(KEPT[name], value);
      else localStorage.removeItem(KEPT[name]);
    } catch {
      return "";
    }
  }

  function emit(name, data) {
    (handlers[name] || []).slice().forEach((cb) => {
      try {
        cb(data);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    });
  }

  function post(msg) {
    msg.parlor = 1;
    if (frameReady) frame.contentWindow.postMessage(msg, base);
    else outbox.push(msg);
  }

  function remember(open) {
    try {
      if (open) sessionStorage.setItem(OPEN_KEY, "1");
      else sessionStorage.removeItem(OPEN_KEY);
    } catch {
      /* storage blocked: the chat simply starts closed on the next page */
    }
  }

  function pageTheme() {
    // For bots that follow the host page: a dark page background means a dark chat.
    const bg = getComputedStyle(d.body).backgroundColor.match(/\d+(\.\d+)?/g);
    if (!bg || (bg.length > 3 && +bg[3] === 0)) return "";
    return 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2] < 110 ? "dark" : "light";
  }

  const CSS =
    ":host{all:initial}" +
    ".l{position:fixed;bottom:20px;right:20px;z-index:2147483000;display:flex;align-items:center;gap:8px;" +
    "height:56px;min-width:56px;padding:0 16px;border:0;border-radius:28px;background:var(--c);color:var(--t);" +
    "font:600 15px/1 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;box-shadow:0 6px 24px rgba(0,0,0,.22);" +
    "cursor:pointer;transition:transform .15s}" +
    ".l:hover{transform:scale(1.05)}.l:focus-visible{outline:3px solid var(--c);outline-offset:3px}" +
    ".l svg{width:26px;height:26px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}" +
    ".l .x{display:none}.o .l .x{display:block}.o .l .c{display:none}.o .l span{display:none}.o .l{padding:0;justify-content:center}" +
    ".f{position:fixed;bottom:88px;right:20px;z-index:2147483001;width:400px;height:680px;max-height:calc(100vh - 108px);" +
    "border:0;border-radius:16px;box-shadow:0 12px 48px rgba(0,0,0,.28);background:#fff;color-scheme:normal}" +
    ".left .l,.left .f{right:auto;left:20px}[hidden]{display:none!important}" +
    ".u .l::after{content:'';position:absolute;top:2px;right:2px;width:12px;height:12px;border-radius:50%;" +
    "background:#ef4444;border:2px solid #fff}" +
    "@media (max-width:480px),(max-height:560px){.f{top:0;left:0;right:0;bottom:0;width:100%;height:100%;max-height:none;" +
    "border-radius:0}.o .l{display:none}}";
  const CHAT = "M21 12a8 8 0 01-11.6 7.1L4 21l1.9-5.1A8 8 0 1121 12z";
  const CLOSE = "M6 6l12 12M18 6L6 18";

  function svg(path, cls) {
    return `<svg class="${cls}" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="${path}"/></svg>`;
  }

  function render() {
    const hostEl = d.createElement("div");
    hostEl.setAttribute("data-parlor-widget", bot);
    shadow = hostEl.attachShadow({ mode: "open" });
    const style = d.createElement("style");
    style.textContent = CSS;
    const wrap = d.createElement("div");
    wrap.className = /left/.test(cfg.position || "") ? "left" : "";
    wrap.style.setProperty("--c", cfg.primary_color);
    wrap.style.setProperty("--t", cfg.on_primary_color);
    launcher = d.createElement("button");
    launcher.className = "l";
    launcher.type = "button";
    launcher.setAttribute("aria-expanded", "false");
    label();
    launcher.innerHTML = svg(CHAT, "c") + svg(CLOSE, "x"); // static markup, no bot data
    if (cfg.launcher_text) {
      const text = d.createElement("span");
      text.textContent = cfg.launcher_text;
      launcher.appendChild(text);
    }
    launcher.hidden = opt("launcher") === "false";
    launcher.onclick = toggle;
    // Warm up on intent: start loading the iframe when the pointer reaches the button.
    launcher.onpointerenter = launcher.onfocus = () => {
      ensureFrame();
    };
    wrap.appendChild(launcher);
    shadow.appendChild(style);
    shadow.appendChild(wrap);
    (d.body || d.documentElement).appendChild(hostEl);
    shadow.wrap = wrap;
  }

  // The accessible name: the visible launcher text when there is one (WCAG "label in name").
  function label() {
    if (isOpen) launcher.setAttribute("aria-label", cfg.close_label || "Close chat");
    else if (cfg.launcher_text) launcher.removeAttribute("aria-label");
    else launcher.setAttribute("aria-label", cfg.launcher_label || "Open chat");
  }

  function ensureFrame() {
    if (frame) return;
    frame = d.createElement("iframe");
    frame.className = "f";
    frame.hidden = true;
    frame.title = cfg.title;
    frame.setAttribute("allow", "clipboard-write");
    let q = `?host=${encodeURIComponent(location.origin)}`;
    const forced = opt("theme");
    const page = pageTheme();
    if (forced) q += `&theme=${encodeURIComponent(forced)}`;
    else if (page) q += `&page=${page}`;
    if (opt("lang")) q += `&lang=${encodeURIComponent(opt("lang"))}`;
    // The ids go in the fragment: never sent to a server, read by the chat app only.
    const hash = `#visitor=${encodeURIComponent(kept("visitor"))}&conversation=${encodeURIComponent(kept("conversation"))}`;
    frame.src = `${base}/widget/${encodeURIComponent(bot)}/${q}${hash}`;
    launcher.setAttribute("aria-controls", "parlor-frame");
    frame.id = "parlor-frame";
    shadow.wrap.appendChild(frame);
  }

  function open() {
    if (!cfg) return pending.push(open);
    ensureFrame();
    if (isOpen) return;
    isOpen = true;
    frame.hidden = false;
    shadow.wrap.classList.add("o");
    shadow.wrap.classList.remove("u");
    launcher.setAttribute("aria-expanded", "true");
    label();
    frame.focus();
    post({ type: "open" });
    remember(true);
    emit("open");
  }

  function close(restoreFocus) {
    if (!cfg) return pending.push(close);
    if (!isOpen) return;
    isOpen = false;
    frame.hidden = true;
    shadow.wrap.classList.remove("o");
    launcher.setAttribute("aria-expanded", "false");
    label();
    if (restoreFocus === true && !launcher.hidden) launcher.focus();
    remember(false);
    emit("close");
  }

  function toggle() {
    if (isOpen) close(true);
    else open();
  }

  w.addEventListener("message", (e) => {
    const m = e.data;
    if (!frame || e.origin !== base || e.source !== frame.contentWindow || !m || m.parlor !== 1) return;
    if (m.type === "ready") {
      frameReady = true;
      while (outbox.length) post(outbox.shift());
    } else if (m.type === "store" && KEPT[m.key]) {
      kept(m.key, typeof m.value === "string" ? m.value.slice(0, 100) : "");
    } else if (m.type === "close") {
      close(true);
    } else if (m.type === "event") {
      // An answer that arrives while the chat is closed puts a dot on the launcher.
      if (m.name === "message" && !isOpen) shadow.wrap.classList.add("u");
      emit(m.name, m.data);
    }
  });

  const api = {
    open: open,
    close: close,
    toggle: toggle,
    ask: (text) => {
      open();
      post({ type: "ask", text: String(text) });
    },
    newConversation: () => {
      post({ type: "reset" });
    },
    identify: (attributes) => {
      post({ type: "identify", attributes: attributes || {} });
    },
    on: (name, cb) => {
      handlers[name] = (handlers[name] || []).concat(cb);
      return api;
    },
    off: (name, cb) => {
      handlers[name] = (handlers[name] || []).filter((h) => h !== cb);
      return api;
    },
    isOpen: () => !!isOpen,
  };
  w.Parlor = api;
  queued.forEach((call) => {
    if (api[call[0]]) api[call[0]].apply(null, call.slice(1));
  });

  fetch(`${base}/widget/${encodeURIComponent(bot)}/config.json`, { credentials: "omit" })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then((c) => {
      if (!c.allowed) {
        console.warn(`Parlor: ${location.origin} is not an allowed origin of bot ${bot}.`);
        emit("error", { code: "origin_not_allowed" });
        return;
      }
      cfg = c;
      render();
      let wasOpen = false;
      try {
        wasOpen = sessionStorage.getItem(OPEN_KEY) === "1";
      } catch {
        /* ignore */
      }
      pending.splice(0).forEach((fn) => {
        fn();
      });
      if (wasOpen || opt("open") === "true") open();
      emit("ready", { bot: bot });
    })
    .catch((err) => {
      console.warn(`Parlor: could not load bot ${bot} (${err.message}).`);
    });
})(window, document);
