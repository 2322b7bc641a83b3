#!/bin/sh
# The whole test suite, as CI runs it: lint, every test under the TensorFlow backend,
# the backend-agnostic tests (marked `backends`) again under JAX, and the docs build.
# Creates or reuses .venv and installs the project with its dev extras and iNNvestigate,
# and Debian's Chromium when it is missing.
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
# iNNvestigate 2.1.2, the LRP reference, pins tensorflow<2.15 and numpy<2 yet runs on TF 2.21
# through tf-keras: install it and tf-keras without their pins (docs/explanations.md).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps tf-keras==2.21.0 innvestigate==2.1.2 future
# Debian's Chromium: tests/test_zoo.py opens `mlrs compare`'s HTML report in it (through Playwright).
if ! command -v chromium >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/ruff check keras_mlrs cli tests zoo
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet
KERAS_BACKEND=jax .venv/bin/python -m pytest -q -m backends
KERAS_BACKEND=tensorflow .venv/bin/python -m pytest -q
