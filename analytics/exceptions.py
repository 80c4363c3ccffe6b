"""Analytics errors (shaped per transport by config.errors)."""

from __future__ import annotations

from config.errors import ApplicationError


class InvalidDateRange(ApplicationError):
    code = "invalid_date_range"
    default_message = "Choose a start date on or before the end date, at most 366 days apart."


class MetricsUnauthorized(ApplicationError):
    code = "unauthorized"
    http_status = 401
    default_message = "Send 'Authorization: Bearer <METRICS_TOKEN>', or sign in as staff."
