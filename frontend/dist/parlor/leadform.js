/* The lead form: name, e-mail address, an optional question and the consent checkbox, drawn above the
 * message box (before chatting, after some messages, or when nobody is available to answer).
 *
 * No socket here: the app (chat.js) decides when the form opens, sends what it returns as a `lead` frame
 * and reports back with saved() or showError(). The consent text comes from the server (the bot's own or a
 * default per language) and is sent back as shown: the lead stores exactly what the visitor agreed to.
 */

function el(tag, cls, parent, txt) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (txt !== undefined) node.textContent = txt;
  if (parent) parent.appendChild(node);
  return node;
}

let uid = 0;

function field(parent, label, input) {
  const id = `pc-lead-${++uid}`;
  const row = el("div", "pc-lead-field", parent);
  const lab = el("label", "", row, label);
  lab.htmlFor = id;
  input.id = id;
  row.appendChild(input);
  return input;
}

/**
 * t: translations; before: the element the card is placed in front of (the message box);
 * onSubmit(values): returns false when the values could not be sent (offline); onClose(reason, skipped).
 */
export function createLeadForm({ t, before, onSubmit, onClose }) {
  let card = null;
  let current = null; // {reason, consentText, required}

  function close(skipped) {
    if (!card) return;
    const reason = current.reason;
    card.remove();
    card = null;
    current = null;
    onClose(reason, skipped);
  }

  function showError(text) {
    if (!card) return;
    const error = card.querySelector(".pc-lead-error");
    error.textContent = text;
    error.hidden = !text;
    card.querySelector("button[type=submit]").disabled = false;
  }

  /** Opens the form (or keeps the open one); `required` hides "skip", `intro` says why it is asked. */
  function open({ reason, consentText, required, intro, name, email, message }) {
    if (card) return;
    current = { reason, consentText, required: !!required };
    card = el("form", "pc-lead");
    card.noValidate = true;
    card.setAttribute("data-lead-form", reason);
    card.setAttribute("aria-label", t("leadTitle"));
    el("p", "pc-lead-title", card, intro || t("leadTitle"));
    const nameInput = field(card, t("leadName"), el("input", "pc-lead-input"));
    nameInput.name = "name";
    nameInput.autocomplete = "name";
    nameInput.maxLength = 120;
    nameInput.value = name || "";
    const emailInput = field(card, t("leadEmail"), el("input", "pc-lead-input"));
    emailInput.name = "email";
    emailInput.type = "email";
    emailInput.required = true;
    emailInput.autocomplete = "email";
    emailInput.maxLength = 254;
    emailInput.value = email || "";
    let messageInput = null;
    if (reason === "nobody_available" || reason === "visitor") {
      messageInput = field(card, t("leadMessage"), el("textarea", "pc-lead-input"));
      messageInput.name = "message";
      messageInput.rows = 3;
      messageInput.maxLength = 4000;
      messageInput.value = message || "";
    }
    const consentRow = el("label", "pc-lead-consent", card);
    const consent = el("input", "", consentRow);
    consent.type = "checkbox";
    consent.name = "consent";
    el("span", "", consentRow, consentText);
    const error = el("p", "pc-lead-error", card);
    error.setAttribute("role", "alert");
    error.hidden = true;
    const actions = el("div", "pc-lead-actions", card);
    const submit = el("button", "pc-lead-submit", actions, t("leadSubmit"));
    submit.type = "submit";
    if (!required) {
      const skip = el(
        "button",
        "pc-lead-skip",
        actions,
        reason === "nobody_available" ? t("leadCancel") : t("leadSkip"),
      );
      skip.type = "button";
      skip.addEventListener("click", () => close(true));
    }
    card.addEventListener("submit", (event) => {
      event.preventDefault();
      const email = emailInput.value.trim();
      if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) return showError(t("leadInvalidEmail"));
      if (!consent.checked) return showError(t("leadNeedsConsent"));
      showError("");
      submit.disabled = true;
      const sent = onSubmit({
        reason,
        name: nameInput.value.trim(),
        email,
        message: messageInput ? messageInput.value.trim() : "",
        consent: true,
        consent_text: consentText,
      });
      if (!sent) showError(t("offline"));
    });
    before.parentNode.insertBefore(card, before);
    (email ? consent : nameInput).focus();
  }

  /** The server stored the lead: thank the visitor and close. */
  function saved() {
    if (!card) return;
    const reason = current.reason;
    card.remove();
    card = null;
    current = null;
    onClose(reason, false);
  }

  return {
    open,
    close: () => close(true),
    saved,
    showError,
    isOpen: () => !!card,
    reason: () => current?.reason || null,
    blocks: () => !!card && (current.required || current.reason === "before_chat"),
  };
}
