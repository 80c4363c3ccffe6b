"""Parlor settings: one module, every value from the environment (see .env.example)."""

from config.settings.base import *  # noqa: F403
