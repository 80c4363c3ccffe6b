"""Does a visitor's message ask for a person? A small phrase matcher for the widget's interface languages
(English, German, French, Spanish — frontend/dist/parlor/i18n.js), not a language model: it must be
instant, predictable and free, and a miss only means the visitor uses the header's button instead.

A message asks for a person when it is short (a real question that mentions an agent is for the bot) and
names a person-word ("human", "Mensch", "humain", "persona", ...) together with a request verb or
preposition, or is one of the fixed phrases ("live chat", "Kundendienst", ...). Accents and case do not
matter.
"""

from __future__ import annotations

import re
import unicodedata

MAX_WORDS = 12  # longer messages are questions for the bot, even if they mention a person

# Whole messages that are a request on their own ("agent", "operator please").
_ALONE = r"(human|person|agent|operator|mensch|mitarbeiter(in)?|humain|conseiller|agente|operador(a)?|humano)"

# Per language: a person-word and a word that asks for one, in either order, within the message.
_PATTERNS: dict[str, list[str]] = {
    "en": [
        r"\b(talk|speak|chat|connect|transfer|put)\b.*\b(human|person|agent|operator|someone|somebody|"
        r"staff|representative|rep|real people|customer service|support team)\b",
        r"\b(real|live|actual)\s+(human|person|agent|people)\b",
        r"\b(human|person|agent|operator)\s+please\b",
        r"\bi\s+(want|need|would like)\s+(a|an|to\s+talk\s+to\s+a)?\s*(human|person|agent|operator)\b",
        r"\blive\s+(chat|support|agent)\b",
    ],
    "de": [
        r"\b(mit|an)\b.*\b(mensch(en)?|person|mitarbeiter(in)?|berater(in)?|kundendienst|support)\b.*"
        r"\b(sprechen|reden|schreiben|chatten|verbinden|weiterleiten)\b",
        r"\b(echte[nmr]?|richtige[nmr]?)\s+(mensch(en)?|person|mitarbeiter(in)?)\b",
        r"\b(mensch(en)?|mitarbeiter(in)?|person)\s+bitte\b",
        r"\b(ich\s+)?(will|mochte|moechte|brauche)\b.*\b(mensch(en)?|mitarbeiter(in)?|berater(in)?)\b",
        r"\bkundendienst\b",
    ],
    "fr": [
        r"\b(parler|discuter|echanger|mettre en relation|passer)\b.*\b(humain|personne|conseiller(e)?|agent|"
        r"operateur|operatrice|quelqu'?un|service client)\b",
        r"\b(vrai(e)?|veritable)\s+(humain|personne|conseiller(e)?)\b",
        r"\b(humain|conseiller|agent)\s+(svp|s'?il vous plait|s'?il te plait)\b",
        r"\bje\s+(veux|voudrais|souhaite)\b.*\b(humain|conseiller(e)?|agent|operateur)\b",
    ],
    "es": [
        r"\b(hablar|chatear|comunicar(me)?|pasar(me)?|conectar(me)?)\b.*\b(persona|humano|agente|"
        r"operador(a)?|alguien|asesor(a)?|servicio al cliente)\b",
        r"\b(persona|humano)\s+(real|de verdad)\b",
        r"\b(humano|agente|operador(a)?|persona)\s+por favor\b",
        r"\b(quiero|necesito|quisiera)\b.*\b(humano|agente|operador(a)?|asesor(a)?)\b",
    ],
}

_COMPILED = {lang: [re.compile(p) for p in patterns] for lang, patterns in _PATTERNS.items()}
_ALONE_RE = re.compile(rf"^{_ALONE}(\s+(please|bitte|svp|por favor))?$")
LANGUAGES = tuple(_PATTERNS)


def _normalized(text: str) -> str:
    """Lower case, accents removed (ü and ue both match), punctuation to spaces except apostrophes."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("’", "'")
    return " ".join(re.sub(r"[^\w' ]+", " ", text).split())


def asks_for_a_person(text: str) -> bool:
    """True when ``text`` asks to talk to a person, in any of the interface's languages."""
    normalized = _normalized(text)
    if not normalized or len(normalized.split()) > MAX_WORDS:
        return False
    if _ALONE_RE.match(normalized):
        return True
    return any(pattern.search(normalized) for patterns in _COMPILED.values() for pattern in patterns)
