/* What the chat remembers: the visitor's and the conversation's ids (kept across page loads) and the
 * conversation on screen (the answer streaming, messages waiting for a connection, visitor attributes).
 * No DOM and no socket here.
 */

const VISITOR_ID = /^[A-Za-z0-9_-]{8,64}$/; // what the server accepts (chatbots/consumers.py)
const ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const MAX_ATTRIBUTE_CHARS = 500;

export function randomId(length) {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = "";
  for (const byte of bytes) out += ID_CHARS[byte % ID_CHARS.length];
  return out;
}

// Storage of a third-party iframe can be blocked: then the ids live in memory (and in the host page's
// storage, which the loader keeps for us and hands back in the URL fragment).
const memory = new Map();

function load(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return memory.get(key) ?? null;
  }
}

function save(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    if (value === null) memory.delete(key);
    else memory.set(key, value);
  }
}

export class ChatState {
  /**
   * bot: the bot's public id; handed: ids the loader passed (URLSearchParams); onKeep(name, value): told
   * whenever an id changes, so the loader can keep it too.
   */
  constructor({ bot, handed, onKeep }) {
    this.keys = { visitor: "parlor:visitor", conversation: `parlor:conversation:${bot}` };
    this.onKeep = onKeep;
    this.conversationId = handed.get("conversation") || load(this.keys.conversation);
    // Conversations resume only for the visitor who started them: the visitor id goes with them.
    const visitor = handed.get("visitor") || load(this.keys.visitor);
    this.visitorId = VISITOR_ID.test(visitor || "") ? visitor : randomId(22);
    this.keep("visitor", this.visitorId);

    this.current = null; // the assistant message being streamed
    this.outbox = []; // messages typed while disconnected, sent on the next `ready`
    this.attributes = {}; // from the host page's Parlor.identify(), sent with each message
    this.identity = null; // {user_id, user_hash}: a signed identity, sent when the socket opens
    this.identified = false; // the server verified it
    this.sentCount = 0; // the visitor's messages in this conversation (lead capture "after N")
    this.keys.lead = `parlor:lead:${bot}`;
    this.leadDone = load(this.keys.lead); // "given" or "skipped": the lead form is not asked again
    this.leadSending = false;
    this.pendingLead = null;
    this.hadConversation = !!this.conversationId; // the visitor has asked something (no suggestions)
    this.awaitingHistory = false; // resumed: the history is on its way
    this.retryUntil = 0; // rate limited until then (ms since the epoch)
  }

  keep(name, value) {
    save(this.keys[name], value);
    this.onKeep(name, value);
  }

  setConversation(id) {
    this.conversationId = id ? String(id) : null;
    this.keep("conversation", this.conversationId);
  }

  /** Start over: no conversation, nothing queued. */
  forgetConversation() {
    this.setConversation(null);
    this.hadConversation = false;
    this.sentCount = 0;
    this.outbox = [];
  }

  /** Keeps a signed identity; true when it changed (the socket must reconnect to present it). */
  setIdentity(userId, hash) {
    const next = userId && hash ? { user_id: String(userId), user_hash: String(hash) } : null;
    if (JSON.stringify(next) === JSON.stringify(this.identity)) return false;
    this.identity = next;
    return true;
  }

  setLeadDone(value) {
    this.leadDone = value;
    save(this.keys.lead, value);
  }

  identify(attributes) {
    for (const [key, value] of Object.entries(attributes)) {
      this.attributes[key] = String(value).slice(0, MAX_ATTRIBUTE_CHARS);
    }
  }

  rateLimited() {
    return this.retryUntil > Date.now();
  }
}
