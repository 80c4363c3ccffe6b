"""Chat errors: refusals of the chat pipeline and its surfaces, subclasses of the one ``ApplicationError``
(config/errors.py) that every transport turns into its own shape in one place."""

from __future__ import annotations

from config.errors import ApplicationError


class ChatError(ApplicationError):
    """A refusal with a stable ``code``, a message safe to show to a visitor and an HTTP status."""

    code = "chat_error"
    http_status = 400
    default_message = "The message could not be answered."


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

    def __init__(
        self, message: str | None = None, *, retry_after: int | None = None, first_refusal: bool = True
    ):
        super().__init__(message, retry_after=retry_after)
        self.first_refusal = first_refusal  # the rest of a flood is counted, not stored


class ConversationBusy(ChatError):
    code = "busy"
    http_status = 409
    default_message = "Please wait until the current answer has finished."


class InvalidMessage(ChatError):
    code = "invalid_message"
    http_status = 400
    default_message = "The message is empty or malformed."


class UnsupportedParameter(InvalidMessage):
    """An OpenAI parameter (or value) Parlor does not honour: refused, naming it, never silently ignored."""

    code = "unsupported_parameter"
    default_message = "This parameter is not supported."

    def __init__(self, message: str | None = None, *, param: str, code: str | None = None):
        super().__init__(message, code=code)
        self.param = param


class ModelNotFound(ChatError):
    """OpenAI's name for an unknown bot: ``model`` is a bot's public id."""

    code = "model_not_found"
    http_status = 404
    default_message = "The model does not exist or this API key may not use it."


class RouteNotFound(ChatError):
    code = "unknown_url"
    http_status = 404
    default_message = "There is no such endpoint."


class MethodNotAllowed(ChatError):
    code = "method_not_allowed"
    http_status = 405
    default_message = "This endpoint does not accept this method."


class MessageTooLong(ChatError):
    code = "message_too_long"
    http_status = 413
    default_message = "The message is too long."


class NotAuthenticated(ChatError):
    code = "not_authenticated"
    http_status = 401
    default_message = "Send a valid API key as 'Authorization: Bearer <key>'."


class InvalidFrame(ChatError):
    code = "invalid_frame"
    http_status = 400
    default_message = "Frames must be JSON objects under the size limit."


class LLMUnavailableError(ChatError):
    """No model could answer (after retries and the fallback model); the message says what to do."""

    code = "llm_unavailable"
    http_status = 503
    default_message = "The assistant cannot answer right now. Please try again in a moment."


class InternalError(ChatError):
    code = "internal_error"
    http_status = 500
    default_message = "Something went wrong on our side. Please try again."


class IdentityRefused(ChatError):
    code = "identity_invalid"
    http_status = 403
    default_message = (
        "The visitor's identity could not be verified: the user_hash does not match the user id "
        "(compute it with the bot's identity secret)."
    )


class LeadInvalid(ChatError):
    code = "invalid_lead"
    http_status = 400
    default_message = "Please give a valid e-mail address."


class LeadNotFound(ApplicationError):
    code = "lead_not_found"
    http_status = 404
    default_message = "This lead does not exist."


class ReplyNotSent(ApplicationError):
    code = "reply_not_sent"
    http_status = 400
    default_message = "The reply could not be sent."


class ExportNotFound(ApplicationError):
    code = "export_not_found"
    http_status = 404
    default_message = "This export does not exist."


class ExportUnavailable(ApplicationError):
    """The export's file is not there (any more): still being written, failed, or its link expired."""

    code = "export_unavailable"
    http_status = 410
    default_message = "This export is not available: it is not ready yet, it failed, or its link has expired."


class SubjectRequestInvalid(ApplicationError):
    code = "subject_request_invalid"
    http_status = 400
    default_message = "Give a visitor id, an e-mail address or a conversation id."


class SubjectRequestNotFound(ApplicationError):
    code = "subject_request_not_found"
    http_status = 404
    default_message = "This data subject request does not exist."


class HandoffNotAllowed(ChatError):
    """A handoff transition that the conversation's state does not allow (taken by someone else, not
    waiting, not with a person)."""

    code = "handoff_not_allowed"
    http_status = 409
    default_message = "This conversation cannot change hands now."
