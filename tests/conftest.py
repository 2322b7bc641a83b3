"""Fixtures shared by the suite. Tests run under whichever backend KERAS_BACKEND names
(tensorflow by default); CI runs the suite under TensorFlow and the tests marked
``backends`` under JAX too. Trained runs are made once per session, through the CLI, and
read by every test that needs one; tests that change a run copy it first."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# the commands' tables are read by the tests: a wide console keeps each row on one line
# (set before the consoles exist: a console fixes its width when COLUMNS is set then)
os.environ["COLUMNS"] = "250"

import shutil  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers import BACKEND, TEST_CACHE, TINY, TINY_FLAGS  # noqa: E402
from keras_mlrs import data  # noqa: E402

#: Under TensorFlow, the tests of this process run Keras's tf.functions (its train, test and
#: predict steps, the LRP engine's relevance function) eagerly: the tiny runs of the tests take
#: longer to trace as graphs than to run (measured: the session's three training runs 17 s
#: against 37 s, a resumed one 7 s against 20 s). Graph mode, which users run, stays tested:
#: tests marked ``graph`` switch it on (the compiled-model metrics, doctor's XLA check), every
#: test that runs `mlrs` or the library in a process of its own (the killed and resumed
#: training, the cross-backend runs, two-replica training) runs graphs, and the JAX suite
#: traces the same Keras code with jax.jit. MLRS_TEST_GRAPHS=1 runs every test as graphs.
EAGER_TENSORFLOW = BACKEND == "tensorflow" and os.environ.get("MLRS_TEST_GRAPHS") != "1"
if EAGER_TENSORFLOW:
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)

#: Under JAX, the compiled programs are kept on disk (JAX's persistent compilation cache) and
#: read back by the next run of the suite: JAX compiles every eager operation once per shape,
#: and the tests meet thousands (tests/core/test_metrics.py took 76 s compiling them, 36 s
#: reading them back). Only this process uses the cache: the processes the tests start (which
#: may run side by side) compile for themselves, so no process reads an entry another is
#: writing. The cache is keyed by JAX's versions, flags and the device: stale entries are
#: never read.
if BACKEND == "jax":
    import jax

    jax.config.update("jax_compilation_cache_dir", str(TEST_CACHE / "jax-compilation"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture(autouse=True)
def _graphs_when_marked(request):
    """A test marked ``graph`` runs TensorFlow's functions as graphs (see EAGER_TENSORFLOW);
    session fixtures, set up before it, keep the suite's mode."""
    graph = EAGER_TENSORFLOW and request.node.get_closest_marker("graph") is not None
    if graph:
        tf.config.run_functions_eagerly(False)
    yield
    if graph:
        tf.config.run_functions_eagerly(True)


@pytest.fixture(params=[0, 1, 2, 3], ids=lambda s: f"seed{s}")
def rng(request):
    return np.random.default_rng(request.param)


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """A private copy of the bundled 6-patch sample (tests that damage it copy it again)."""
    dst = tmp_path_factory.mktemp("sample") / "BigEarthNet-S2-Example"
    shutil.copytree(data.sample_path(), dst, ignore=shutil.ignore_patterns(".complete"))
    return dst


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """The sample prepared with a random split (seed 0): 3 train, 1 validation, 1 test patch."""
    out = tmp_path_factory.mktemp("prepared") / "sample"
    data.prepare(data.sample_path(), out, split="random", seed=0, fractions=(0.6, 0.2, 0.2), workers=1)
    return out


@pytest.fixture(scope="session")
def patches():
    """The 6 real sample patches and 2 of uniform random bands, as K-Branch inputs."""
    real = [data.read_patch(p) for p in sorted(data.sample_path().iterdir()) if p.is_dir()]
    rng = np.random.default_rng(0)
    out = {}
    for group, array in real[0].groups.items():
        random = rng.integers(0, 4000, (2, *array.shape)).astype("uint16")
        out[group] = np.concatenate([np.stack([p.groups[group] for p in real]), random])
    return out


@pytest.fixture(scope="session")
def tiny_runs(prepared, tmp_path_factory):
    """One finished run per decision rule, each trained by `mlrs train` for 2 epochs of 2
    steps on the prepared sample with a narrow K-Branch CNN: ``{loss: (run directory, the
    command's output)}``. bce (sigmoid) and sparsemax (its support) from flags, keeping
    every epoch's checkpoint (``--keep-every 1``); ranking (logit) from a configuration file
    whose hyperparameter the command line overrides, keeping only the last and the best."""
    from typer.testing import CliRunner

    from keras_mlrs.cli.main import app

    root = tmp_path_factory.mktemp("runs")
    config = root / "ranking.toml"
    config.write_text(f'loss = "ranking"\ndata = "{prepared}"\nepochs = 2\nbatch_size = 2\nlr = 0.002\n'
                      "[loss_params]\nmargin = 0.5\n[model_params]\n" + "".join(f"{k} = {v}\n" for k, v in TINY.items()))
    common = ["--data", str(prepared), "--epochs", "2", "--batch-size", "2", "--lr", "0.001", *TINY_FLAGS]
    commands = {"bce": ["--loss", "bce", "--keep-every", "1", *common],
                "ranking": ["--config", str(config), "--margin", "2"],
                "sparsemax": ["--loss", "sparsemax", "--keep-every", "1", *common]}
    out = {}
    for loss, args in commands.items():
        result = CliRunner().invoke(app, ["train", *args, "--run-dir", str(root / loss)])
        assert result.exit_code == 0, result.output
        out[loss] = (root / loss, result.output)
    return out


@pytest.fixture(scope="session")
def calibrated_runs(tiny_runs, tmp_path_factory):
    """The bce and sparsemax tiny runs again, with calibrated thresholds (``calibration.json``)
    fitted by the library on the validation split, for ``sample-f1`` and ``per-class-f1``:
    ``{loss: (run directory, the calibration)}``. The runs are copies that share the session
    runs' files through hard links (keras-mlrs replaces a file, never changes one in place)."""
    from keras_mlrs import runs

    root = tmp_path_factory.mktemp("calibrated")
    out = {}
    for loss, objective in (("bce", "sample-f1"), ("sparsemax", "per-class-f1")):
        copy = shutil.copytree(tiny_runs[loss][0], root / loss, copy_function=os.link)
        out[loss] = (copy, runs.calibrate(copy, objective=objective))
    return out
