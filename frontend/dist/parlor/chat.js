/* Parlor chat app: runs inside the widget iframe and on the standalone chat page.
 *
 * Native ES modules, no framework and no build step. This module wires them together and holds the
 * conversation's flow: what the visitor does, what each server frame means, and what the host page hears.
 *   protocol.js  the socket (frames, reconnects, pings)      state.js     ids and the conversation
 *   render.js    everything drawn (messages, banner, ...)     markdown.js  safe, streaming Markdown
 *   i18n.js      interface texts                             host.js      postMessage with the host page
 *   leadform.js  the lead form (name, e-mail, consent)
 */

import { createHost } from "./host.js";
import { pickLanguage, translator } from "./i18n.js";
import { createLeadForm } from "./leadform.js";
import { CLOSE_STALLED, Connection, ERROR_TEXTS } from "./protocol.js";
import { createView } from "./render.js";
import { ChatState } from "./state.js";

// An answer that makes no progress for this long is given up on (the socket may be half-dead).
const STALL_MS = 150000; // above the server's own total LLM timeout (120 s), which ends the answer first

let stallTimer = null; // gives up on an answer that stopped arriving
let retryTimer = null; // counts down a rate limit in the banner
let typingTimer = null; // hides "Anna is typing…" when the operator stops
let lastTypingSent = 0; // the visitor's "typing" frames, at most one every TYPING_EVERY_MS

// Human handoff (docs/handoff.md): "" (the bot answers), waiting, taken (a person answers), closed.
const HANDOFF_ACTIVE = ["waiting", "taken"];
const TYPING_EVERY_MS = 2000;
const TYPING_SHOWN_MS = 4000;
let handoff = "";

const cfg = JSON.parse(document.getElementById("parlor-config").textContent);
const params = new URLSearchParams(location.search);
const LANG = pickLanguage([cfg.language, params.get("lang"), ...(navigator.languages || [navigator.language])]);
const t = translator(LANG);
document.documentElement.lang = LANG;

const host = createHost({ embedded: cfg.embedded, hostOrigin: cfg.host_origin || null, preview: cfg.preview });
const view = createView({ t, embedded: cfg.embedded, maxChars: cfg.max_message_chars || 4000 });
// In the widget the loader keeps both ids in the host page's storage (ours may be blocked there as a
// third-party iframe) and hands them over in the URL fragment.
const state = new ChatState({
  bot: cfg.bot,
  handed: new URLSearchParams(cfg.embedded ? location.hash.slice(1) : ""),
  onKeep: (key, value) => host.send("store", { key, value }),
});
const conn = new Connection({
  url: socketUrl,
  onFrame: handle,
  onConnecting: (attempts) => view.setStatus(attempts ? "reconnecting" : "connecting"),
  onDrop() {
    if (state.current) finishAnswer(true);
    updateSend();
  },
  onRetry(attempts) {
    view.setStatus("reconnecting");
    if (!navigator.onLine) view.showBanner(t("offline"), "warn");
    else if (!conn.stopped && attempts > 1) view.showBanner(t("reconnecting"), "warn");
  },
});

