"""Webhook errors: subclasses of the one ``ApplicationError`` (config/errors.py)."""

from __future__ import annotations

from config.errors import ApplicationError, NotFound

__all__ = ["ApplicationError", "EndpointNotFound", "EndpointUrlRefused", "InvalidEndpoint"]


class InvalidEndpoint(ApplicationError):
    code = "invalid_webhook_endpoint"


class EndpointUrlRefused(InvalidEndpoint):
    """The endpoint's address is private, local or cloud-internal (the outbound guard refused it)."""

    code = "webhook_url_refused"


class EndpointNotFound(NotFound):
    default_message = "No such webhook endpoint."
