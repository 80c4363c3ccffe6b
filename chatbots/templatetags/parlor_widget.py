"""Template tags for embedding the widget's admin preview (used by the Bot change form)."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from chatbots.widget_views import admin_preview_html, embed_snippet

register = template.Library()


@register.simple_tag
def parlor_admin_preview(bot) -> SafeString:
    # admin_preview_html renders a Django template, so every bot value in it is already escaped.
    return mark_safe(admin_preview_html(bot))  # noqa: S308


@register.simple_tag
def parlor_embed_snippet(bot) -> str:
    return embed_snippet(bot)
