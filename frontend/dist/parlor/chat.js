/* Parlor chat app: runs inside the widget iframe and on the standalone chat page.
 *
 * Talks to ws/chat/<public id>/ with the JSON protocol of issue 7 (message, feedback, ping, history ->
 * ready, delta, sources, done, error, pong, history). No framework and no build step: plain DOM,
 * and all model output goes through ParlorMarkdown (textContent only, never innerHTML).
 */
(function () {
  "use strict";

  var cfg = JSON.parse(document.getElementById("parlor-config").textContent);
  var md = window.ParlorMarkdown;
  var params = new URLSearchParams(location.search);
  var BOT = cfg.bot;
  var STORE_KEY = "parlor:conversation:" + BOT;
  var VISITOR_KEY = "parlor:visitor"; // conversations resume only for the visitor who started them
  var PING_MS = 25000;

  // --- Interface language ---------------------------------------------------------------------
  var STRINGS = {
    en: {
      title: "Chat",
      placeholder: "Type your message…",
      messageLabel: "Message",
      send: "Send",
      newConversation: "New conversation",
      close: "Close chat",
      typing: "The assistant is typing…",
      you: "You",
      assistant: "Assistant",
      sources: "Sources",
      page: "page {n}",
      helpful: "Helpful",
      notHelpful: "Not helpful",
      thanks: "Thanks for your feedback!",
      online: "Online",
      connecting: "Connecting…",
      reconnecting: "Connection lost. Reconnecting…",
      offline: "You are offline. The chat reconnects automatically.",
      rateLimited: "You are sending messages too quickly. Please try again in {time}.",
      rateLimitedNow: "You can send messages again.",
      paused: "This assistant is paused at the moment. Please try again later.",
      unavailable: "This chat is not available.",
      tooLong: "Your message is too long.",
      busy: "Please wait until the current answer is finished.",
      error: "Something went wrong. Please try again.",
      incomplete: "This answer was interrupted.",
      offlineAnswer: "Answered from the knowledge base without the AI model.",
      suggestions: "Suggested questions",
      conversationLog: "Conversation",
      poweredBy: "Powered by Parlor",
      newStarted: "A new conversation has started.",
    },
    de: {
      title: "Chat",
      placeholder: "Nachricht eingeben…",
      messageLabel: "Nachricht",
      send: "Senden",
      newConversation: "Neues Gespräch",
      close: "Chat schließen",
      typing: "Der Assistent schreibt…",
      you: "Sie",
      assistant: "Assistent",
      sources: "Quellen",
      page: "Seite {n}",
      helpful: "Hilfreich",
      notHelpful: "Nicht hilfreich",
      thanks: "Danke für Ihr Feedback!",
      online: "Online",
      connecting: "Verbinde…",
      reconnecting: "Verbindung unterbrochen. Verbinde neu…",
      offline: "Sie sind offline. Der Chat verbindet sich automatisch neu.",
      rateLimited: "Sie senden zu viele Nachrichten. Bitte versuchen Sie es in {time} erneut.",
      rateLimitedNow: "Sie können wieder Nachrichten senden.",
      paused: "Dieser Assistent ist gerade pausiert. Bitte versuchen Sie es später erneut.",
      unavailable: "Dieser Chat ist nicht verfügbar.",
      tooLong: "Ihre Nachricht ist zu lang.",
      busy: "Bitte warten Sie, bis die aktuelle Antwort fertig ist.",
      error: "Etwas ist schiefgelaufen. Bitte versuchen Sie es erneut.",
      incomplete: "Diese Antwort wurde unterbrochen.",
      offlineAnswer: "Aus der Wissensdatenbank beantwortet, ohne KI-Modell.",
      suggestions: "Vorgeschlagene Fragen",
      conversationLog: "Gesprächsverlauf",
      poweredBy: "Bereitgestellt von Parlor",
      newStarted: "Ein neues Gespräch hat begonnen.",
    },
    fr: {
      title: "Chat",
      placeholder: "Écrivez votre message…",
      messageLabel: "Message",
      send: "Envoyer",
      newConversation: "Nouvelle conversation",
      close: "Fermer le chat",
      typing: "L’assistant écrit…",
      you: "Vous",
      assistant: "Assistant",
      sources: "Sources",
      page: "page {n}",
      helpful: "Utile",
      notHelpful: "Pas utile",
      thanks: "Merci pour votre avis !",
      online: "En ligne",
      connecting: "Connexion…",
      reconnecting: "Connexion perdue. Reconnexion…",
      offline: "Vous êtes hors ligne. Le chat se reconnecte automatiquement.",
      rateLimited: "Vous envoyez des messages trop vite. Réessayez dans {time}.",
      rateLimitedNow: "Vous pouvez de nouveau envoyer des messages.",
      paused: "Cet assistant est en pause pour le moment. Réessayez plus tard.",
      unavailable: "Ce chat n’est pas disponible.",
      tooLong: "Votre message est trop long.",
      busy: "Veuillez attendre la fin de la réponse en cours.",
      error: "Un problème est survenu. Veuillez réessayer.",
      incomplete: "Cette réponse a été interrompue.",
      offlineAnswer: "Réponse tirée de la base de connaissances, sans modèle d’IA.",
      suggestions: "Questions suggérées",
      conversationLog: "Conversation",
      poweredBy: "Propulsé par Parlor",
      newStarted: "Une nouvelle conversation a commencé.",
    },
    es: {
      title: "Chat",
      placeholder: "Escribe tu mensaje…",
      messageLabel: "Mensaje",
      send: "Enviar",
      newConversation: "Nueva conversación",
      close: "Cerrar el chat",
      typing: "El asistente está escribiendo…",
      you: "Tú",
      assistant: "Asistente",
      sources: "Fuentes",
      page: "página {n}",
      helpful: "Útil",
      notHelpful: "No es útil",
      thanks: "¡Gracias por tu opinión!",
      online: "En línea",
      connecting: "Conectando…",
      reconnecting: "Conexión perdida. Reconectando…",
      offline: "Estás sin conexión. El chat se reconectará automáticamente.",
      rateLimited: "Estás enviando mensajes demasiado rápido. Inténtalo de nuevo en {time}.",
      rateLimitedNow: "Ya puedes volver a enviar mensajes.",
      paused: "Este asistente está en pausa. Inténtalo más tarde.",
      unavailable: "Este chat no está disponible.",
      tooLong: "Tu mensaje es demasiado largo.",
      busy: "Espera a que termine la respuesta actual.",
      error: "Algo salió mal. Inténtalo de nuevo.",
      incomplete: "Esta respuesta se interrumpió.",
      offlineAnswer: "Respondido desde la base de conocimiento, sin modelo de IA.",
      suggestions: "Preguntas sugeridas",
      conversationLog: "Conversación",
      poweredBy: "Con la tecnología de Parlor",
      newStarted: "Ha comenzado una nueva conversación.",
    },
  };

  function pickLanguage() {
    var wanted = [cfg.language, params.get("lang")].concat(navigator.languages || [navigator.language]);
    for (var i = 0; i < wanted.length; i++) {
      var code = String(wanted[i] || "").toLowerCase().split("-")[0];
      if (code && code !== "auto" && STRINGS[code]) return code;
    }
    return "en";
  }
  var LANG = pickLanguage();
  document.documentElement.lang = LANG;

  function t(key, vars) {
    var s = STRINGS[LANG][key] || STRINGS.en[key] || key;
    return s.replace(/\{(\w+)\}/g, function (_, k) {
      return vars && vars[k] !== undefined ? vars[k] : "";
    });
  }

  // --- Small DOM helpers --------------------------------------------------------------------------
  function $(sel) {
    return document.querySelector(sel);
  }
  function el(tag, cls, parent, txt) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (txt !== undefined) node.textContent = txt;
    if (parent) parent.appendChild(node);
    return node;
  }
  var ICONS = {
    send: "M4 12l16-8-6 16-3-7-7-1z",
    up: "M7 10v10H4V10h3zm0 0l4-7a2.5 2.5 0 013 2.5V9h4.5a2 2 0 012 2.3l-1.3 7A2 2 0 0117.2 20H7",
    down: "M17 14V4h3v10h-3zm0 0l-4 7a2.5 2.5 0 01-3-2.5V15H5.5a2 2 0 01-2-2.3l1.3-7A2 2 0 016.8 4H17",
    close: "M6 6l12 12M18 6L6 18",
    compose: "M12 20h8M16.5 3.5a2.1 2.1 0 013 3L7 19l-4 1 1-4z",
  };
  function icon(name) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", ICONS[name]);
    svg.appendChild(path);
    return svg;
  }
  function iconButton(name, label, cls, parent) {
    var b = el("button", "pc-icon " + (cls || ""), parent);
    b.type = "button";
    b.title = label;
    b.setAttribute("aria-label", label);
    b.appendChild(icon(name));
    return b;
  }

  function randomId(length) {
    var chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    var bytes = new Uint8Array(length);
    crypto.getRandomValues(bytes);
    var out = "";
    for (var i = 0; i < length; i++) out += chars[bytes[i] % chars.length];
    return out;
  }

  // --- Storage (third-party storage can be blocked: fall back to memory) ---------------------------
  var memory = {};
  function load(key) {
    try {
      return localStorage.getItem(key);
    } catch (e) {
      return memory[key] || null;
    }
  }
  function save(key, value) {
    try {
      if (value === null) localStorage.removeItem(key);
      else localStorage.setItem(key, value);
    } catch (e) {
      if (value === null) delete memory[key];
      else memory[key] = value;
    }
  }

  // --- Talking to the host page (widget mode only) -------------------------------------------------
  var hostOrigin = cfg.host_origin || null;
  function toHost(type, data) {
    if (!cfg.embedded || !hostOrigin || window.parent === window) return;
    var msg = { parlor: 1, type: type };
    for (var k in data || {}) msg[k] = data[k];
    window.parent.postMessage(msg, hostOrigin);
  }
  function hostEvent(name, data) {
    toHost("event", { name: name, data: data || {} });
  }

  // --- Layout ------------------------------------------------------------------------------------
  var app = $("#parlor-app");
  app.className = "pc" + (cfg.embedded ? " pc--embedded" : " pc--page");
  app.setAttribute("aria-label", cfg.title || t("title"));

  var head = el("header", "pc-head", app);
  var avatar = el("img", "pc-avatar pc-avatar--head", head);
  avatar.alt = "";
  var titles = el("div", "pc-titles", head);
  var titleEl = el("h1", "pc-title", titles);
  var statusEl = el("p", "pc-status", titles);
  var newBtn = iconButton("compose", t("newConversation"), "", head);
  var closeBtn = cfg.embedded ? iconButton("close", t("close"), "", head) : null;

  var banner = el("div", "pc-banner", app);
  banner.setAttribute("role", "alert");
  banner.hidden = true;

  var log = el("div", "pc-log", app);
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("aria-label", t("conversationLog"));
  log.tabIndex = 0;

  var suggest = el("div", "pc-suggest", app);
  suggest.setAttribute("role", "group");
  suggest.setAttribute("aria-label", t("suggestions"));

  var form = el("form", "pc-form", app);
  var input = el("textarea", "pc-input", form);
  input.rows = 1;
  input.placeholder = t("placeholder");
  input.setAttribute("aria-label", t("messageLabel"));
  input.maxLength = cfg.max_message_chars || 4000;
  input.autocomplete = "off";
  var sendBtn = el("button", "pc-send", form);
  sendBtn.type = "submit";
  sendBtn.title = t("send");
  sendBtn.setAttribute("aria-label", t("send"));
  sendBtn.appendChild(icon("send"));

  el("p", "pc-foot", app, t("poweredBy"));
  var live = el("div", "pc-sr", app); // polite announcements: typing, feedback, status
  live.setAttribute("role", "status");

  function announce(message) {
    live.textContent = "";
    setTimeout(function () {
      live.textContent = message;
    }, 50);
  }

  // --- Appearance (from the bot, live-updatable from the admin preview) -----------------------------
  function contrastText(hex) {
    var m = /^#?([0-9a-f]{6})$/i.exec(hex || "");
    if (!m) return "#ffffff";
    var n = parseInt(m[1], 16);
    var lum = (0.299 * ((n >> 16) & 255) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255)) / 255;
    return lum > 0.6 ? "#111827" : "#ffffff";
  }

  function applyAppearance(a) {
    for (var k in a) if (a[k] !== undefined && a[k] !== null) cfg[k] = a[k];
    titleEl.textContent = cfg.title || t("title");
    document.title = cfg.title || t("title");
    var color = /^#[0-9a-f]{6}$/i.test(cfg.primary_color || "") ? cfg.primary_color : "#4f46e5";
    document.documentElement.style.setProperty("--pc-primary", color);
    document.documentElement.style.setProperty("--pc-on-primary", contrastText(color));
    var avatarUrl = md.safeUrl(cfg.avatar_url || "") || "";
    avatar.hidden = !avatarUrl;
    if (avatarUrl) avatar.src = avatarUrl;
    var theme = cfg.theme;
    if (!theme || theme === "auto") theme = params.get("theme") || cfg.host_theme || "auto";
    if (theme === "light" || theme === "dark") document.documentElement.setAttribute("data-theme", theme);
    else document.documentElement.removeAttribute("data-theme");
  }
  applyAppearance({});

  // --- Messages ---------------------------------------------------------------------------------
  var greetingEl = null;

  function scrollDown(force) {
    var near = log.scrollHeight - log.scrollTop - log.clientHeight < 120;
    if (force || near) log.scrollTop = log.scrollHeight;
  }

  function addMessage(role, opts) {
    opts = opts || {};
    var row = el("div", "pc-msg pc-msg--" + role, log);
    el("span", "pc-sr", row, (role === "user" ? t("you") : t("assistant")) + ": ");
    var bubble = el("div", "pc-bubble", row);
    var body = el("div", "pc-text", bubble);
    var msg = { row: row, bubble: bubble, body: body, role: role, text: "", id: null };
    if (opts.text !== undefined) setText(msg, opts.text);
    scrollDown(true);
    return msg;
  }

  function setText(msg, value) {
    msg.text = value;
    if (msg.role === "user") {
      msg.body.textContent = value;
    } else {
      msg.body.textContent = "";
      msg.body.appendChild(md.render(value));
    }
  }

  function showSources(msg, sources) {
    if (!sources || !sources.length) return;
    var box = el("div", "pc-sources", msg.bubble);
    el("p", "pc-sources-title", box, t("sources"));
    var list = el("ol", "", box);
    sources.forEach(function (s) {
      var li = el("li", "", list);
      var title = s.title || s.url || t("sources");
      var href = s.url ? md.safeUrl(s.url) : null;
      if (href) {
        var a = el("a", "", li, title);
        a.href = href;
        a.target = "_blank";
        a.rel = "noopener noreferrer nofollow";
      } else {
        el("span", "", li, title);
      }
      if (s.page) el("span", "pc-page", li, " · " + t("page", { n: s.page }));
      if (s.snippet) li.title = s.snippet;
    });
    scrollDown();
  }

  function showFeedback(msg, current) {
    if (!msg.id || msg.row.querySelector(".pc-actions")) return;
    var bar = el("div", "pc-actions", msg.bubble);
    var up = iconButton("up", t("helpful"), "pc-fb", bar);
    var down = iconButton("down", t("notHelpful"), "pc-fb", bar);
    function mark(value) {
      up.setAttribute("aria-pressed", String(value === "up"));
      down.setAttribute("aria-pressed", String(value === "down"));
    }
    mark(current);
    function give(value) {
      if (!send({ type: "feedback", message_id: msg.id, value: value })) return;
      mark(value);
      announce(t("thanks"));
      hostEvent("feedback", { message_id: msg.id, value: value });
    }
    up.addEventListener("click", function () {
      give("up");
    });
    down.addEventListener("click", function () {
      give("down");
    });
  }

  function note(msg, key) {
    el("p", "pc-note", msg.bubble, t(key));
  }

  function renderGreeting() {
    if (greetingEl || !cfg.greeting) return;
    greetingEl = addMessage("assistant", { text: cfg.greeting });
    greetingEl.row.classList.add("pc-msg--greeting");
  }

  function renderSuggestions(show) {
    suggest.textContent = "";
    suggest.hidden = !show || !(cfg.suggested_questions || []).length;
    if (suggest.hidden) return;
    cfg.suggested_questions.forEach(function (q) {
      var b = el("button", "pc-chip", suggest, q);
      b.type = "button";
      b.addEventListener("click", function () {
        ask(q);
      });
    });
  }

  function resetLog() {
    log.textContent = "";
    greetingEl = null;
    renderGreeting();
  }

  // --- Banner / status ---------------------------------------------------------------------------
  var retryTimer = null;
  var retryUntil = 0;

  function showBanner(message, kind) {
    banner.textContent = message;
    banner.className = "pc-banner pc-banner--" + (kind || "error");
    banner.hidden = false;
  }
  function hideBanner() {
    banner.hidden = true;
    banner.textContent = "";
  }

  function duration(seconds) {
    return seconds < 90 ? seconds + " s" : Math.ceil(seconds / 60) + " min";
  }

  function startRetryCountdown(seconds) {
    retryUntil = Date.now() + seconds * 1000;
    clearInterval(retryTimer);
    function tick() {
      var left = Math.ceil((retryUntil - Date.now()) / 1000);
      if (left <= 0) {
        clearInterval(retryTimer);
        retryTimer = null;
        retryUntil = 0;
        showBanner(t("rateLimitedNow"), "info");
        setTimeout(function () {
          if (!retryTimer && banner.className.indexOf("info") !== -1) hideBanner();
        }, 3000);
        updateSend();
        return;
      }
      // Update the text node in place: role=alert re-announces only on replacement, once is enough.
      banner.textContent = t("rateLimited", { time: duration(left) });
    }
    showBanner(t("rateLimited", { time: duration(seconds) }), "warn");
    retryTimer = setInterval(tick, 1000);
    updateSend();
  }

  function setStatus(key) {
    statusEl.textContent = t(key);
    statusEl.setAttribute("data-state", key);
  }

  // --- Connection --------------------------------------------------------------------------------
  var ws = null;
  var ready = false;
  var attempts = 0;
  var reconnectTimer = null;
  var pingTimer = null;
  // In the widget the loader keeps both ids in the host page's storage (ours may be blocked there as a
  // third-party iframe) and hands them over in the URL fragment.
  var handed = new URLSearchParams(cfg.embedded ? location.hash.slice(1) : "");
  var conversationId = handed.get("conversation") || load(STORE_KEY);
  var visitorId = handed.get("visitor") || load(VISITOR_KEY);
  if (!/^[A-Za-z0-9_-]{8,64}$/.test(visitorId || "")) {
    visitorId = randomId(22);
  }
  keep("visitor", visitorId);

  function keep(name, value) {
    save(name === "visitor" ? VISITOR_KEY : STORE_KEY, value);
    toHost("store", { key: name, value: value });
  }
  var current = null; // the assistant message being streamed
  var outbox = []; // messages typed while disconnected, sent on the next `ready`
  var attributes = {};
  var stopped = false; // bot paused / unavailable: reconnect slowly
  var hadConversation = false;
  var awaitingHistory = false;

  function socketUrl() {
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    var q = new URLSearchParams();
    q.set("visitor", visitorId);
    if (conversationId) q.set("conversation", conversationId);
    if (hostOrigin) q.set("host", hostOrigin);
    var qs = q.toString();
    return proto + "//" + location.host + cfg.ws_path + (qs ? "?" + qs : "");
  }

  function connect() {
    clearTimeout(reconnectTimer);
    if (ws) return;
    setStatus(attempts ? "reconnecting" : "connecting");
    var sock;
    try {
      sock = new WebSocket(socketUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onmessage = function (event) {
      if (ws !== sock) return;
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      handle(frame);
    };
    sock.onclose = function (event) {
      if (ws !== sock) return;
      ws = null;
      ready = false;
      clearInterval(pingTimer);
      if (current) finishCurrent(true);
      updateSend();
      if (event.code === 4403 || event.code === 4404) stopped = true; // refused or unknown: retry slowly
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    attempts++;
    setStatus("reconnecting");
    if (!navigator.onLine) showBanner(t("offline"), "warn");
    else if (!stopped && attempts > 1) showBanner(t("reconnecting"), "warn");
    // Exponential backoff with jitter, capped; a paused or refused bot is retried slowly.
    var base = stopped ? 30000 : Math.min(30000, 500 * Math.pow(2, attempts - 1));
    var delay = base * (0.5 + Math.random() / 2);
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, delay);
  }

  window.addEventListener("online", function () {
    if (!ws) {
      attempts = 0;
      connect();
    } else if (ready && !retryTimer && !stopped) {
      hideBanner();
    }
  });
  window.addEventListener("offline", function () {
    showBanner(t("offline"), "warn");
  });

  function send(frame) {
    if (!ws || !ready || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  function handle(frame) {
    switch (frame.type) {
      case "ready":
        onReady(frame);
        break;
      case "history":
        onHistory(frame.messages || []);
        break;
      case "delta":
        onDelta(frame.text || "");
        break;
      case "sources":
        if (current) {
          current.sources = frame.sources;
          if (current.done) showSources(current, frame.sources);
        }
        break;
      case "done":
        onDone(frame);
        break;
      case "error":
        onError(frame);
        break;
      default:
        break; // pong and unknown frames
    }
  }

  function onReady(frame) {
    ready = true;
    attempts = 0;
    stopped = false;
    if (!retryTimer) hideBanner();
    setStatus("online");
    var appearance = frame.bot || {};
    if (frame.greeting !== undefined) appearance.greeting = frame.greeting;
    if (frame.suggested_questions) appearance.suggested_questions = frame.suggested_questions;
    var greetingChanged = appearance.greeting !== undefined && appearance.greeting !== cfg.greeting;
    applyAppearance(appearance);
    var resumed = !!conversationId && String(frame.conversation_id) === conversationId;
    var lost = !!conversationId && !resumed; // the stored conversation is gone (erased or expired)
    if (lost) resetLog();
    else if (greetingChanged && greetingEl) setText(greetingEl, cfg.greeting);
    if (!greetingEl) renderGreeting();
    conversationId = frame.conversation_id ? String(frame.conversation_id) : null;
    keep("conversation", conversationId);
    if (conversationId) hostEvent("conversation", { conversation_id: conversationId });
    clearInterval(pingTimer);
    pingTimer = setInterval(function () {
      send({ type: "ping" });
    }, PING_MS);
    awaitingHistory = !!resumed;
    if (resumed) send({ type: "history" });
    else {
      renderSuggestions((!hadConversation || lost) && !outbox.length);
      flushOutbox(lost);
    }
    updateSend();
  }

  function onHistory(messages) {
    resetLog();
    messages.forEach(function (m) {
      var role = m.role === "user" ? "user" : "assistant";
      if (role === "assistant" && !m.text) return; // a failed answer; the apology was shown live
      var msg = addMessage(role, { text: m.text || "" });
      if (role === "assistant") {
        msg.id = m.id;
        showSources(msg, m.sources);
        if (m.status === "incomplete" || m.incomplete) note(msg, "incomplete");
        showFeedback(msg, m.feedback && (m.feedback.value || m.feedback));
      }
    });
    hadConversation = hadConversation || messages.length > 0;
    renderSuggestions(messages.length === 0);
    scrollDown(true);
    if (awaitingHistory) {
      awaitingHistory = false;
      flushOutbox(true);
    }
  }

  function flushOutbox(rerender) {
    // Typed while disconnected; when the log was rebuilt, show those messages again.
    var pending = outbox;
    outbox = [];
    pending.forEach(function (textValue) {
      if (rerender) addMessage("user", { text: textValue });
      sendMessage(textValue);
    });
  }

  // An answer that makes no progress for this long is given up on (the socket may be half-dead).
  var STALL_MS = 150000; // above the server's own total LLM timeout (120 s), which ends the answer first
  var stallTimer = null;
  function watchStall() {
    clearTimeout(stallTimer);
    stallTimer = setTimeout(function () {
      if (!current) return;
      finishCurrent(true);
      showBanner(t("error"), "error");
      if (ws) ws.close(4000); // reconnect; the history shows what the server kept
    }, STALL_MS);
  }

  function startAnswer() {
    watchStall();
    current = addMessage("assistant");
    current.row.classList.add("pc-msg--typing");
    current.row.setAttribute("aria-busy", "true");
    var dots = el("span", "pc-dots", current.body);
    dots.setAttribute("aria-hidden", "true");
    for (var i = 0; i < 3; i++) el("span", "", dots);
    announce(t("typing"));
    updateSend();
  }

  function onDelta(textChunk) {
    if (!current) startAnswer();
    watchStall();
    if (current.row.classList.contains("pc-msg--typing")) current.row.classList.remove("pc-msg--typing");
    current.pending = (current.pending || current.text) + textChunk;
    // Re-render at most once per frame: Markdown is parsed from the full text so far.
    if (!current.frame) {
      var msg = current;
      msg.frame = requestAnimationFrame(function () {
        msg.frame = 0;
        setText(msg, msg.pending);
        scrollDown();
      });
    }
  }

  function finishCurrent(interrupted, frame) {
    var msg = current;
    current = null;
    clearTimeout(stallTimer);
    if (!msg) return;
    if (msg.frame) cancelAnimationFrame(msg.frame);
    msg.frame = 0;
    msg.done = true;
    if (msg.pending !== undefined) setText(msg, msg.pending);
    if (!msg.text && msg.notice) {
      setText(msg, msg.notice); // the provider failed before any text: show the apology in place
      msg.row.classList.add("pc-msg--notice");
      interrupted = false;
      frame = null;
    }
    msg.row.classList.remove("pc-msg--typing");
    msg.row.removeAttribute("aria-busy");
    if (!msg.text) {
      log.removeChild(msg.row); // nothing was said (refused, or cut off before the first token)
    } else {
      if (frame && frame.message_id) msg.id = frame.message_id;
      showSources(msg, msg.sources);
      if (interrupted || (frame && frame.incomplete)) note(msg, "incomplete");
      if (frame && frame.offline) note(msg, "offlineAnswer");
      showFeedback(msg);
      hostEvent("message", { message_id: msg.id, text: msg.text, sources: msg.sources || [] });
    }
    updateSend();
    scrollDown();
  }

  function onDone(frame) {
    if (!current && !frame.message_id) return;
    // The conversation is created with its first message: remember it for reloads and other pages.
    if (frame.conversation_id && frame.conversation_id !== conversationId) {
      conversationId = String(frame.conversation_id);
      keep("conversation", conversationId);
      hostEvent("conversation", { conversation_id: conversationId });
    }
    if (!current) startAnswer();
    finishCurrent(false, frame);
  }

  var ERROR_KEYS = {
    rate_limited: "rateLimited",
    rate_limit: "rateLimited",
    too_many_requests: "rateLimited",
    bot_paused: "paused",
    paused: "paused",
    message_too_long: "tooLong",
    too_long: "tooLong",
    busy: "busy",
    answer_in_progress: "busy",
    origin_not_allowed: "unavailable",
    forbidden: "unavailable",
    not_found: "unavailable",
    bot_not_found: "unavailable",
  };

  function onError(frame) {
    var key = ERROR_KEYS[frame.code];
    if (frame.code === "llm_unavailable" && current) {
      // The model failed mid-answer: `done` follows and finishes the bubble with this apology.
      current.notice = frame.message || t("error");
      return;
    }
    if (frame.code === "conversation_not_found" && conversationId) {
      // The stored conversation was erased or belongs elsewhere: start a fresh one quietly.
      conversationId = null;
      keep("conversation", null);
      hadConversation = false;
      resetLog();
      renderSuggestions(true);
      if (ws) {
        var old = ws;
        ws = null;
        ready = false;
        old.close(1000);
      }
      connect();
      return;
    }
    if (current) finishCurrent(true);
    if (key === "rateLimited") {
      startRetryCountdown(Math.max(1, Math.ceil(Number(frame.retry_after) || 5)));
    } else if (key === "paused" || key === "unavailable") {
      stopped = true;
      showBanner(t(key), "error");
    } else if (LANG === "en" && frame.message) {
      showBanner(frame.message, "error");
    } else {
      showBanner(key ? t(key) : frame.message || t("error"), "error");
    }
    hostEvent("error", { code: frame.code, message: frame.message, retry_after: frame.retry_after });
  }

  // --- Sending -----------------------------------------------------------------------------------
  function updateSend() {
    var blocked = !!current || retryUntil > Date.now();
    sendBtn.disabled = blocked || !input.value.trim();
    form.setAttribute("aria-busy", current ? "true" : "false");
  }

  function sendMessage(textValue) {
    var frame = { type: "message", text: textValue, client_id: randomId(16) };
    if (Object.keys(attributes).length) frame.attributes = attributes;
    if (!send(frame)) {
      outbox.push(textValue);
      if (!ws) connect();
      return;
    }
    startAnswer();
  }

  function ask(textValue) {
    textValue = String(textValue || "").trim();
    if (!textValue || current || retryUntil > Date.now()) return false;
    if (banner.className.indexOf("error") !== -1) hideBanner();
    renderSuggestions(false);
    hadConversation = true;
    addMessage("user", { text: textValue });
    hostEvent("user_message", { text: textValue });
    sendMessage(textValue);
    return true;
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 140) + "px";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (ask(input.value)) {
      input.value = "";
      autosize();
    }
    updateSend();
    input.focus();
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
    }
  });
  input.addEventListener("input", function () {
    autosize();
    updateSend();
  });

  function newConversation() {
    if (current) finishCurrent(true);
    conversationId = null;
    keep("conversation", null);
    hadConversation = false;
    outbox = [];
    resetLog();
    renderSuggestions(true);
    announce(t("newStarted"));
    if (ws) {
      var old = ws;
      ws = null;
      ready = false;
      old.close(1000);
    }
    attempts = 0;
    connect();
    input.focus();
    hostEvent("new_conversation", {});
  }
  newBtn.addEventListener("click", newConversation);

  function requestClose() {
    toHost("close");
  }
  if (closeBtn) closeBtn.addEventListener("click", requestClose);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && cfg.embedded) requestClose();
  });

  // --- Messages from the host page (widget) or the admin (live preview) --------------------------
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || data.parlor !== 1 || event.source !== window.parent || window.parent === window) return;
    var fromHost = cfg.embedded && hostOrigin && event.origin === hostOrigin;
    var fromAdmin = cfg.preview && event.origin === location.origin;
    if (!fromHost && !fromAdmin) return;
    if (data.type === "open") {
      input.focus();
    } else if (data.type === "identify" && data.attributes && typeof data.attributes === "object") {
      for (var k in data.attributes) attributes[k] = String(data.attributes[k]).slice(0, 500);
    } else if (data.type === "ask") {
      ask(data.text);
    } else if (data.type === "reset") {
      newConversation();
    } else if (data.type === "theme" && fromHost) {
      cfg.host_theme = data.theme;
      applyAppearance({});
    } else if (data.type === "preview" && fromAdmin && data.appearance) {
      var greetingBefore = cfg.greeting;
      applyAppearance(data.appearance);
      if (greetingEl && cfg.greeting !== greetingBefore) setText(greetingEl, cfg.greeting);
      if (!hadConversation) renderSuggestions(true);
    }
  });

  // --- Start ----------------------------------------------------------------------------------------
  if (conversationId) hadConversation = true;
  renderGreeting();
  renderSuggestions(!conversationId);
  updateSend();
  if (cfg.status === "paused") {
    stopped = true;
    showBanner(t("paused"), "error");
  }
  connect();
  toHost("ready");
  if (!cfg.embedded) input.focus();

  // Test and host hooks (read-only state, handy for debugging a deployment).
  window.ParlorChat = {
    ask: ask,
    newConversation: newConversation,
    state: function () {
      return { ready: ready, conversationId: conversationId, streaming: !!current, language: LANG };
    },
  };
})();
