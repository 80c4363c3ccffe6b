"""Apps depend one way, accounts ← knowledge ← chatbots ← analytics. ``lint-imports`` checks the imports
(pyproject.toml); this checks what it cannot see: a model looked up by name (``apps.get_model``) or a
relation declared by name (``"chatbots.Bot"``) pointing up the layers."""

from __future__ import annotations

import re
from pathlib import Path

LAYERS = ["accounts", "knowledge", "chatbots", "analytics"]
ROOT = Path(__file__).resolve().parents[2]
BY_NAME = re.compile(r"""get_model\(\s*["'](\w+)["']|["'](\w+)\.[A-Z]\w*["']""")


def _application_files(app: str) -> list[Path]:
    return [
        path
        for path in (ROOT / app).rglob("*.py")
        if "tests" not in path.parts and "migrations" not in path.parts
    ]


def test_no_app_reaches_a_higher_app_by_name():
    found = []
    for rank, app in enumerate(LAYERS):
        higher = set(LAYERS[rank + 1 :])
        for path in _application_files(app):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                for match in BY_NAME.finditer(line):
                    target = match.group(1) or match.group(2)
                    if target in higher:
                        found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "lower apps name higher apps' models:\n" + "\n".join(found)
