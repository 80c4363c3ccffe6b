/* Everything the chat draws: the layout, messages (Markdown answers, streamed or whole), sources,
 * feedback buttons, the greeting and suggested questions, the banner and the connection status.
 *
 * No socket and no storage here: the app (chat.js) decides what to show and passes callbacks for what
 * the visitor clicks. Model output only reaches the page through markdown.js (text nodes, never HTML).
 */

import { createStream, render as renderMarkdown, safeUrl } from "./markdown.js";

const ICONS = {
  send: "M4 12l16-8-6 16-3-7-7-1z",
  up: "M7 10v10H4V10h3zm0 0l4-7a2.5 2.5 0 013 2.5V9h4.5a2 2 0 012 2.3l-1.3 7A2 2 0 0117.2 20H7",
  down: "M17 14V4h3v10h-3zm0 0l-4 7a2.5 2.5 0 01-3-2.5V15H5.5a2 2 0 01-2-2.3l1.3-7A2 2 0 016.8 4H17",
  close: "M6 6l12 12M18 6L6 18",
  compose: "M12 20h8M16.5 3.5a2.1 2.1 0 013 3L7 19l-4 1 1-4z",
  person: "M12 12a4 4 0 100-8 4 4 0 000 8zm-7 8a7 7 0 0114 0",
};
const DEFAULT_COLOR = "#4f46e5";
const SVG = "http://www.w3.org/2000/svg";

function el(tag, cls, parent, txt) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (txt !== undefined) node.textContent = txt;
  if (parent) parent.appendChild(node);
  return node;
}

function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[name]);
  svg.appendChild(path);
  return svg;
}

function iconButton(name, label, cls, parent) {
  const button = el("button", `pc-icon ${cls || ""}`, parent);
  button.type = "button";
  button.title = label;
  button.setAttribute("aria-label", label);
  button.appendChild(icon(name));
  return button;
}

function contrastText(hex) {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex || "");
  if (!m) return "#ffffff";
  const n = parseInt(m[1], 16);
  const lum = (0.299 * ((n >> 16) & 255) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255)) / 255;
  return lum > 0.6 ? "#111827" : "#ffffff";
}

/**
 * Builds the chat inside #parlor-app and returns the view: its elements and what it can draw.
 * `t` translates interface texts; `embedded` adds the close button of the widget.
 */
