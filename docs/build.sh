#!/usr/bin/env bash
# Build the documentation site, strictly (any warning fails the build), into site/ or $1.
# Needs the docs extra: pip install -e ".[docs]". Serve the result with
#   python -m http.server -d site
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
NO_MKDOCS_2_WARNING=1 JAX_PLATFORMS=cpu "$PYTHON" -m mkdocs build --strict --site-dir "${1:-site}"
