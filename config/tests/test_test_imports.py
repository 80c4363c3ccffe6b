"""Tests never import tests (the rule is written in the root conftest.py).

Shared fixtures reach a test through pytest (a ``conftest.py`` or a support plugin such as
``config/testing.py``), shared helpers live in support modules outside ``tests`` packages
(``<app>/testing.py``), and the one module of a ``tests`` package that anything may import is its
``factories``. So a test module can move or be renamed without breaking another, and pytest never
collects a test twice through an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".venv", ".parlor", ".git", "node_modules", "migrations", "frontend", "staticfiles"}


def _imported_modules(source: str, module: str) -> list[str]:
    """Every module an import statement of ``source`` names (``module``: its own dotted name)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                package = module.split(".")[: -node.level]
                base = ".".join([*package, base] if base else package)
            # "from app.tests import browser" imports the module app.tests.browser
            names = [f"{base}.{alias.name}" for alias in node.names] if base.endswith(".tests") else [base]
            found.extend(names)
    return found


def _forbidden(imported: str) -> bool:
    parts = imported.split(".")
    if "tests" not in parts:
        return False
    return parts[parts.index("tests") + 1 :] != ["factories"]


def forbidden_imports(source: str, module: str) -> list[str]:
    return [name for name in _imported_modules(source, module) if _forbidden(name)]


def _python_files() -> list[Path]:
    return [
        path for path in ROOT.rglob("*.py") if not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts)
    ]


def test_no_module_imports_a_test_module_or_test_helper() -> None:
    offences = []
    for path in _python_files():
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for name in forbidden_imports(path.read_text(), module):
            offences.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offences, "Tests never import tests (see conftest.py):\n" + "\n".join(sorted(offences))


def test_the_check_sees_every_form_of_import() -> None:
    source = """
import chatbots.tests.test_chat_websocket
from chatbots.tests.browser import HostPages
from chatbots.tests import browser, factories
from .sites import serve
from .factories import make_source
from chatbots.tests.factories import make_chat_bot
from chatbots.testing import connect

def test_inside():
    from accounts.tests.isolation import snapshot
"""
    assert forbidden_imports(source, "knowledge.tests.test_fetching") == [
        "chatbots.tests.test_chat_websocket",
        "chatbots.tests.browser",
        "chatbots.tests.browser",
        "knowledge.tests.sites",
        "accounts.tests.isolation",
    ]
