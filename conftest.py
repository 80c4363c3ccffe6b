"""Test-wide setup: real PostgreSQL + pgvector (embedded unless DATABASE_URL is set) and a Redis server of
this run's own, both chosen before Django is set up (see config/testing.py).

Tests never import tests. Fixtures reach tests through pytest: an app's ``tests/conftest.py``, or the
support plugins below (modules outside any ``tests`` package). Test data comes from an app's
``tests/factories.py``, the only module of a ``tests`` package that others import. Shared helpers live
in the support modules (``<app>/testing.py``). config/tests/test_test_imports.py enforces the rule.
"""

from __future__ import annotations

import django
import pytest

pytest.register_assert_rewrite("config.testing")  # a plugin below, imported early for isolate_run
from config.testing import isolate_run  # noqa: E402

isolate_run()  # before Django reads settings: they take the Redis URL and test database name from it
django.setup()

pytest_plugins = ["config.testing", "chatbots.testing", "webhooks.testing"]
