"""Signed visitor identity: a site proves who its signed-in user is, so visitors cannot impersonate each other.

The site's server computes ``user_hash = HMAC-SHA256(bot's identity secret, user_id)`` (hex) and the page
calls ``Parlor.identify({user_id, user_hash, email, name})``. The widget passes ``user_id`` and
``user_hash`` when it opens the chat socket; the consumer verifies them here. A verified visitor chats as
``user:<user_id>`` (``VERIFIED_PREFIX``): the same user's conversations belong together on every device,
and only someone holding a valid hash for that user id can continue them. Widget sockets may not choose
such a visitor id themselves (``widget_visitor_id``).

A wrong hash is always refused; a missing one only when the bot requires signed identities
(``Bot.identity_required``), in which case names and e-mail addresses the page passes without a valid
hash are dropped too (``visitor_attributes_for``). Only the user id is signed (as with Intercom's identity
verification): e-mail and name travel beside it, trusted because the site's own server signed the id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from chatbots.exceptions import ConversationNotFound, IdentityRefused
from chatbots.models import Bot, Conversation
from chatbots.selectors import bot_public_cache_forget

VERIFIED_PREFIX = "user:"
USER_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,59}$")  # "user:" + this fits a visitor id (64 characters)
HASH = re.compile(r"^[0-9a-fA-F]{64}$")
# Attributes that say who the visitor is: only taken from a verified identity on bots that require one.
IDENTITY_KEYS = frozenset({"user_id", "email", "e-mail", "name", "full_name"})
VERIFIED_KEY = "identity_verified"  # set by Parlor only, never taken from the page


@dataclass(frozen=True)
class VerifiedIdentity:
    user_id: str

    @property
    def visitor_id(self) -> str:
        return VERIFIED_PREFIX + self.user_id


def new_identity_secret() -> str:
    """A fresh per-bot identity secret (256 random bits, URL-safe text)."""
    return "idsec_" + secrets.token_urlsafe(32)


def identity_hash(*, secret: str, user_id: str) -> str:
    """What the site's server computes: hex HMAC-SHA256 of the user id with the bot's identity secret."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def bot_identity_secret_rotate(*, bot: Bot) -> str:
    """Generate (or replace) the bot's identity secret and return it; hashes of the old one stop working."""
    secret = new_identity_secret()
    bot.set_identity_secret(secret)
    bot.save(update_fields=["identity_secret_encrypted", "updated_at"])
    bot_public_cache_forget(public_id=bot.public_id)
    return secret


def visitor_identity_verify(*, bot: Bot, user_id: str, user_hash: str) -> VerifiedIdentity | None:
    """The verified identity of a socket's ``user_id``/``user_hash``, ``None`` when none was given (and the
    bot does not require one), or IdentityRefused."""
    if not user_id and not user_hash:
        return None
    if not user_id or not USER_ID.match(user_id):
        raise IdentityRefused("A user id is up to 59 letters, digits or _.:@- (with its user_hash).")
    if not user_hash:
        if bot.identity_required:
            raise IdentityRefused("This chat needs a signed identity: pass user_hash with user_id.")
        return None
    secret = bot.get_identity_secret()
    if not secret or not HASH.match(user_hash):
        raise IdentityRefused()
    if not hmac.compare_digest(identity_hash(secret=secret, user_id=user_id), user_hash.lower()):
        raise IdentityRefused()
    return VerifiedIdentity(user_id=user_id)


def widget_visitor_id(value: str) -> str:
    """A visitor id the widget chose: ids of verified users are Parlor's to give (``""`` instead)."""
    return "" if value.startswith(VERIFIED_PREFIX) else value


def visitor_attributes_for(
    *, bot: Bot, attributes: dict[str, Any] | None, identity: VerifiedIdentity | None
) -> dict[str, Any] | None:
    """The attributes a widget message may store: the page's own, minus what only Parlor may say (and,
    on bots requiring signed identities, minus who the visitor is unless it was verified)."""
    cleaned = {k: v for k, v in (attributes or {}).items() if k != VERIFIED_KEY}
    if identity is None:
        if bot.identity_required:
            cleaned = {k: v for k, v in cleaned.items() if k not in IDENTITY_KEYS}
    else:
        cleaned.update({"user_id": identity.user_id, VERIFIED_KEY: True})
    return cleaned or None


@transaction.atomic
def conversation_claim_for_identity(
    *, bot: Bot, conversation_id: str, anonymous_visitor_id: str, identity: VerifiedIdentity
) -> Conversation:
    """The conversation a verified visitor resumes: one of theirs, or the one this browser started
    anonymously before the page identified them (then it becomes theirs). Anything else is not found."""
    try:
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id, bot=bot)
    except (Conversation.DoesNotExist, ValueError, TypeError, ValidationError):  # not even a UUID
        raise ConversationNotFound() from None
    if conversation.visitor_id == identity.visitor_id:
        return conversation
    if not anonymous_visitor_id or conversation.visitor_id != anonymous_visitor_id:
        raise ConversationNotFound()
    conversation.visitor_id = identity.visitor_id
    conversation.visitor_attributes = {
        **(conversation.visitor_attributes or {}), "user_id": identity.user_id, VERIFIED_KEY: True,
    }  # fmt: skip
    conversation.save(update_fields=["visitor_id", "visitor_attributes"])
    return conversation
