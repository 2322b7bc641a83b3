"""The `mlrs` command itself: version, a help that answers without Keras, the loss table,
user errors as one line in the command's own terms."""

import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import keras_mlrs.cli.main  # noqa: F401 - registers the commands on the app
from helpers import one_line_error, run_mlrs_here
from keras_mlrs.cli.app import app, render_error
from keras_mlrs.core import losses

pytestmark = pytest.mark.backend_free

runner = CliRunner()


def test_version_matches_package_metadata():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"keras-mlrs {version('keras-mlrs')}"


def test_help_does_not_import_keras_or_tensorflow():
    # `mlrs --help` must answer at once: importing the CLI may not pull in Keras/TensorFlow.
    code = (
        "import sys; import keras_mlrs.cli.main; "
        "heavy = [m for m in ('keras', 'tensorflow', 'jax', 'keras_mlrs.core') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("losses", "train", "evaluate", "explain", "zoo", "compare", "bench", "demo"):
        assert command in result.output


def test_the_console_script_is_mlrs_inside_the_one_package():
    script = shutil.which("mlrs", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert script is not None
    assert "keras_mlrs.cli.main" in open(script).read()
    done = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("keras-mlrs ")


def test_losses_lists_every_registered_loss_with_its_rule():
    result = runner.invoke(app, ["losses"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in losses.names():
        assert name in result.output
    assert "gamma=2.0" in result.output
    assert "margin=1.0" in result.output
    assert "sparsemax_support" in result.output


def test_unknown_loss_is_a_one_line_error_without_traceback(capsys):
    one_line_error(run_mlrs_here(capsys, "demo", "--loss", "focall"), "unknown loss 'focall'", "Did you mean 'focal'?")


def test_user_errors_exit_1_and_show_their_traceback_with_mlrs_debug(capsys, monkeypatch):
    from keras_mlrs.errors import MlrsError

    usage = run_mlrs_here(capsys, "classes", "--v2")  # Click's own usage error keeps status 2
    assert usage.returncode == 2
    one_line_error(run_mlrs_here(capsys, "data", "verify", "/nowhere"), "no readable manifest.json")
    monkeypatch.setenv("MLRS_DEBUG", "1")
    with pytest.raises(MlrsError, match="no readable manifest.json"):
        run_mlrs_here(capsys, "data", "verify", "/nowhere")


def test_library_references_become_the_commands_flags_and_commands():
    assert render_error("choose another `out` or pass `overwrite=True`.") == "choose another --out or pass --overwrite."
    assert render_error("use `split='random'` (with `seed` and `fractions`)") == "use --split random (with --seed and --fractions)"
    assert render_error("e.g. `fractions=(0.6, 0.2, 0.2)`.") == "e.g. --fractions 0.6,0.2,0.2."
    assert render_error("continue it with `keras_mlrs.runs.resume('runs/a')`") == "continue it with mlrs train --resume runs/a"
    assert render_error("prepare it first (`keras_mlrs.data.prepare()`).") == "prepare it first (mlrs data prepare)."
    assert render_error("give the `classes` to explain") == "give the --class to explain"
    assert render_error("lower `batch_size=1024`") == "lower --batch-size 1024"
    assert render_error("The 19 names: `keras_mlrs.bigearthnet.CLASS_NAMES`.") == "The 19 names: mlrs classes."
    # what is not a reference keeps its backticks: commands of other tools, other attribute paths
    assert render_error("run `hf auth login`; see `keras_mlrs.data.STACKED_BANDS`") == (
        "run `hf auth login`; see `keras_mlrs.data.STACKED_BANDS`")


def test_classes_lists_the_nomenclature_in_the_studys_order(capsys):
    from keras_mlrs.bigearthnet import CLASS_NAMES, CORINE_LABELS, TRAIN_CLASS_COUNTS

    result = run_mlrs_here(capsys, "classes", "--v1")
    assert result.returncode == 0
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    for i, (name, count) in enumerate(zip(CLASS_NAMES, TRAIN_CLASS_COUNTS)):
        assert any(f"│ {i:>5} │ {name} " in r and f"{count:,}" in r for r in rows), name
    assert len(rows) == 19 + 43 and all(any(label in r for r in rows) for label in CORINE_LABELS)
