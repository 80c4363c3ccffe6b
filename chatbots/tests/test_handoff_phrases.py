"""The phrase matcher that hears a visitor ask for a person, in each of the widget's interface languages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chatbots.handoff_phrases import LANGUAGES, asks_for_a_person

ASKS = {
    "en": [
        "talk to a person",
        "Can I speak to a human please?",
        "I want a real person",
        "connect me with an agent",
        "agent",
        "Human please!",
        "Is there live chat?",
        "I need to talk to someone from customer service",
    ],
    "de": [
        "mit einem Menschen sprechen",
        "Kann ich bitte mit einem Mitarbeiter sprechen?",
        "Ich möchte mit einer echten Person reden",
        "Mensch bitte",
        "Bitte verbinden Sie mich mit dem Kundendienst",
        "ICH MOECHTE EINEN MITARBEITER",
    ],
    "fr": [
        "parler à une personne",
        "Je voudrais parler à un conseiller",
        "Est-ce que je peux discuter avec un humain ?",
        "un vrai humain svp",
        "passer au service client",
    ],
    "es": [
        "hablar con una persona",
        "¿Puedo hablar con un agente?",
        "Quiero hablar con un humano",
        "una persona real por favor",
        "necesito un asesor",
    ],
}

DOES_NOT_ASK = [
    "How do I return boots?",
    "Wie lange dauert der Versand?",
    "Quels sont vos horaires d'ouverture ?",
    "¿Cuánto cuesta el envío a España?",
    "Is the tent for one person or two?",  # names a person, asks about a product
    "Does the insurance agent cover theft when I rent a tent for my holiday trip next summer?",  # long
    "",
    "   ",
]


@pytest.mark.parametrize(
    ("language", "text"), [(lang, text) for lang, texts in ASKS.items() for text in texts]
)
def test_a_request_for_a_person_is_recognised(language: str, text: str) -> None:
    assert language in LANGUAGES
    assert asks_for_a_person(text), text


@pytest.mark.parametrize("text", DOES_NOT_ASK)
def test_ordinary_questions_are_left_to_the_bot(text: str) -> None:
    assert not asks_for_a_person(text)


def test_the_widget_buttons_own_words_are_recognised_in_every_interface_language() -> None:
    """The header's button sends its localized text with the request; typed by hand it must work too."""
    source = (Path(__file__).resolve().parents[2] / "frontend/dist/parlor/i18n.js").read_text()
    texts = [json.loads(match) for match in re.findall(r'askPersonText: ("[^"]*")', source)]
    assert len(texts) == len(LANGUAGES) == 4
    for text in texts:
        assert asks_for_a_person(text), text
