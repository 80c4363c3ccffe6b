"""Measure the widget's download sizes (raw and gzip -9) and record them in BENCHMARKS.md.

    .venv/bin/python bench/widget_size.py            # print and update the "Widget" section
    .venv/bin/python bench/widget_size.py --check    # exit 1 if a budget is exceeded (CI-friendly)

Budgets (issue 8): the loader a host page downloads, widget.js, at most 6 KB gzipped; the chat app the
iframe downloads (HTML aside: chat.js, the ES modules it imports, chat.css) at most 60 KB gzipped.
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "frontend" / "dist" / "parlor"
LOADER = ["widget.js"]
APP_ENTRY = "chat.js"
APP_STYLES = ["chat.css"]
LOADER_BUDGET = 6 * 1024
APP_BUDGET = 60 * 1024
SECTION_START = "<!-- widget-size:start -->"
SECTION_END = "<!-- widget-size:end -->"


# `import ... from "./name.js";` and `export ... from "./name.js";` of the chat app's modules.
_IMPORT_RE = re.compile(r"""^(?:import|export)\b[^;]*?\bfrom\s*["']\./([\w.-]+\.js)["']""", re.M)


def app_files() -> list[str]:
    """The chat app's files: its entry module, every module it imports (transitively), its styles."""
    found = [APP_ENTRY]
    for name in found:
        for imported in _IMPORT_RE.findall((ASSETS / name).read_text()):
            if imported not in found:
                found.append(imported)
    return found + APP_STYLES


APP = app_files()


def sizes(names: list[str]) -> list[tuple[str, int, int]]:
    rows = []
    for name in names:
        data = (ASSETS / name).read_bytes()
        rows.append((name, len(data), len(gzip.compress(data, compresslevel=9, mtime=0))))
    return rows


def kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def section(loader: list[tuple[str, int, int]], app: list[tuple[str, int, int]]) -> str:
    loader_gz = sum(r[2] for r in loader)
    app_gz = sum(r[2] for r in app)
    lines = [
        SECTION_START,
        "## Widget",
        "",
        "Download sizes of the embed widget (`frontend/dist/parlor/`, no build step), gzip level 9.",
        "Command: `.venv/bin/python bench/widget_size.py` (add `--check` to fail over budget).",
        "",
        "| part | file | raw | gzipped |",
        "| --- | --- | ---: | ---: |",
    ]
    for part, rows in (("loader (host page)", loader), ("chat app (iframe)", app)):
        for name, raw, gz in rows:
            lines.append(f"| {part} | `{name}` | {kb(raw)} | {kb(gz)} |")
    lines += [
        "",
        f"- Loader total: **{kb(loader_gz)}** gzipped (budget {kb(LOADER_BUDGET)}). Until the visitor opens the",
        "  chat (or points at the launcher), a host page downloads only this plus a small JSON config.",
        f"- Chat app total: **{kb(app_gz)}** gzipped (budget {kb(APP_BUDGET)}), loaded inside the iframe on first open.",
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def write(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(SECTION_START) + r".*?" + re.escape(SECTION_END) + r"\n?", re.S)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the budgets, do not write")
    args = parser.parse_args()
    loader, app = sizes(LOADER), sizes(APP)
    text = section(loader, app)
    print(text)
    loader_gz, app_gz = sum(r[2] for r in loader), sum(r[2] for r in app)
    ok = loader_gz <= LOADER_BUDGET and app_gz <= APP_BUDGET
    if not args.check:
        write(text)
    if not ok:
        print("over budget", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
