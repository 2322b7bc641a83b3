"""`mlrs train` end to end on the bundled real sample: one run per decision rule, loss options
from the registry and a config file, a killed process resumed, and the bad inputs a user can
give, as one-line errors naming the command's flags."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import MLRS, TINY, TINY_FLAGS, figure_title, one_line_error, run_mlrs_here
from keras_mlrs import data, runs
from keras_mlrs.cli.main import app
from keras_mlrs.core import decision, losses
from keras_mlrs.runs import RunDirectory

runner = CliRunner()


def read_history(run):
    return RunDirectory(run).state()["history"]


@pytest.mark.parametrize("loss", ["bce", "ranking", "sparsemax"])
def test_each_decision_rule_trains_end_to_end(loss, tiny_runs):
    """One loss per decision rule (every loss's compile/fit/save/load round trip is tested
    in tests/core/test_losses.py)."""
    run, output = tiny_runs[loss]
    assert "split scheme random" in output
    for name in (runs.CONFIG, runs.STATE, runs.BEST, runs.LAST, runs.HISTORY, runs.CURVE, runs.METRICS):
        assert (run / name).is_file(), name
    assert any((run / runs.TENSORBOARD).rglob("events.out.tfevents*"))
    history = read_history(run)
    assert [row["epoch"] for row in history] == [1, 2]
    assert "epoch 1/2: loss" in output and "epoch 2/2: loss" in output
    for column in ("loss", "val_loss", "val_f1_micro", "val_f1_macro", "val_f1_samples", "val_precision_samples",
                   "f1_samples"):  # training F1 too, for the learning curves
        assert np.isfinite(history[-1][column]), column
    title = figure_title(run / runs.CURVE)  # and its PDF
    assert f"Learning curves of {run.name}" in title and "model: final epoch 2 (best on validation" in title
    assert (run / runs.HISTORY).read_text().count("\n") == 3  # header + 2 epochs
    model = keras.saving.load_model(run / runs.LAST, safe_mode=True)
    assert type(model.loss) is type(losses.get(loss))
    assert decision.rule_of(model).name == losses.spec(loss).decision
    metrics = json.loads((run / runs.METRICS).read_text())
    assert metrics["split"] == "validation" and metrics["patches"] == 1
    assert metrics["checkpoint"] == {"name": "last", "epoch": 2}  # the study's model: the final epoch's
    assert "Final model (epoch 2, the study's)" in output
    assert not list(run.rglob(".*tmp*"))  # no temporary file left behind
    best = RunDirectory(run).state()["best"]["epoch"]  # without --keep-every, only those behind best and last stay
    kept = {1, 2} if loss in ("bce", "sparsemax") else {best, 2}  # the bce and sparsemax runs keep every epoch
    assert {p.name for p in (run / runs.CHECKPOINTS).iterdir()} == {f"epoch-{e:04d}.keras" for e in kept}
    assert RunDirectory(run).kept_epochs() == sorted(kept)


def test_loss_options_from_the_registry_and_config_file(tiny_runs, prepared):
    """The ranking run of the session: a configuration file, whose margin `--margin` (an
    option made from the loss registry) overrides."""
    run = tiny_runs["ranking"][0]
    saved = RunDirectory(run).config()
    assert saved.loss == "ranking" and saved.loss_params == {"margin": 2.0}  # command line wins
    assert saved.lr == 0.002 and saved.batch_size == 2 and saved.model_params == TINY
    assert saved.data == str(prepared)
    model = runs.load_model(run)
    assert model.loss.get_config()["margin"] == 2.0
    # the saved config.toml reruns the same configuration
    assert runs.TrainConfig.from_toml(run / runs.CONFIG) == saved


def test_train_help_lists_every_loss_hyperparameter():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in losses.names():
        for hparam in losses.spec(name).hyperparameters:
            assert "--" + hparam.replace("_", "-") in result.output


def test_killed_process_resumes_from_its_last_completed_epoch(prepared, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", str(prepared), "--epochs", "3", "--batch-size", "2", "--run-dir", str(run), *TINY_FLAGS]
    proc = subprocess.Popen([sys.executable, "-c", MLRS, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and not ((run / runs.STATE).exists() and runs.read_state(run)["epoch"] >= 1):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = runs.read_state(run)["epoch"]
    assert 1 <= done < 3, f"the run was not killed mid-way (epoch {done})"
    result = run_mlrs_here(capsys, "train", "--resume", run)
    assert result.returncode == 0, result.stderr
    assert f"resuming after epoch {done}" in result.stdout.replace("\n", " ")
    assert [r["epoch"] for r in read_history(run)] == [1, 2, 3]
    assert runs.read_state(run)["finished"]
    assert not list((run / runs.CHECKPOINTS).glob(".*"))  # no half-written checkpoint left


def test_bad_training_inputs_are_one_line_errors_that_write_nothing(prepared, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--data", prepared, "--epochs", "1", "--run-dir", run]
    one_line_error(run_mlrs_here(capsys, "train", "--loss", "focall", *common), "unknown loss 'focall'", "bce",
                   "Did you mean 'focal'?")
    one_line_error(run_mlrs_here(capsys, "train", "--loss", "focal", "--gamma", "-1", *common), "gamma")
    one_line_error(run_mlrs_here(capsys, "train", "--loss", "bce", "--margin", "2", *common),
                   "no hyperparameter 'margin'", "beta")
    one_line_error(run_mlrs_here(capsys, "train", "--data", tmp_path / "nowhere", "--run-dir", run), "does not exist")
    one_line_error(run_mlrs_here(capsys, "train", "--model", "resnet5", *common), "unknown model", "resnet50")
    one_line_error(run_mlrs_here(capsys, "train", "--data", data.sample_path(), "--split", "official", "--run-dir", run),
                   "no patch in the 'validation' split", "--split random", "--seed", "--fractions")
    # no data named: not 80 epochs on the six bundled patches, but a one-line error naming the way to them
    one_line_error(run_mlrs_here(capsys, "train", "--loss", "bce", "--run-dir", run), "give the data to train on",
                   "--data sample")
    assert not run.exists()
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    one_line_error(run_mlrs_here(capsys, "train", *common), "already exists", f"mlrs train --resume {run}",
                   "--overwrite", "--run-dir")
    one_line_error(run_mlrs_here(capsys, "train", "--overwrite", *common), "not a run directory", "--overwrite")
    assert [p.name for p in run.iterdir()] == ["notes.txt"]
    one_line_error(run_mlrs_here(capsys, "train", "--resume", run), "not a run directory")
