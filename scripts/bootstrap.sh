# Sourced by scripts/run and scripts/test: installs a pinned uv into .parlor/tools and syncs the
# locked environment into .venv. Needs only python3 (3.11+) on the machine.
set -euo pipefail
PARLOR_UV_VERSION="0.13.9"
mkdir -p .parlor
if [ ! -x .parlor/tools/bin/uv ] || ! .parlor/tools/bin/uv --version | grep -q "$PARLOR_UV_VERSION"; then
    python3 -m venv .parlor/tools
    .parlor/tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$PARLOR_UV_VERSION"
fi
export UV_PROJECT_ENVIRONMENT="$PWD/.venv"
.parlor/tools/bin/uv sync --frozen --quiet
