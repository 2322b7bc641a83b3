"""Shared test helpers. Tests run under whichever backend KERAS_BACKEND names
(tensorflow by default); CI runs the suite under tensorflow and jax."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()


def value_and_grad(fn, x):
    """Value of scalar ``fn(x)`` and its gradient with respect to ``x`` (a numpy float32 array),
    through the active backend's autodiff. Returns numpy arrays."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            value = fn(xt)
        return np.asarray(value), np.asarray(tape.gradient(value, xt))
    if BACKEND == "jax":
        import jax

        value, grad = jax.value_and_grad(lambda t: fn(t))(x)
        return np.asarray(value), np.asarray(grad)
    pytest.skip(f"no gradient helper for backend {BACKEND}")


@pytest.fixture(params=[0, 1, 2, 3], ids=lambda s: f"seed{s}")
def rng(request):
    return np.random.default_rng(request.param)


#: Runs the `mlrs` entry point in a fresh Python process: ``[sys.executable, "-c", MLRS, *args]``.
MLRS = "import sys; from cli.main import main; sys.argv = ['mlrs', *sys.argv[1:]]; main()"


def run_mlrs(*args, timeout=300, env=None):
    """`mlrs` in a fresh process, as a user runs it (stdout and stderr captured as text);
    ``env``: variables added to this process's environment."""
    return subprocess.run([sys.executable, "-c", MLRS, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env} if env else None)


def one_line_error(result, *fragments):
    """Assert that ``result`` (of :func:`run_mlrs`) is a user error: exit code 2, one line
    on stderr containing every fragment, no traceback. Returns the line."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def seed_hub_cache(folder, repo: str, cache, commit: str = "0" * 40, branch: str = "main"):
    """Put the repository content ``folder`` (as ``mlrs push --to`` writes it) into the
    Hugging Face cache ``cache`` in the layout huggingface_hub itself writes: files under
    ``blobs/`` named by their hash, ``snapshots/<commit>/`` linking to them, and
    ``refs/<branch>`` naming the commit. Only files travel, as on the Hub (no empty folders)."""
    import hashlib
    from pathlib import Path

    root = Path(cache) / f"models--{repo.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = root / "snapshots" / commit
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        content = path.read_bytes()
        blob = root / "blobs" / hashlib.sha256(content).hexdigest()
        blob.write_bytes(content)
        link = snapshot / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / branch).write_text(commit)
    return snapshot


def run_mlrs_here(capsys, *args):
    """`mlrs` in this process (as :func:`run_mlrs`, without a new interpreter's start-up):
    the entry point with its error handling, output captured by ``capsys``."""
    from cli.main import main

    saved = sys.argv
    sys.argv = ["mlrs", *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = saved
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)
