"""Refusals the chat pipeline can give; every transport turns them into its own error shape."""

from __future__ import annotations


class ChatError(Exception):
    """A refusal with a stable ``code``, a message safe to show to a visitor and an HTTP status."""

    code = "chat_error"
    http_status = 400
    default_message = "The message could not be answered."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.retry_after = retry_after


class BotNotFound(ChatError):
    code = "bot_not_found"
    http_status = 404
    default_message = "This chatbot does not exist."


class BotPaused(ChatError):
    code = "bot_paused"
    http_status = 503
    default_message = "This chatbot is paused at the moment. Please come back later."


class OriginNotAllowed(ChatError):
    code = "origin_not_allowed"
    http_status = 403
    default_message = "This chatbot is not available on this website."


class ForbiddenByApiKey(ChatError):
    code = "forbidden"
    http_status = 403
    default_message = "This API key may not use this chatbot."


class ConversationNotFound(ChatError):
    code = "conversation_not_found"
    http_status = 404
    default_message = "This conversation does not exist."


class MessageNotFound(ChatError):
    code = "message_not_found"
    http_status = 404
    default_message = "This message does not exist."


class RateLimited(ChatError):
    code = "rate_limited"
    http_status = 429
    default_message = "You are sending messages too quickly. Please slow down."


class ConversationBusy(ChatError):
    code = "busy"
    http_status = 409
    default_message = "Please wait until the current answer has finished."


class InvalidMessage(ChatError):
    code = "invalid_message"
    http_status = 400
    default_message = "The message is empty or malformed."


class MessageTooLong(ChatError):
    code = "message_too_long"
    http_status = 413
    default_message = "The message is too long."
