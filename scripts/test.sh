#!/usr/bin/env bash
# `make test`: unit, integration and end-to-end tests in one pytest run, so the closing line
# counts all of them. pytest exits 5 when it collected nothing, and that is a failure here.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest tests "$@"