function socketUrl() {
  const q = new URLSearchParams({ visitor: state.visitorId });
  // A signed identity from the host page (Parlor.identify with user_hash): verified by the server.
  if (state.identity) {
    q.set("user_id", state.identity.user_id);
    q.set("user_hash", state.identity.user_hash);
  }
  // The visitor's own language (not the interface's): the inbox filters conversations by it.
  const visitorLanguage = navigator.languages?.[0] || navigator.language;
  if (visitorLanguage) q.set("lang", visitorLanguage);
  if (state.conversationId) q.set("conversation", state.conversationId);
  if (cfg.host_origin) q.set("host", cfg.host_origin);
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${cfg.ws_path}?${q}`;
}

// --- Appearance: the bot's, updated by `ready` and, in the admin, live from the form ---------------
const APPEARANCE = ["title", "primary_color", "avatar_url", "theme", "greeting", "suggested_questions", "lead_form"];

function applyAppearance(appearance) {
  for (const key of APPEARANCE) {
    if (appearance[key] !== undefined && appearance[key] !== null) cfg[key] = appearance[key];
  }
  // "auto" follows the visitor's system (prefers-color-scheme in chat.css) unless the embed code forces a
  // theme (data-theme); "page" follows the host page's background, as the loader measured it.
  let theme = cfg.theme;
  if (theme === "page") theme = params.get("theme") || params.get("page") || "auto";
  else if (!theme || theme === "auto") theme = params.get("theme") || "auto";
  view.applyAppearance({ title: cfg.title, primaryColor: cfg.primary_color, avatarUrl: cfg.avatar_url, theme });
}

function showSuggestions(show) {
  view.showSuggestions(show ? cfg.suggested_questions || [] : [], ask);
}

function resetLog() {
  view.clearLog();
  view.showGreeting(cfg.greeting);
}

// --- Server frames -------------------------------------------------------------------------------
function handle(frame) {
  switch (frame.type) {
    case "ready":
      onReady(frame);
      break;
    case "accepted":
      // The message is stored: its conversation exists from now on, before the first token.
      keepConversation(frame.conversation_id);
      break;
    case "history":
      onHistory(frame.messages || []);
      break;
    case "delta":
      onDelta(frame.text || "");
      break;
    case "sources":
      if (state.current) state.current.sources = frame.sources;
      break;
    case "done":
      onDone(frame);
      break;
    case "error":
      onError(frame);
      break;
    case "handoff":
      onHandoff(frame);
      break;
    case "operator_message":
      view.addOperatorMessage(frame.text || "", frame.operator);
      view.announce(`${frame.operator || t("person")}: ${frame.text || ""}`);
      host.event("operator_message", { text: frame.text, operator: frame.operator });
      break;
    case "typing":
      view.showOperatorTyping(frame.operator || "");
      clearTimeout(typingTimer);
      typingTimer = setTimeout(() => view.showOperatorTyping(null), TYPING_SHOWN_MS);
      break;
    case "lead_saved":
      onLeadSaved();
      break;
    default:
      break; // pong, feedback_saved and frames of later versions
  }
}

function onReady(frame) {
  if (!retryTimer) view.hideBanner();
  view.setStatus("online");
  applyAppearance(frame.bot || {});
  handoffEnabled = !!frame.bot?.handoff_enabled;
  handoff = frame.handoff?.status || "";
  updatePersonButton();
  const resumed = !!state.conversationId && String(frame.conversation_id) === state.conversationId;
  const lost = !!state.conversationId && !resumed; // the stored conversation is gone (erased or expired)
  if (lost) resetLog();
  else view.showGreeting(cfg.greeting); // it may have changed since the page was made
  state.setConversation(frame.conversation_id);
  state.identified = !!frame.identified;
  // A verified visitor with an e-mail address is known already: no form to ask them.
  if (state.identified && state.attributes.email && !state.leadSending && lead.reason() !== "nobody_available") {
    lead.close();
  }
  if (state.conversationId) host.event("conversation", { conversation_id: state.conversationId });
  state.awaitingHistory = resumed;
  if (resumed) conn.send({ type: "history" });
  else {
    showSuggestions((!state.hadConversation || lost) && !state.outbox.length);
    flushOutbox(lost);
  }
  if (!state.hadConversation || lost) maybeAskForLead("before_chat");
  updateSend();
}

const HISTORY_RETRY_MS = 1000;

function onHistory(messages) {
  // A reconnect right after an answer was cut can read the history before the server has stored that
  // answer: keep what the visitor saw and ask once more a moment later, instead of dropping it from view.
  const last = messages[messages.length - 1];
  if (last && last.role === "user" && view.hasAnswerAfterLastQuestion() && !state.historyRetried) {
    state.historyRetried = true;
    setTimeout(() => conn.send({ type: "history" }), HISTORY_RETRY_MS);
    return;
  }
  state.historyRetried = false;
  resetLog();
  for (const m of messages) {
    if (m.role !== "user" && !m.text) continue; // a failed answer; the apology was shown live
    if (m.role === "operator") {
      view.addOperatorMessage(m.text, m.operator_name);
      continue;
    }
    const msg = view.addMessage(m.role === "user" ? "user" : "assistant", m.text || "");
    if (m.role === "user") continue;
    msg.id = m.id;
    view.showSources(msg, m.sources);
    if (m.status === "incomplete") view.note(msg, "incomplete");
    if (m.offline) view.note(msg, "offlineAnswer");
    view.showFeedback(msg, m.feedback, (value) => giveFeedback(msg, value));
  }
  state.hadConversation = state.hadConversation || messages.length > 0;
  state.sentCount = messages.filter((m) => m.role === "user").length;
  showSuggestions(messages.length === 0);
  view.scrollDown(true);
  if (state.awaitingHistory) {
    state.awaitingHistory = false;
    flushOutbox(true);
  }
}

function flushOutbox(redraw) {
  // Typed while disconnected; when the log was rebuilt, show those messages again.
  const pending = state.outbox;
  state.outbox = [];
  for (const text of pending) {
    if (redraw) view.addMessage("user", text);
    sendMessage(text);
  }
}

// --- The answer being streamed (state.current) ---------------------------------------------------
function watchStall() {
  clearTimeout(stallTimer);
  stallTimer = setTimeout(() => {
    if (!state.current) return;
    finishAnswer(true);
    view.showBanner(t("error"), "error");
    conn.drop(CLOSE_STALLED); // reconnect; the history shows what the server kept
  }, STALL_MS);
}

function startAnswer() {
  watchStall();
  state.current = view.startStream();
  state.current.pending = "";
  view.announce(t("typing"));
  updateSend();
}

function onDelta(text) {
  if (!state.current) startAnswer();
  watchStall();
  const msg = state.current;
  msg.pending += text;
  // Draw at most once per frame; the Markdown stream redraws only the block still being written.
  if (!msg.frame) {
    msg.frame = requestAnimationFrame(() => {
      msg.frame = 0;
      view.streamText(msg, msg.pending);
    });
  }
}

function finishAnswer(interrupted, frame) {
  const msg = state.current;
  state.current = null;
  clearTimeout(stallTimer);
  if (!msg) return;
  cancelAnimationFrame(msg.frame);
  msg.frame = 0;
  view.endStream(msg, msg.pending, msg.notice);
  if (!msg.pending && msg.notice) {
    interrupted = false; // the provider failed before any text: the apology stands in for the answer
    frame = null;
  }
  if (msg.text) {
    if (frame?.message_id) msg.id = frame.message_id;
    view.showSources(msg, msg.sources);
    if (interrupted || frame?.incomplete) view.note(msg, "incomplete");
    if (frame?.offline) view.note(msg, "offlineAnswer");
    view.showFeedback(msg, null, (value) => giveFeedback(msg, value));
    host.event("message", { message_id: msg.id, text: msg.text, sources: msg.sources || [] });
  }
  maybeAskForLead("after_messages");
  updateSend();
  view.scrollDown();
}

/** The conversation is created with its first message: remember it for reconnects, reloads and other
 * pages as soon as the server names it (`accepted`), so a connection lost during the very first answer
 * resumes this conversation instead of starting another one. */
function keepConversation(id) {
  if (!id || String(id) === state.conversationId) return;
  state.setConversation(id);
  host.event("conversation", { conversation_id: state.conversationId });
}

function onDone(frame) {
  if (!state.current && !frame.message_id) return;
  keepConversation(frame.conversation_id);
  if (!state.current) startAnswer();
  finishAnswer(false, frame);
}

function onError(frame) {
  if (frame.code === "llm_unavailable" && state.current) {
    // The model failed mid-answer: `done` follows and finishes the bubble with this apology.
    state.current.notice = frame.message || t("error");
    return;
  }
  if (lead.isOpen() && state.leadSending && LEAD_ERRORS.has(frame.code)) {
    // The lead frame was refused (invalid, too many): say so in the form, not in the chat's banner.
    state.leadSending = false;
    const key = frame.code === "rate_limited" ? "leadTooMany" : "leadInvalid";
    lead.showError(LANG !== "en" || !frame.message ? t(key) : frame.message);
    return;
  }
  if (frame.code === "conversation_not_found" && state.conversationId) {
    // The stored conversation was erased or belongs elsewhere: start a fresh one quietly.
    state.forgetConversation();
    resetLog();
    showSuggestions(true);
    conn.restart();
    return;
  }
  if (state.current) finishAnswer(true);
  const key = ERROR_TEXTS[frame.code];
  if (key === "rateLimited") {
    startRetryCountdown(Math.max(1, Math.ceil(Number(frame.retry_after) || 5)));
  } else if (key === "paused" || key === "unavailable") {
    conn.stopped = true;
    view.showBanner(t(key), "error");
  } else {
    // English speakers get the server's own wording; other languages our translation of the code.
    const localized = key && (LANG !== "en" || !frame.message);
    view.showBanner(localized ? t(key) : frame.message || t("error"), "error");
  }
  host.event("error", { code: frame.code, message: frame.message, retry_after: frame.retry_after });
}

// --- Human handoff: a person answers ----------------------------------------------------------------
let handoffEnabled = false;

function updatePersonButton() {
  view.personButton.hidden = !handoffEnabled || HANDOFF_ACTIVE.includes(handoff);
}

/**
 * Nobody can answer now (no operator online, or outside the organization's opening hours): the
 * conversation stays waiting and its messages are kept. One place, so the visitor can be offered more
 * here (e.g. leaving an e-mail address).
 */
function showNobodyAvailable() {
  view.systemNote(t("nobodyAvailable"));
  host.event("handoff", { status: "waiting", available: false });
  // Nobody can answer now: offer to leave an e-mail address so the team answers later (docs/leads.md).
  if (!state.leadDone) openLeadForm({ reason: "nobody_available" });
}

function onHandoff(frame) {
  // The bot does not answer this message: drop its typing dots (a bot's answer before an escalation stays).
  if (state.current && !state.current.pending) finishAnswer(false);
  const before = handoff;
  handoff = frame.status || "";
  updatePersonButton();
  updateSend();
  if (handoff === "waiting" && before !== "waiting") {
    if (frame.available) {
      view.systemNote(t("handoffWaiting"));
      host.event("handoff", { status: "waiting", available: true });
    } else {
      showNobodyAvailable();
    }
  } else if (handoff === "taken" && before !== "taken") {
    view.systemNote(t("handoffTaken", { name: frame.operator || t("person") }));
    host.event("handoff", { status: "taken", operator: frame.operator });
  } else if (handoff === "" && HANDOFF_ACTIVE.includes(before)) {
    view.showOperatorTyping(null);
    view.systemNote(t("handoffReleased"));
    host.event("handoff", { status: "" });
  } else if (handoff === "closed" && before !== "closed") {
    view.showOperatorTyping(null);
    view.systemNote(t("handoffClosed"));
    host.event("handoff", { status: "closed" });
  }
}

function askForPerson() {
  if (state.current || state.rateLimited() || HANDOFF_ACTIVE.includes(handoff)) return;
  ask(t("askPersonText"), { handoff: true });
}

function sendTyping() {
  if (!HANDOFF_ACTIVE.includes(handoff)) return;
  const now = Date.now();
  if (now - lastTypingSent < TYPING_EVERY_MS) return;
  lastTypingSent = now;
  conn.send({ type: "typing" });
}

// --- Rate limit countdown --------------------------------------------------------------------------
function duration(seconds) {
  return seconds < 90 ? `${seconds} s` : `${Math.ceil(seconds / 60)} min`;
}

function startRetryCountdown(seconds) {
  state.retryUntil = Date.now() + seconds * 1000;
  clearInterval(retryTimer);
  view.showBanner(t("rateLimited", { time: duration(seconds) }), "warn");
  retryTimer = setInterval(() => {
    const left = Math.ceil((state.retryUntil - Date.now()) / 1000);
    if (left > 0) {
      view.updateBanner(t("rateLimited", { time: duration(left) }));
      return;
    }
    clearInterval(retryTimer);
    retryTimer = null;
    state.retryUntil = 0;
    view.showBanner(t("rateLimitedNow"), "info");
    setTimeout(() => {
      if (!retryTimer && view.bannerKind() === "info") view.hideBanner();
    }, 3000);
    updateSend();
  }, 1000);
  updateSend();
}

// --- The lead form (name, e-mail, consent): Bot.lead_capture, or when nobody is available -----------
const LEAD_ERRORS = new Set(["invalid_lead", "rate_limited", "bad_input", "invalid_frame"]);
const lead = createLeadForm({
  t,
  before: view.form,
  onSubmit(values) {
    state.leadSending = conn.send({ type: "lead", ...values });
    if (state.leadSending) state.pendingLead = values;
    return state.leadSending;
  },
  onClose(reason, skipped) {
    if (reason !== "nobody_available") state.setLeadDone(skipped ? "skipped" : "given");
    host.event("lead", { reason, skipped });
    updateSend();
    view.input.focus();
  },
});

function leadSettings() {
  return cfg.lead_form || { mode: "off" };
}

function consentText() {
  const texts = leadSettings().consent || {};
  return texts[LANG] || texts.en || "";
}

/** Opens the lead form; the handoff's "nobody is available" passes reason "nobody_available". */
function openLeadForm({ reason = "visitor", required = false, intro } = {}) {
  if (cfg.preview || lead.isOpen()) return false;
  const known = state.attributes;
  lead.open({
    reason,
    required,
    intro: intro || (reason === "nobody_available" ? t("leadNobody") : t("leadTitle")),
    consentText: consentText(),
    name: known.name || "",
    email: known.email || "",
  });
  updateSend();
  return true;
}

/** The bot's lead capture: before the first message, or once the visitor has sent `after` messages. */
function maybeAskForLead(reason) {
  const settings = leadSettings();
  if (state.leadDone || (state.identified && state.attributes.email)) return;
  if (reason === "before_chat" && settings.mode === "before") {
    openLeadForm({ reason, required: settings.required });
  } else if (reason === "after_messages" && settings.mode === "after" && state.sentCount >= (settings.after || 1)) {
    openLeadForm({ reason, required: settings.required });
  }
}

function onLeadSaved() {
  const values = state.pendingLead || {};
  state.leadSending = false;
  state.pendingLead = null;
  // The inbox names the visitor from now on; later messages carry the details as well.
  state.identify({ ...(values.name ? { name: values.name } : {}), email: values.email });
  view.announce(t("leadThanks"));
  view.showBanner(t("leadThanks"), "info");
  setTimeout(() => {
    if (view.bannerKind() === "info") view.hideBanner();
  }, 4000);
  lead.saved();
}

// --- What the visitor does ------------------------------------------------------------------------
function updateSend() {
  view.setSendable(!!state.current || state.rateLimited() || lead.blocks(), !!state.current);
}

function sendMessage(text, extra) {
  const frame = { type: "message", text, ...(extra || {}) };
  if (Object.keys(state.attributes).length) frame.attributes = state.attributes;
  // While a resumed conversation's history is on its way, the message waits for it: the history redraws
  // the log, and would otherwise take the answer being streamed with it.
  if (state.awaitingHistory || !conn.send(frame)) {
    state.outbox.push(text);
    if (!conn.connected) conn.connect();
    return;
  }
  // With a person, the message goes to them: no answer from the bot to wait for.
  if (!HANDOFF_ACTIVE.includes(handoff)) startAnswer();
}

function ask(value, extra) {
  const text = String(value || "").trim();
  if (!text || state.current || state.rateLimited() || lead.blocks()) return false;
  if (view.bannerKind() === "error") view.hideBanner();
  showSuggestions(false);
  state.hadConversation = true;
  state.sentCount += 1;
  view.addMessage("user", text);
  host.event("user_message", { text });
  sendMessage(text, extra);
  return true;
}

function giveFeedback(msg, value) {
  if (!conn.send({ type: "feedback", message_id: msg.id, value })) return false;
  view.announce(t("thanks"));
  host.event("feedback", { message_id: msg.id, value });
  return true;
}

function newConversation() {
  if (state.current) finishAnswer(true);
  handoff = "";
  updatePersonButton();
  if (lead.isOpen() && !lead.blocks()) lead.close();
  state.forgetConversation();
  resetLog();
  showSuggestions(true);
  view.announce(t("newStarted"));
  conn.restart();
  view.input.focus();
  host.event("new_conversation", {});
}

function requestClose() {
  host.send("close");
}

view.form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (ask(view.input.value)) {
    view.input.value = "";
    view.autosize();
  }
  updateSend();
  view.input.focus();
});
view.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    if (view.form.requestSubmit) view.form.requestSubmit();
    else view.form.dispatchEvent(new Event("submit", { cancelable: true }));
  }
});
view.input.addEventListener("input", () => {
  view.autosize();
  updateSend();
  sendTyping();
});
view.personButton.addEventListener("click", askForPerson);
view.newButton.addEventListener("click", newConversation);
view.closeButton?.addEventListener("click", requestClose);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && cfg.embedded) requestClose();
});

window.addEventListener("online", () => {
  if (!conn.connected) {
    conn.attempts = 0;
    conn.connect();
  } else if (conn.ready && !retryTimer && !conn.stopped) {
    view.hideBanner();
  }
});
window.addEventListener("offline", () => view.showBanner(t("offline"), "warn"));

// --- What the host page (widget) or the admin (live preview) asks -----------------------------------
host.listen({
  open: () => view.input.focus(),
  identify: (data) => {
    if (!data.attributes || typeof data.attributes !== "object") return;
    const { user_hash: hash, ...attributes } = data.attributes;
    state.identify(attributes);
    // A signed identity goes with the socket (the server verifies it): reconnect when it changed.
    if (hash !== undefined && state.setIdentity(attributes.user_id, hash) && conn.connected) conn.restart();
  },
  ask: (data) => ask(data.text),
  reset: () => newConversation(),
  preview: (data, { fromAdmin }) => {
    if (!fromAdmin || !data.appearance || typeof data.appearance !== "object") return;
    applyAppearance(data.appearance);
    view.showGreeting(cfg.greeting);
    if (!state.hadConversation) showSuggestions(true);
  },
});

// --- Start -------------------------------------------------------------------------------------------
applyAppearance({});
view.showGreeting(cfg.greeting);
showSuggestions(!state.conversationId);
updateSend();
if (cfg.status === "paused") {
  conn.stopped = true;
  view.showBanner(t("paused"), "error");
}
conn.connect();
host.send("ready");
// Not in the admin's preview: focusing an input inside the frame would scroll the admin page down to it.
if (!cfg.embedded && !cfg.preview) view.input.focus();

// Test and host hooks (read-only state, handy for debugging a deployment).
window.ParlorChat = {
  ask,
  askForPerson,
  newConversation,
  openLeadForm,
  state: () => ({
    ready: conn.ready,
    conversationId: state.conversationId,
    streaming: !!state.current,
    language: LANG,
    handoff,
  }),
};
