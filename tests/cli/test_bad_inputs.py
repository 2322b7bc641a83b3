"""Bad input over every command, as probed by an adversarial user: each is one line on
stderr naming the problem, exit status 1, no traceback, and nothing written."""

import io
import os
import shutil
import zipfile

import h5py
import pytest

from helpers import one_line_error, run_mlrs_here
from keras_mlrs import data


@pytest.fixture
def probe(tmp_path, tiny_runs, calibrated_runs, prepared):
    """Paths for the cases: a file where a folder is needed, damaged runs and models, runs to
    calibrate (``plain``) and runs holding another model's thresholds (``foreign``) or damaged
    ones, as copies sharing the session run's files."""
    run = tiny_runs["ranking"][0]
    for name in ("plain", "foreign", "bad-calibration"):
        shutil.copytree(run, tmp_path / name, copy_function=os.link)
    shutil.copy(calibrated_runs["bce"][0] / "calibration.json", tmp_path / "foreign")
    (tmp_path / "bad-calibration" / "calibration.json").write_text('{"format": 1, "thresholds": "cut short')
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "garbage.keras").write_text("not a zip")
    (tmp_path / "loss_params.toml").write_text('loss = "bce"\nloss_params = 3\n')
    (tmp_path / "data.toml").write_text("data = 7\n")
    for name, state in (("list-state", "[1, 2]"), ("lost-checkpoint", None), ("bad-checkpoint", None)):
        damaged = tmp_path / name
        shutil.copytree(run, damaged)
        if state is not None:
            (damaged / "state.json").write_text(state)
        else:
            (damaged / "state.json").write_text((damaged / "state.json").read_text().replace('"finished": true',
                                                                                          '"finished": false'))
            last = sorted((damaged / "checkpoints").glob("epoch-*.keras"))[-1]
            last.unlink()
            if name == "bad-checkpoint":
                last.write_text("cut short")
    with zipfile.ZipFile(run / "last.keras") as model:
        members = {name: model.read(name) for name in model.namelist()}
    empty = io.BytesIO()
    h5py.File(empty, "w").close()
    for name, weights in (("garbage-weights", b"x" * 4096), ("empty-weights", empty.getvalue())):
        with zipfile.ZipFile(tmp_path / f"{name}.keras", "w") as model:
            for member, content in members.items():
                model.writestr(member, weights if member == "model.weights.h5" else content)
    (tmp_path / "folder").mkdir()  # the exported layout, its weights cut short
    for member, content in members.items():
        (tmp_path / "folder" / member).write_bytes(content[:len(content) // 2] if member.endswith(".h5") else content)
    return {"tmp": tmp_path, "run": run, "bad": os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9"), "prepared": prepared,
            "sample": data.sample_path(), "patch": sorted(p for p in data.sample_path().iterdir() if p.is_dir())[0]}


CASES = [
    # (command line with {placeholders}, fragments of the one line)
    ("train --data {prepared} --loss focal --loss-param gamma=abc --run-dir {tmp}/r", ["gamma must be a number", "'abc'"]),
    ("train --config {tmp}/loss_params.toml --data {prepared} --run-dir {tmp}/r", ["loss_params must be a table"]),
    ("train --config {tmp}/data.toml --run-dir {tmp}/r", ["data must be a path, got 7"]),
    ("train --data {prepared} --run-dir {tmp}/afile/run", ["afile is a file, not a folder"]),
    ("train --data {prepared} --run-dir {bad}/run", ["caf\\xe9/run is not a UTF-8 path", "--run-dir"]),
    ("train --data {prepared} --distribute multiprocess --run-dir {tmp}/r", ["needs the JAX backend",
                                                                             "KERAS_BACKEND=jax"]),
    ("train --data {prepared} --distribute multiworker --run-dir {tmp}/r", ["keras-team/keras#20585", "multiprocess"]),
    ("train --data {prepared} --distribute multiprocess --coordinator localhost --num-processes 2 --process-id 0 "
     "--run-dir {tmp}/r", ["--coordinator must be HOST:PORT"]),
    ("train --data {prepared} --distribute multiprocess --coordinator localhost:1234 --num-processes 2 "
     "--process-id 2 --run-dir {tmp}/r", ["--process-id must be in 0..1"]),
    ("train --data {prepared} --distribute multiprocess --coordinator localhost:1234 --num-processes 2 "
     "--run-dir {tmp}/r", ["missing: --process-id"]),
    ("train --resume {tmp}/list-state", ["is not the state of a run", "damaged"]),
    ("train --resume {tmp}/lost-checkpoint", ["has no checkpoint of its last completed epoch", "--overwrite"]),
    ("train --resume {tmp}/bad-checkpoint", ["is not a Keras model file", "zip archive"]),
    ("data prepare {sample} --out {tmp}/afile --split random", ["afile is a file"]),
    ("evaluate {run} --out {tmp}/afile", ["afile is a file, not a folder"]),
    ("evaluate {tmp}/garbage.keras", ["is not a Keras model file"]),
    ("evaluate {tmp}/garbage-weights.keras", ["its weights are not a readable HDF5 file", "download or save it again"]),
    ("evaluate {tmp}/empty-weights.keras", ["its weights do not fit its architecture", "another model's weights"]),
    ("evaluate {tmp}/folder", ["its weights file model.weights.h5 cannot be read", "truncated file"]),
    ("explain {patch} --model {run} -c 0 --param epsilon=abc --out {tmp}/e", ["LRP parameter epsilon must be a number"]),
    ("explain {patch} --model {run} -c 0 --out {tmp}/afile", ["afile is a file, not a folder"]),
    ("compare {run} --out {tmp}/afile", ["afile is a file, not a folder"]),
    ("compare {run} --reference focal --out {tmp}/r", ["the reference 'focal' is none of the compared recipes"]),
    ("zoo build --data {prepared} --out {tmp}/afile --losses bce --epochs 1", ["afile is a file, not a folder"]),
    ("data verify {tmp}/afile", ["no readable manifest.json"]),
    ("calibrate {tmp}/plain --data {sample}", ["has no patch in the validation split", "give --data whose validation"]),
    ("calibrate {tmp}/plain --split test", ["never fitted on the test split", "--split validation"]),
    ("calibrate {tmp}/plain --objective macro-f1", ["unknown calibration objective 'macro-f1'", "per-class-f1"]),
    ("calibrate {tmp}/afile", ["is not a run directory"]),
    ("evaluate {tmp}/plain --thresholds calibrated", ["has no calibrated thresholds", "mlrs calibrate"]),
    ("evaluate {tmp}/foreign --thresholds calibrated", ["fitted on another model", "mlrs calibrate"]),
    ("evaluate {tmp}/bad-calibration --thresholds calibrated", ["is not a calibration written by keras-mlrs"]),
    ("evaluate {tmp}/plain --thresholds calibrated --threshold 0.3", ["leave out --decision and --threshold"]),
    ("predict {tmp}/plain {patch} --thresholds calibrate", ["unknown thresholds 'calibrate'", "'calibrated'"]),
    ("explain {patch} --model {tmp}/foreign --all-predicted --thresholds calibrated --out {tmp}/e",
     ["fitted on another model"]),
]


@pytest.mark.parametrize("line, fragments", CASES, ids=[c[0].split(" {")[0] + f"-{i}" for i, c in enumerate(CASES)])
def test_each_bad_input_is_one_line_that_writes_nothing(probe, capsys, line, fragments):
    before = sorted(p.name for p in probe["tmp"].rglob("*"))
    args = [a.format(**probe) for a in line.split()]
    one_line_error(run_mlrs_here(capsys, *args), *fragments)
    assert sorted(p.name for p in probe["tmp"].rglob("*")) == before
