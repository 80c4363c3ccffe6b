/* The chat socket: ws(s)://<parlor>/ws/chat/<bot>/ with JSON frames (docs/chat-api.md).
 *
 * Client frames: message {text, attributes?, handoff?}, feedback {message_id, value}, lead {email, name,
 * message, consent, consent_text, reason}, history, typing, ping.
 * Server frames: ready, accepted, history, delta, sources, done, error, pong, feedback_saved, lead_saved, and
 * with a person (human handoff): handoff {status, operator, available}, operator_message {text, operator},
 * typing.
 *
 * Connection keeps one socket open: it reconnects with exponential backoff when the socket drops, slowly
 * when the server refused the bot (paused, unknown, not allowed here), and pings to keep proxies from
 * closing an idle socket. Every server frame goes to onFrame; what it means is the app's business.
 */

const PING_MS = 25000;
const RETRY_MAX_MS = 30000;
const CLOSE_FORBIDDEN = 4403; // origin not allowed
const CLOSE_NOT_FOUND = 4404; // bot or conversation unknown
export const CLOSE_STALLED = 4000; // our own: an answer stalled, start over on a fresh socket

// Error codes (the `code` of an error frame) with a text of their own in the interface (i18n.js keys).
// Any other code shows the server's message.
export const ERROR_TEXTS = {
  rate_limited: "rateLimited",
  bot_paused: "paused",
  message_too_long: "tooLong",
  busy: "busy",
  origin_not_allowed: "unavailable",
  bot_not_found: "unavailable",
  identity_invalid: "identityInvalid",
};

export class Connection {
  /**
   * url(): the socket URL (it carries the visitor and conversation ids, so it is built per attempt);
   * onFrame(frame): every server frame; onConnecting(attempts): a connection attempt starts;
   * onDrop(): the socket closed; onRetry(attempts): the next attempt is scheduled.
   */
  constructor({ url, onFrame, onConnecting, onDrop, onRetry }) {
    Object.assign(this, { url, onFrame, onConnecting, onDrop, onRetry });
    this.ws = null;
    this.ready = false; // the server said `ready`: frames may be sent
    this.stopped = false; // the bot is paused or refused: retry slowly
    this.attempts = 0;
    this.reconnectTimer = null;
    this.pingTimer = null;
  }

  get connected() {
    return this.ws !== null;
  }

  connect() {
    clearTimeout(this.reconnectTimer);
    if (this.ws) return;
    this.onConnecting(this.attempts);
    let sock;
    try {
      sock = new WebSocket(this.url());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = sock;
    sock.onmessage = (event) => {
      if (this.ws !== sock) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "ready") this.markReady();
      this.onFrame(frame);
    };
    sock.onclose = (event) => {
      if (this.ws !== sock) return;
      this.ws = null;
      this.ready = false;
      clearInterval(this.pingTimer);
      if (event.code === CLOSE_FORBIDDEN || event.code === CLOSE_NOT_FOUND) this.stopped = true;
      this.onDrop();
      this.scheduleReconnect();
    };
  }

  markReady() {
    this.ready = true;
    this.attempts = 0;
    this.stopped = false;
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.send({ type: "ping" }), PING_MS);
  }

  scheduleReconnect() {
    this.attempts++;
    this.onRetry(this.attempts);
    // Exponential backoff with jitter, capped; a paused or refused bot is retried slowly.
    const base = this.stopped ? RETRY_MAX_MS : Math.min(RETRY_MAX_MS, 500 * 2 ** (this.attempts - 1));
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), base * (0.5 + Math.random() / 2));
  }

  /** Drop the socket without the usual reconnect and connect again at once (to another conversation). */
  restart() {
    const old = this.ws;
    this.ws = null;
    this.ready = false;
    clearInterval(this.pingTimer);
    if (old) old.close(1000);
    this.attempts = 0;
    this.connect();
  }

  /** Close the socket like a lost connection: reconnects with backoff. */
  drop(code) {
    if (this.ws) this.ws.close(code);
  }

  /** Sends a client frame; false when not connected (the caller keeps it for later). */
  send(frame) {
    if (!this.ws || !this.ready || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
