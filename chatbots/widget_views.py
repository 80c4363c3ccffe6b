"""Public, unauthenticated pages of the embed widget: the loader script, the bot's appearance, the iframe
page, the standalone chat page, and the preview panel the bot admin includes.

The chat itself runs over the WebSocket consumer (ws/chat/<public_id>/); these views only serve the
pages it runs in. Framing is the security boundary: the iframe page may only be framed by the bot's
allowed origins (CSP ``frame-ancestors``), the standalone page only by Parlor itself (admin "try it").
"""

from __future__ import annotations

import gzip
import hashlib
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

from chatbots.appearance import language_for, widget_appearance, widget_texts
from chatbots.exceptions import BotNotFound
from chatbots.models import Bot
from chatbots.origins import frame_ancestors, normalize_origin, origin_allowed, refused_origin_record
from chatbots.selectors import bot_get_public

LOADER_STATIC_PATH = "parlor/widget.js"


def _find_bot(public_id: str) -> Bot | None:
    # Public ids are unguessable and the widget is public by design, so no tenant scope applies here.
    try:
        return bot_get_public(public_id=public_id)
    except BotNotFound:
        return None


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
    language = language_for(bot, request)
    texts = widget_texts(language)
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
        allowed = origin is None or origin_allowed(bot, origin)
        if not allowed:
            refused_origin_record(bot=bot, origin=origin)  # shown on the bot's page
        texts = widget_texts(language_for(bot, request))
        response = JsonResponse(
            {
                **widget_appearance(bot).as_dict(),
                "allowed": allowed,
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
    if not bot.is_active:
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
    """The bot admin's preview / "try it" panel beside the form: the live chat page in an iframe.

    Included by the Bot change form (``widget/admin_bot_change_form.html``); unsaved appearance fields
    are mirrored into the preview as they are typed (static/parlor/admin-preview.js).
    """
    return render_to_string(
        "widget/admin_preview.html",
        {"bot": bot, "chat_url": f"/chat/{bot.public_id}/"},
    )