export function createView({ t, embedded, maxChars }) {
  const app = document.getElementById("parlor-app");
  app.className = `pc ${embedded ? "pc--embedded" : "pc--page"}`;

  const head = el("header", "pc-head", app);
  const avatar = el("img", "pc-avatar pc-avatar--head", head);
  avatar.alt = "";
  const titles = el("div", "pc-titles", head);
  const titleEl = el("h1", "pc-title", titles);
  const statusEl = el("p", "pc-status", titles);
  // Human handoff: shown when the bot lets visitors ask for a person (the `ready` frame says so).
  const personButton = iconButton("person", t("askPerson"), "pc-person", head);
  personButton.hidden = true;
  const newButton = iconButton("compose", t("newConversation"), "", head);
  const closeButton = embedded ? iconButton("close", t("close"), "", head) : null;

  const banner = el("div", "pc-banner", app);
  banner.setAttribute("role", "alert");
  banner.hidden = true;

  const log = el("div", "pc-log", app);
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("aria-label", t("conversationLog"));
  log.tabIndex = 0;

  const suggest = el("div", "pc-suggest", app);
  suggest.setAttribute("role", "group");
  suggest.setAttribute("aria-label", t("suggestions"));

  const form = el("form", "pc-form", app);
  const input = el("textarea", "pc-input", form);
  input.rows = 1;
  input.placeholder = t("placeholder");
  input.setAttribute("aria-label", t("messageLabel"));
  input.maxLength = maxChars;
  input.autocomplete = "off";
  const sendButton = el("button", "pc-send", form);
  sendButton.type = "submit";
  sendButton.title = t("send");
  sendButton.setAttribute("aria-label", t("send"));
  sendButton.appendChild(icon("send"));

  el("p", "pc-foot", app, t("poweredBy"));
  const live = el("div", "pc-sr", app); // polite announcements: typing, feedback, status
  live.setAttribute("role", "status");

  let bannerKind = null;
  let greeting = null; // the greeting's message, while it is on screen

  // The log follows new text until the visitor scrolls up, and again once they are back at the bottom.
  // Measured at the visitor's scroll, not when text arrives: an offline or FAQ answer lands in one large
  // piece, which would otherwise already count as "far from the bottom".
  let follow = true;
  let placed = -1; // where we scrolled the log ourselves: that scroll event is not the visitor's
  log.addEventListener(
    "scroll",
    () => {
      if (Math.abs(log.scrollTop - placed) < 2) return;
      follow = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    },
    { passive: true },
  );

  function scrollDown(force) {
    if (force) follow = true;
    if (!follow) return;
    // Instantly: a smooth scroll's steps would look like the visitor's own scrolling to the handler above.
    log.scrollTo({ top: log.scrollHeight, behavior: "instant" });
    placed = log.scrollTop;
  }

  function setText(msg, value) {
    msg.text = value;
    if (msg.role === "user") msg.body.textContent = value;
    else msg.body.replaceChildren(renderMarkdown(value));
  }

  function addMessage(role, text) {
    const row = el("div", `pc-msg pc-msg--${role}`, log);
    const who = { user: t("you"), operator: t("person") }[role] || t("assistant");
    el("span", "pc-sr", row, `${who}: `);
    const bubble = el("div", "pc-bubble", row);
    const body = el("div", "pc-text", bubble);
    const msg = { row, bubble, body, role, text: "", id: null };
    if (text !== undefined) setText(msg, text);
    scrollDown(true);
    return msg;
  }

  let typingRow = null; // "Anna is typing…" while an operator types

  const view = {
    input,
    form,
    newButton,
    personButton,
    closeButton,
    addMessage,
    /** The log ends with an answer (shown live) after the visitor's last question. */
    hasAnswerAfterLastQuestion() {
      const rows = log.querySelectorAll(".pc-msg--user, .pc-msg--assistant");
      return rows.length > 0 && rows[rows.length - 1].classList.contains("pc-msg--assistant");
    },
    setText,
    scrollDown,

    announce(message) {
      live.textContent = "";
      setTimeout(() => {
        live.textContent = message;
      }, 50);
    },

    /** Title, colour, avatar and theme; `theme` is "light", "dark" or anything else for the system's. */
    applyAppearance({ title, primaryColor, avatarUrl, theme }) {
      titleEl.textContent = title || t("title");
      document.title = title || t("title");
      app.setAttribute("aria-label", title || t("title"));
      const color = /^#[0-9a-f]{6}$/i.test(primaryColor || "") ? primaryColor : DEFAULT_COLOR;
      const root = document.documentElement.style;
      root.setProperty("--pc-primary", color);
      root.setProperty("--pc-on-primary", contrastText(color));
      const src = safeUrl(avatarUrl || "") || "";
      avatar.hidden = !src;
      if (src) avatar.src = src;
      if (theme === "light" || theme === "dark") document.documentElement.setAttribute("data-theme", theme);
      else document.documentElement.removeAttribute("data-theme");
    },

    /** An assistant bubble with typing dots, to be filled by streamText() and finished by endStream(). */
    startStream() {
      const msg = addMessage("assistant");
      msg.row.classList.add("pc-msg--typing");
      msg.row.setAttribute("aria-busy", "true");
      const dots = el("span", "pc-dots", msg.body);
      dots.setAttribute("aria-hidden", "true");
      for (let i = 0; i < 3; i++) el("span", "", dots);
      msg.stream = null;
      return msg;
    },

    /** Draws the answer so far: only its unfinished last block is drawn again (markdown.createStream). */
    streamText(msg, text) {
      if (!msg.stream) {
        msg.row.classList.remove("pc-msg--typing");
        msg.body.textContent = "";
        msg.stream = createStream(msg.body);
      }
      msg.text = text;
      msg.stream.update(text);
      scrollDown();
    },

    /** The answer is complete (or given up on): draw its end, or the `notice` when nothing came. */
    endStream(msg, text, notice) {
      if (text && msg.stream) {
        msg.text = text;
        msg.stream.finish(text);
      } else if (text || notice) {
        setText(msg, text || notice);
        if (!text) msg.row.classList.add("pc-msg--notice");
      }
      msg.row.classList.remove("pc-msg--typing");
      msg.row.removeAttribute("aria-busy");
      if (!msg.text) msg.row.remove(); // nothing was said (refused, or cut off before the first token)
    },

    showSources(msg, sources) {
      if (!sources?.length) return;
      const box = el("div", "pc-sources", msg.bubble);
      el("p", "pc-sources-title", box, t("sources"));
      const list = el("ol", "", box);
      for (const source of sources) {
        const li = el("li", "", list);
        const title = source.title || source.url || t("sources");
        const href = source.url ? safeUrl(source.url) : null;
        if (href) {
          const a = el("a", "", li, title);
          a.href = href;
          a.target = "_blank";
          a.rel = "noopener noreferrer nofollow";
        } else {
          el("span", "", li, title);
        }
        if (source.page) el("span", "pc-page", li, ` · ${t("page", { n: source.page })}`);
        // A recording: the moment the passage starts (mm:ss); its link, if any, already opens it there.
        if (source.timestamp) el("span", "pc-time", li, ` · ${source.timestamp}`);
        if (source.snippet) li.title = source.snippet;
      }
      scrollDown();
    },

    /** Thumbs up/down under an answer; `give(value)` returns whether the rating was sent. */
    showFeedback(msg, current, give) {
      if (!msg.id || msg.row.querySelector(".pc-actions")) return;
      const bar = el("div", "pc-actions", msg.bubble);
      const up = iconButton("up", t("helpful"), "pc-fb", bar);
      const down = iconButton("down", t("notHelpful"), "pc-fb", bar);
      const mark = (value) => {
        up.setAttribute("aria-pressed", String(value === "up"));
        down.setAttribute("aria-pressed", String(value === "down"));
      };
      mark(current);
      for (const [button, value] of [
        [up, "up"],
        [down, "down"],
      ]) {
        button.addEventListener("click", () => {
          if (give(value)) mark(value);
        });
      }
    },

    /** A person's reply (human handoff): a bubble of its own with the operator's name above the text. */
    addOperatorMessage(text, name) {
      view.showOperatorTyping(null);
      const msg = addMessage("operator");
      el("p", "pc-author", msg.bubble, name || t("person"));
      msg.bubble.appendChild(msg.body); // the name first, then the text
      msg.text = text;
      msg.body.textContent = text; // a person's words are shown as typed, not as Markdown
      scrollDown(true);
      return msg;
    },

    /** A line about the conversation itself (a person joined, nobody is available, ...), not a message. */
    systemNote(text) {
      const row = el("div", "pc-msg pc-msg--system", log);
      el("p", "pc-system", row, text);
      scrollDown(true);
      return row;
    },

    /** "Anna is typing…" under the conversation, or nothing (`name` null). */
    showOperatorTyping(name) {
      if (typingRow) typingRow.remove();
      typingRow = null;
      if (name === null || name === undefined) return;
      typingRow = el("div", "pc-msg pc-msg--system pc-typing-note", log);
      el("p", "pc-system", typingRow, t("operatorTyping", { name: name || t("person") }));
      scrollDown();
    },

    note(msg, key) {
      el("p", "pc-note", msg.bubble, t(key));
    },

    /** Shows the bot's greeting at the top of the log, updates it, or removes it (empty text). */
    showGreeting(text) {
      if (greeting && !text) {
        greeting.row.remove();
        greeting = null;
      } else if (greeting) {
        if (greeting.text !== text) setText(greeting, text);
      } else if (text) {
        greeting = addMessage("assistant", text);
        greeting.row.classList.add("pc-msg--greeting");
        log.prepend(greeting.row); // first, also when it comes after the conversation (admin preview)
      }
    },

    /** Empties the log (new or lost conversation, or history about to be drawn). */
    clearLog() {
      log.textContent = "";
      greeting = null;
    },

    showSuggestions(questions, onAsk) {
      suggest.textContent = "";
      suggest.hidden = !questions.length;
      for (const question of questions) {
        const chip = el("button", "pc-chip", suggest, question);
        chip.type = "button";
        chip.addEventListener("click", () => onAsk(question));
      }
    },

    showBanner(message, kind) {
      bannerKind = kind || "error";
      banner.textContent = message;
      banner.className = `pc-banner pc-banner--${bannerKind}`;
      banner.hidden = false;
    },

    /** Changes the banner's text in place: role=alert announces a replaced banner only. */
    updateBanner(message) {
      banner.textContent = message;
    },

    hideBanner() {
      bannerKind = null;
      banner.hidden = true;
      banner.textContent = "";
    },

    bannerKind: () => bannerKind,

    setStatus(key) {
      statusEl.textContent = t(key);
      statusEl.setAttribute("data-state", key);
    },

    /** Send is possible with text in the box and no answer streaming (nor a rate limit running). */
    setSendable(blocked, streaming) {
      sendButton.disabled = blocked || !input.value.trim();
      form.setAttribute("aria-busy", streaming ? "true" : "false");
    },

    autosize() {
      input.style.height = "auto";
      input.style.height = `${Math.min(input.scrollHeight, 140)}px`;
    },
  };
  return view;
}
