#!/bin/sh
# The whole test suite, as CI runs it: lint, the architecture contracts, the docs build,
# then, side by side on the two cores, the backend-agnostic tests (marked `backends`) under
# JAX, TensorFlow and PyTorch, every other test under JAX or TensorFlow. Creates or reuses
# .venv and installs the project with its dev and torch extras (with uv, which installs in
# seconds from its cache) and iNNvestigate, and Debian's Chromium when it is missing.
set -eu
cd "$(dirname "$0")/.."
start=$(date +%s)
# The suite starts dozens of Python processes (its pytest sessions, and the commands, workers
# and backends its tests run in processes of their own). Where PYTHONDONTWRITEBYTECODE is set,
# as on this project's machines, each would compile TensorFlow's, JAX's and PyTorch's sources
# anew: `import keras_mlrs.cli.main, keras` took 13-15 s so, 5.7 s once their bytecode is
# written (into .venv, by the first process that imports each module).
unset PYTHONDONTWRITEBYTECODE
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check uv
uv() { .venv/bin/uv pip install -q --python .venv/bin/python "$@"; }
uv -e '.[dev,torch]'
# iNNvestigate 2.1.2, the LRP reference, pins tensorflow<2.15 and numpy<2 yet runs on TF 2.21
# through tf-keras: install it and tf-keras without their pins (docs/explanations.md).
uv --no-deps tf-keras==2.21.0 innvestigate==2.1.2 future
# Debian's Chromium: tests/e2e opens `mlrs compare`'s HTML report in it (through Playwright).
if ! command -v chromium >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/ruff check keras_mlrs cli tests zoo tools
# The layers and acyclic contracts (pyproject.toml) on the package as it installs: cli/ and
# zoo/ become keras_mlrs.cli and keras_mlrs.zoo only there.
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
uv --no-deps --target "$work/staged" .
(cd "$work/staged" && "$root/.venv/bin/lint-imports" --no-cache "$root/pyproject.toml")
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet
echo "--- install, lint, contracts and docs: $(($(date +%s) - start)) s"
# The two lanes side by side, a core each. One: every test that needs TensorFlow. The other:
# the backend-agnostic tests (and, to balance the cores, those that compute nothing with
# Keras) under JAX, the backend-agnostic tests again under PyTorch (eager, about 30 s), then
# the multi-process tests. The lanes share iNNvestigate's reference and the JAX lane its
# compiled programs through caches outside the clone (computed once per machine: the
# reference under a file lock, tests/explain/test_innvestigate.py; JAX's programs in its
# persistent compilation cache, tests/conftest.py).
alone=tests/runs/test_multiprocess.py
# JAX compiles every eager operation and every step it meets, and the tests meet thousands:
# XLA's LLVM back end at optimisation level 0 compiles them faster than it slows their tiny
# runs (about a fifth off the JAX suite). The suite passes at the default level too (run it
# without this line to check); users' runs keep the default.
export XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0"
# Each lane on a core of its own (where taskset can): TensorFlow's and XLA's thread pools size
# themselves to the cores they may use, and with both lanes on both cores a small compiled
# test waited on the other lane's threads (one took 39-54 s side by side, 6 s alone). The
# multi-process tests, which end the second lane, may use both.
lane0="" lane1=""
cores=$(.venv/bin/python -c "import os; print(*sorted(os.sched_getaffinity(0))[:2])" 2>/dev/null || true)
if command -v taskset >/dev/null 2>&1 && [ "$(echo $cores | wc -w)" -eq 2 ]; then
    lane0="taskset -c ${cores% *}" lane1="taskset -c ${cores#* }"
fi
(
    status=0
    KERAS_BACKEND=jax $lane1 .venv/bin/python -m pytest -q --durations=15 -m "backends or backend_free" --ignore=$alone \
        || status=$?
    echo "--- the JAX suite ended at $(($(date +%s) - start)) s; then the backend-agnostic tests under PyTorch ---"
    KERAS_BACKEND=torch $lane1 .venv/bin/python -m pytest -q --durations=5 -m backends --ignore=$alone || status=$?
    echo "--- the PyTorch suite ended at $(($(date +%s) - start)) s; then the multi-process tests ---"
    KERAS_BACKEND=jax .venv/bin/python -m pytest -q --durations=5 $alone || status=$?
    echo "--- the multi-process tests ended at $(($(date +%s) - start)) s"
    exit $status
) >"$work/second-lane.log" 2>&1 &
second=$!
tf=0
KERAS_BACKEND=tensorflow $lane0 .venv/bin/python -m pytest -q --durations=15 -m "not backend_free" --ignore=$alone || tf=$?
echo "--- the TensorFlow suite ended at $(($(date +%s) - start)) s"
second_status=0
wait "$second" || second_status=$?
echo "--- the second lane: under JAX, the backend-agnostic tests and those that compute nothing with Keras; under PyTorch, the backend-agnostic tests; then the multi-process tests ---"
cat "$work/second-lane.log"
echo "--- all done in $(($(date +%s) - start)) s (the budget: 480 s from a fresh clone)"
[ "$tf" -eq 0 ] && [ "$second_status" -eq 0 ]
