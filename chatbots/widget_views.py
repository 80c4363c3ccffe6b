"""Public, unauthenticated pages of the embed widget: the loader script, the bot's appearance, the iframe
page, the standalone chat page, and the preview panel the bot admin includes.

The chat itself runs over the WebSocket consumer (ws/chat/<public_id>/); these views only serve the
pages it runs in. Framing is the security boundary: the iframe page may only be framed by the bot's
allowed origins (CSP ``frame-ancestors``), the standalone page only by Parlor itself (admin "try it").
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.clickjacking import xframe_options_exempt, xframe_options_sameorigin
from django.views.decorators.http import require_GET

from chatbots.models import Bot
from chatbots.origins import frame_ancestors, normalize_origin, origin_allowed
from chatbots.pipeline.errors import BotNotFound
from chatbots.selectors import bot_get_public

LOADER_STATIC_PATH = "parlor/widget.js"
DEFAULT_COLOR = "#4f46e5"
MAX_MESSAGE_CHARS = 4000
# What a CSP source expression from an admin-entered origin may look like (no spaces, quotes or ';').
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")

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


# --- Bot settings as the widget sees them ----------------------------------------------------------
# getattr with defaults: the widget keeps working whatever appearance fields a bot has.


def _field(bot: Bot, name: str, default: Any) -> Any:
    value = getattr(bot, name, default)
    return default if value in (None, "") else value


def language_for(bot: Bot, request: HttpRequest) -> str:
    """The bot's interface language, or the visitor's browser language when the bot says "auto"."""
    language = str(_field(bot, "language", "auto")).split("-")[0].lower()
    return language if language in _TEXTS else language_for_request(request)


def language_for_request(request: HttpRequest) -> str:
    for part in request.headers.get("Accept-Language", "").split(","):
        code = part.split(";")[0].strip().split("-")[0].lower()
        if code in _TEXTS:
            return code
    return "en"


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

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def widget_appearance(bot: Bot) -> WidgetAppearance:
    color = str(_field(bot, "widget_primary_color", DEFAULT_COLOR))
    if not _COLOR_RE.match(color):
        color = DEFAULT_COLOR
    suggested = _field(bot, "suggested_questions", []) or []
    avatar = str(_field(bot, "widget_avatar_url", ""))
    return WidgetAppearance(
        bot=bot.public_id,
        title=str(_field(bot, "widget_title", bot.name)),
        status=str(_field(bot, "status", "active")),
        primary_color=color,
        on_primary_color=_contrast_text(color),
        position=str(_field(bot, "widget_position", "right")),
        launcher_text=str(_field(bot, "widget_launcher_text", "")),
        avatar_url=avatar if avatar.startswith(("https://", "http://")) else "",
        theme=str(_field(bot, "widget_theme", "auto")),
        language=str(_field(bot, "language", "auto")),
        greeting=str(_field(bot, "greeting", "")),
        suggested_questions=[str(q) for q in suggested if str(q).strip()][:6],
    )


def _find_bot(public_id: str) -> Bot | None:
    # Public ids are unguessable and the widget is public by design, so no tenant scope applies here.
    try:
        return bot_get_public(public_id=public_id)
    except BotNotFound:
        return None


def _is_paused(bot: Bot) -> bool:
    return str(_field(bot, "status", "active")) == "paused"


def chat_config(
    bot: Bot, *, embedded: bool, host_origin: str | None, preview: bool = False
) -> dict[str, Any]:
    """Everything the chat app needs at start; rendered with json_script (never executed as code)."""
    return {
        **widget_appearance(bot).as_dict(),
        "embedded": embedded,
        "preview": preview,
        "host_origin": host_origin,
        "ws_path": f"/ws/chat/{bot.public_id}/",
        "max_message_chars": int(getattr(settings, "CHAT_MAX_MESSAGE_CHARS", MAX_MESSAGE_CHARS)),
    }


def _csp(*, ancestors: str, request: HttpRequest) -> str:
    host = request.get_host()
    ws = f"wss://{host}" if request.is_secure() else f"ws://{host}"
    # Defence in depth for the XSS-safe renderer: no inline script, no plugins, no foreign connections.
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
        f"connect-src 'self' {ws}; base-uri 'none'; form-action 'none'; object-src 'none'; "
        f"frame-ancestors {ancestors}"
    )


def _unavailable(request: HttpRequest, bot: Bot | None, *, ancestors: str) -> HttpResponse:
    language = language_for(bot, request) if bot else language_for_request(request)
    texts = _TEXTS[language]
    paused = bot is not None
    context = {
        "language": language,
        "title": texts["paused_title" if paused else "unknown_title"],
        "body": texts["paused_body" if paused else "unknown_body"],
        "bot_title": widget_appearance(bot).title if bot else "",
    }
    response = render(request, "widget/unavailable.html", context, status=200 if paused else 404)
    response["Content-Security-Policy"] = _csp(ancestors=ancestors, request=request)
    response["Cache-Control"] = "no-store"
    return response


# --- Views ---------------------------------------------------------------------------------------


@dataclass
class _Loader:
    mtime: float = -1.0
    body: bytes = b""
    gzipped: bytes = b""
    etag: str = ""


_loader = _Loader()


def _loader_file() -> Path:
    found = finders.find(LOADER_STATIC_PATH)
    if found:
        return Path(found)
    return Path(settings.STATIC_ROOT) / LOADER_STATIC_PATH


def _load_loader() -> _Loader:
    path = _loader_file()
    mtime = path.stat().st_mtime
    if mtime != _loader.mtime:  # re-read after a deploy or an edit in development
        body = path.read_bytes()
        _loader.body = body
        _loader.gzipped = gzip.compress(body, compresslevel=9, mtime=0)
        _loader.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        _loader.mtime = mtime
    return _loader


@require_GET
def widget_loader(request: HttpRequest) -> HttpResponse:
    """/widget.js: the same small file for every bot (the bot comes from data-bot), cacheable."""
    loader = _load_loader()
    if request.headers.get("If-None-Match") == loader.etag:
        response: HttpResponse = HttpResponseNotModified()
    elif "gzip" in request.headers.get("Accept-Encoding", ""):
        response = HttpResponse(loader.gzipped, content_type="text/javascript; charset=utf-8")
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(loader.body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = loader.etag
    response["Vary"] = "Accept-Encoding"
    # Short max-age so a new loader reaches every site within minutes; ETag makes revalidation cheap.
    response["Cache-Control"] = "public, max-age=300, stale-while-revalidate=86400"
    response["Access-Control-Allow-Origin"] = "*"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@require_GET
def widget_config(request: HttpRequest, public_id: str) -> JsonResponse:
    """The launcher's appearance, and whether the calling site may embed the bot at all."""
    bot = _find_bot(public_id)
    if bot is None:
        response = JsonResponse({"error": "bot_not_found"}, status=404)
    else:
        origin = request.headers.get("Origin")
        texts = _TEXTS[language_for(bot, request)]
        response = JsonResponse(
            {
                **widget_appearance(bot).as_dict(),
                "allowed": origin is None or origin_allowed(bot, origin),
                "launcher_label": texts["open_chat"],
                "close_label": texts["close_chat"],
            }
        )
    response["Access-Control-Allow-Origin"] = "*"
    response["Vary"] = "Origin, Accept-Language"
    response["Cache-Control"] = "no-cache"  # appearance changes show on the next page load
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@require_GET
@xframe_options_exempt  # framing is governed by CSP frame-ancestors below, per bot
def widget_frame(request: HttpRequest, public_id: str) -> HttpResponse:
    """/widget/<public_id>/: the chat app inside the iframe the loader adds to the customer's page."""
    bot = _find_bot(public_id)
    if bot is None:
        return _unavailable(request, None, ancestors="*")
    ancestors = frame_ancestors(bot)
    # A paused bot still gets the app (its banner says so, the close button works, and it reconnects
    # slowly, so the chat comes back by itself when the bot is resumed).
    host = normalize_origin(request.GET.get("host", ""))
    host_origin = host if host and origin_allowed(bot, host) else None
    context = {
        "config": chat_config(bot, embedded=True, host_origin=host_origin),
        "language": language_for(bot, request),
        "body_class": "pc-frame-body",
    }
    response = render(request, "widget/chat.html", context)
    response["Content-Security-Policy"] = _csp(ancestors=ancestors, request=request)
    response["Cache-Control"] = "no-cache"
    return response


