/* Human handoff in the admin (docs/handoff.md), loaded on every admin page (UNFOLD["SCRIPTS"]).
 *
 * One socket to ws/admin/inbox/ per page: while it is open the member counts as online for visitors who
 * ask for a person. It brings new handoffs (a browser notification when the member wants one), the
 * inbox's live list of conversations handed to a person, and on a conversation's page the operator's
 * panel: take, reply, hand back, close, and typing both ways. Frames are described in docs/handoff.md.
 */
(() => {
  "use strict";

  const PATH = "/ws/admin/inbox/";
  const CLOSE_UNAUTHENTICATED = 4401;
  const CLOSE_FORBIDDEN = 4403;
  const TYPING_EVERY_MS = 2000; // at most one "typing" frame this often
  const TYPING_SHOWN_MS = 4000; // the visitor's "typing" shows this long after their last keystroke

  const handoffs = new Map(); // conversation id → summary, for the inbox's live list
  let ws = null;
  let me = null; // this member's user id
  let notifyBrowser = false;
  let attempts = 0;
  let pingTimer = null;
  let typingTimer = null;
  let lastTypingSent = 0;
  const shownMessages = new Set(); // message ids already drawn (our reply comes back as an event too)

  // Unfold loads this script in <head>: the page's elements are looked up once the document is parsed.
  let panel = null;
  let live = null;
  let conversationId = null;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- The socket ----------------------------------------------------------------------------------
  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const sock = new WebSocket(`${scheme}//${location.host}${PATH}`);
    ws = sock;
    sock.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      handle(frame);
    };
    sock.onclose = (event) => {
      if (ws !== sock) return;
      ws = null;
      clearInterval(pingTimer);
      // Not signed in, or no organization (e.g. the sign-in page): nothing to listen to here.
      if (event.code === CLOSE_UNAUTHENTICATED || event.code === CLOSE_FORBIDDEN) return;
      attempts++;
      setTimeout(connect, Math.min(30000, 500 * 2 ** attempts) * (0.5 + Math.random() / 2));
    };
  }

  function send(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  function handle(frame) {
    switch (frame.type) {
      case "ready":
        attempts = 0;
        me = frame.operator_id;
        notifyBrowser = !!frame.notify_browser;
        clearInterval(pingTimer);
        pingTimer = setInterval(() => send({ type: "ping" }), (frame.ping_seconds || 20) * 1000);
        handoffs.clear();
        for (const c of frame.handoffs || []) handoffs.set(c.id, c);
        renderList();
        updatePanel();
        document.documentElement.dataset.handoffSocket = "ready";
        break;
      case "event":
        onEvent(frame);
        break;
      case "updated":
        onConversation(frame.conversation);
        break;
      case "sent":
        if (frame.conversation_id === conversationId) {
          const m = frame.message;
          addMessage("operator", m.text, m.operator_name, m.id);
          showError("");
        }
        break;
      case "error":
        showError(frame.message || "Something went wrong.");
        break;
      default:
        break;
    }
  }

  function onEvent(frame) {
    const c = frame.conversation || {};
    switch (frame.event) {
      case "handoff.requested":
        onConversation(c);
        notify(c);
        break;
      case "handoff.taken":
      case "handoff.released":
      case "handoff.closed":
        onConversation(c);
        break;
      case "visitor.message":
        if (c.id === conversationId) {
          addMessage("user", frame.message.text, "", frame.message.id);
          showTyping("");
        }
        if (handoffs.has(c.id)) {
          handoffs.get(c.id).last_text = frame.message.text;
          renderList();
        }
        break;
      case "operator.message":
        if (c.id === conversationId) {
          addMessage("operator", frame.message.text, frame.message.operator, frame.message.id);
        }
        break;
      case "visitor.typing":
        if (c.id === conversationId) showTyping("The visitor is typing…");
        break;
      default:
        break;
    }
  }

  function onConversation(c) {
    if (!c?.id) return;
    if (c.status === "waiting" || c.status === "taken") handoffs.set(c.id, c);
    else handoffs.delete(c.id);
    renderList();
    if (c.id === conversationId) setStatus(c.status, c.operator, c.operator_id);
  }

  // --- Browser notification --------------------------------------------------------------------------
  function notify(c) {
    if (!notifyBrowser || !("Notification" in window) || Notification.permission !== "granted") return;
    const notification = new Notification("A visitor asks for a person", {
      body: `${c.visitor} · ${c.bot}${c.last_text ? `: ${c.last_text}` : ""}`,
      tag: `handoff-${c.id}`,
    });
    notification.onclick = () => {
      window.focus();
      location.href = c.url;
    };
  }

  // --- The inbox's live list ---------------------------------------------------------------------------
  function renderList() {
    if (!live) return;
    const list = live.querySelector("[data-handoff-list]");
    list.replaceChildren();
    const rows = [...handoffs.values()].sort((a, b) => (a.requested_at || "").localeCompare(b.requested_at || ""));
    for (const c of rows) {
      const li = el("li", "flex gap-2 items-center");
      li.dataset.handoffConversation = c.id;
      const label = el("span", "font-semibold", c.status === "waiting" ? "Waiting" : `With ${c.operator}`);
      const link = el("a", "underline", `${c.visitor} · ${c.bot}`);
      link.href = c.url;
      li.append(label, link);
      if (c.last_text) li.append(el("span", "text-base-500 truncate", `“${c.last_text}”`));
      list.append(li);
    }
    if (notifyBrowser && "Notification" in window && Notification.permission === "default") {
      const li = el("li");
      const button = el("button", "underline text-sm", "Turn on browser notifications for new handoffs");
      button.type = "button";
      button.addEventListener("click", () => Notification.requestPermission().then(renderList));
      li.append(button);
      list.append(li);
    }
    live.hidden = list.children.length === 0;
  }

  // --- A conversation's page: the operator's panel -----------------------------------------------------
  function addMessage(role, text, author, id) {
    if (!panel) return;
    if (id) {
      if (shownMessages.has(id) || document.getElementById(`message-${id}`)) return;
      shownMessages.add(id);
    }
    document.querySelector("[data-no-messages]")?.remove();
    const row = el("div", `pt-row pt-${role}`);
    if (id) {
      row.id = `message-${id}`;
      row.dataset.message = id;
    }
    const bubble = el("div", "pt-bubble");
    if (role === "operator") bubble.append(el("div", "pt-author", author || "Operator"));
    bubble.append(el("div", "pt-text", text));
    row.append(bubble);
    panel.before(row);
    row.scrollIntoView({ block: "nearest" });
  }

  function showTyping(text) {
    const box = panel?.querySelector("[data-typing]");
    if (!box) return;
    box.textContent = text;
    clearTimeout(typingTimer);
    if (text) typingTimer = setTimeout(() => showTyping(""), TYPING_SHOWN_MS);
  }

  function showError(text) {
    const box = panel?.querySelector("[data-handoff-error]");
    if (box) box.textContent = text;
  }

  const STATUS_TEXT = {
    waiting: () => "Waiting for a person",
    taken: (name) => `With ${name}`,
    closed: () => "Closed by a person",
    "": () => "The bot answers",
  };

  function setStatus(status, operatorName, operatorId) {
    if (!panel) return;
    panel.dataset.status = status || "";
    panel.dataset.operatorId = operatorId ? String(operatorId) : "";
    panel.querySelector("[data-handoff-status]").textContent = (STATUS_TEXT[status || ""] || STATUS_TEXT[""])(
      operatorName,
    );
    updatePanel();
  }

  function updatePanel() {
    if (!panel || panel.dataset.mayAnswer !== "1") return;
    const status = panel.dataset.status;
    const mine = status === "taken" && me !== null && panel.dataset.operatorId === String(me);
    panel.querySelector("[data-take]").hidden = status !== "waiting";
    panel.querySelector("[data-release]").hidden = status !== "waiting" && status !== "taken";
    panel.querySelector("[data-close]").hidden = status !== "waiting" && status !== "taken";
    panel.querySelector("[data-reply-form]").hidden = !mine;
  }

  function wirePanel() {
    if (!panel || panel.dataset.mayAnswer !== "1") return;
    const act = (type) => () => {
      if (!send({ type, conversation_id: conversationId })) showError("Not connected. Retrying…");
    };
    panel.querySelector("[data-take]").addEventListener("click", act("take"));
    panel.querySelector("[data-release]").addEventListener("click", act("release"));
    panel.querySelector("[data-close]").addEventListener("click", act("close"));
    const reply = panel.querySelector("[data-reply]");
    const sendReply = () => {
      const text = reply.value.trim();
      if (!text) return;
      if (send({ type: "reply", conversation_id: conversationId, text })) reply.value = "";
      else showError("Not connected. Retrying…");
    };
    panel.querySelector("[data-send]").addEventListener("click", sendReply);
    reply.addEventListener("keydown", (event) => {
      // Enter sends (Shift+Enter: a new line); never the admin's change form around the panel.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendReply();
      }
    });
    reply.addEventListener("input", () => {
      const now = Date.now();
      if (now - lastTypingSent < TYPING_EVERY_MS) return;
      lastTypingSent = now;
      send({ type: "typing", conversation_id: conversationId });
    });
    updatePanel();
  }

  function start() {
    panel = document.querySelector("[data-handoff-panel]");
    live = document.querySelector("[data-handoff-live]");
    conversationId = panel ? panel.dataset.conversationId : null;
    wirePanel();
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
