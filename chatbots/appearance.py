"""How a bot's widget looks and speaks, defined once for the widget config, the chat page, the iframe and the
socket's ``ready`` frame: title, colours, texts, languages and limits."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from chatbots.leads import lead_form_settings
from chatbots.models import Bot, BotStatus
from chatbots.services import MAX_SUGGESTED_QUESTIONS

DEFAULT_COLOR = "#4f46e5"

_TEXTS = {
    "en": {
        "unknown_title": "This chat is not available",
        "unknown_body": "The chatbot you are looking for does not exist or was removed.",
        "paused_title": "This assistant is paused",
        "paused_body": "It is not answering at the moment. Please come back later.",
        "open_chat": "Open chat",
        "close_chat": "Close chat",
    },
    "de": {
        "unknown_title": "Dieser Chat ist nicht verfügbar",
        "unknown_body": "Den gesuchten Chatbot gibt es nicht oder er wurde entfernt.",
        "paused_title": "Dieser Assistent ist pausiert",
        "paused_body": "Er antwortet gerade nicht. Bitte versuchen Sie es später erneut.",
        "open_chat": "Chat öffnen",
        "close_chat": "Chat schließen",
    },
    "fr": {
        "unknown_title": "Ce chat n’est pas disponible",
        "unknown_body": "Le chatbot que vous cherchez n’existe pas ou a été supprimé.",
        "paused_title": "Cet assistant est en pause",
        "paused_body": "Il ne répond pas pour le moment. Revenez plus tard.",
        "open_chat": "Ouvrir le chat",
        "close_chat": "Fermer le chat",
    },
    "es": {
        "unknown_title": "Este chat no está disponible",
        "unknown_body": "El chatbot que buscas no existe o se ha eliminado.",
        "paused_title": "Este asistente está en pausa",
        "paused_body": "Ahora no responde. Vuelve más tarde.",
        "open_chat": "Abrir el chat",
        "close_chat": "Cerrar el chat",
    },
}


def language_for_request(request: HttpRequest) -> str:
    """The first of the visitor's browser languages the widget speaks, else English."""
    for part in request.headers.get("Accept-Language", "").split(","):
        code = part.split(";")[0].strip().split("-")[0].lower()
        if code in _TEXTS:
            return code
    return "en"


def language_for(bot: Bot | None, request: HttpRequest) -> str:
    """The bot's interface language, or the visitor's browser language when the bot says "auto"."""
    language = (bot.language if bot else "auto").split("-")[0].lower()
    return language if language in _TEXTS else language_for_request(request)


def widget_texts(language: str) -> dict[str, str]:
    return _TEXTS.get(language, _TEXTS["en"])


def _contrast_text(color: str) -> str:
    value = int(color[1:], 16)
    r, g, b = (value >> 16) & 255, (value >> 8) & 255, value & 255
    return "#111827" if (0.299 * r + 0.587 * g + 0.114 * b) / 255 > 0.6 else "#ffffff"


@dataclass(frozen=True)
class WidgetAppearance:
    bot: str
    title: str
    status: str
    primary_color: str
    on_primary_color: str
    position: str
    launcher_text: str
    avatar_url: str
    theme: str
    language: str
    greeting: str
    suggested_questions: list[str]
    max_message_chars: int
    lead_form: dict[str, Any]
    handoff_enabled: bool = False  # the header's "talk to a person" button (human handoff)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def widget_appearance(bot: Bot) -> WidgetAppearance:
    """Nothing secret: this is public to anyone who has the bot's public id."""
    color = bot.widget_primary_color or DEFAULT_COLOR
    avatar = bot.widget_avatar_url or ""
    return WidgetAppearance(
        bot=bot.public_id,
        title=bot.display_title,
        status=bot.status or BotStatus.ACTIVE,
        primary_color=color,
        on_primary_color=_contrast_text(color),
        position=bot.widget_position,
        launcher_text=bot.widget_launcher_text,
        avatar_url=avatar if avatar.startswith(("https://", "http://")) else "",
        theme=bot.widget_theme,
        language=bot.language,
        greeting=bot.greeting,
        suggested_questions=[str(q) for q in bot.suggested_questions or [] if str(q).strip()][
            :MAX_SUGGESTED_QUESTIONS
        ],
        max_message_chars=settings.CHAT_MAX_MESSAGE_CHARS,
        handoff_enabled=bot.handoff_enabled,
        lead_form=lead_form_settings(bot),
    )