@require_GET
@xframe_options_sameorigin  # the admin's "try it" panel frames it; nobody else
def chat_page(request: HttpRequest, public_id: str) -> HttpResponse:
    """/chat/<public_id>/: a shareable full-page chat with the bot (same app as the widget)."""
    bot = _find_bot(public_id)
    if bot is None:
        return _unavailable(request, None, ancestors="'self'")
    if _is_paused(bot):
        return _unavailable(request, bot, ancestors="'self'")
    preview = request.GET.get("preview") == "1"
    context = {
        "config": chat_config(bot, embedded=False, host_origin=None, preview=preview),
        "language": language_for(bot, request),
        "body_class": "pc-page-body",
    }
    response = render(request, "widget/chat.html", context)
    response["Content-Security-Policy"] = _csp(ancestors="'self'", request=request)
    response["Cache-Control"] = "no-cache"
    return response


def embed_snippet(bot: Bot) -> str:
    """The one script tag a customer pastes into their site."""
    return f'<script src="{settings.SITE_URL}/widget.js" data-bot="{bot.public_id}" defer></script>'


def admin_preview_html(bot: Bot) -> str:
    """The bot admin's preview / "try it" panel: embed code plus the live chat page in an iframe.

    Included by the Bot change form (``widget/admin_bot_change_form.html``); unsaved appearance fields
    are mirrored into the preview as they are typed (static/parlor/admin-preview.js).
    """
    return render_to_string(
        "widget/admin_preview.html",
        {"bot": bot, "snippet": embed_snippet(bot), "chat_url": f"/chat/{bot.public_id}/"},
    )
