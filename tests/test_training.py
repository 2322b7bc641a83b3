"""Training, evaluation and prediction on the bundled real sample, through the `mlrs`
commands and the library: every loss end to end, exact resume after an interruption or a
killed process, two-replica distribution, evaluate == scikit-learn on predict's output,
and the bad inputs a user can give."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import MLRS, one_line_error, run_mlrs, run_mlrs_here
from typer.testing import CliRunner

from cli.main import app
from keras_mlrs import data, losses, runs, training

runner = CliRunner()
TINY = ["--model-param", "width=0.25", "--model-param", "branch_units=8", "--model-param", "fc_units=16"]
TINY_PARAMS = {"width": 0.25, "branch_units": 8, "fc_units": 16}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The sample prepared with a random split: 3 train, 1 validation, 1 test patch."""
    out = tmp_path_factory.mktemp("prepared") / "sample"
    data.prepare(data.sample_path(), out, split="random", seed=0, fractions=(0.6, 0.2, 0.2), workers=1)
    return out


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    """A tiny bce run of 2 epochs on the prepared sample."""
    run = tmp_path_factory.mktemp("runs") / "bce"
    config = training.TrainConfig(loss="bce", data=str(prepared), epochs=2, batch_size=4, lr=1e-3,
                                  model_params=TINY_PARAMS)
    training.train(config, run)
    return run


def read_history(run):
    with open(run / runs.HISTORY) as f:
        return list(csv.DictReader(f))


# -- end to end through `mlrs train`: one loss per decision rule ---------------------------------
# (every loss's compile/fit/save/load round trip is tested in test_loss_reference.py)
END_TO_END = list({losses.spec(name).decision: name for name in reversed(losses.names())}.values())


@pytest.mark.parametrize("loss", END_TO_END)
def test_each_decision_rule_trains_end_to_end(loss, prepared, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--loss", loss, "--data", str(prepared), "--epochs", "1",
                                 "--batch-size", "4", "--run-dir", str(run), *TINY], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "split scheme random" in result.output
    for name in (runs.CONFIG, runs.STATE, runs.BEST, runs.LAST, runs.HISTORY, runs.CURVE, runs.METRICS):
        assert (run / name).is_file(), name
    assert any((run / runs.TENSORBOARD).rglob("events.out.tfevents*"))
    history = read_history(run)
    assert [row["epoch"] for row in history] == ["1"]
    for column in ("loss", "val_loss", "val_f1_micro", "val_f1_macro", "val_f1_samples", "val_precision_samples"):
        assert np.isfinite(float(history[0][column])), column
    model = keras.saving.load_model(run / runs.BEST, safe_mode=True)
    assert type(model.loss) is type(losses.get(loss))
    assert runs.decision_of(model).name == losses.spec(loss).decision
    metrics = json.loads((run / runs.METRICS).read_text())
    assert metrics["split"] == "validation" and metrics["patches"] == 1
    assert not list(run.rglob(".*tmp*"))  # no temporary file left behind


def test_loss_options_from_the_registry_and_config_file(prepared, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'loss = "focal"\ndata = "{prepared}"\nepochs = 1\nbatch_size = 4\nlr = 0.002\n'
                      "[loss_params]\ngamma = 1.0\n[model_params]\nwidth = 0.25\nbranch_units = 8\nfc_units = 16\n")
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(config), "--gamma", "3", "--alpha", "0.25",
                                 "--run-dir", str(run)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    saved = training.TrainConfig.from_toml(run / runs.CONFIG)
    assert saved.loss == "focal" and saved.loss_params == {"gamma": 3.0, "alpha": 0.25}  # command line wins
    assert saved.lr == 0.002 and saved.model_params == TINY_PARAMS
    model = runs.load_model(run)
    assert model.loss.get_config()["gamma"] == 3.0 and model.loss.get_config()["alpha"] == 0.25
    # the saved config.toml reruns the same configuration
    assert training.TrainConfig.from_toml(run / runs.CONFIG) == saved


def test_train_help_lists_every_loss_hyperparameter():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in losses.names():
        for hparam in losses.spec(name).hyperparameters:
            assert "--" + hparam.replace("_", "-") in result.output


# -- resume ---------------------------------------------------------------------------------------
class _InterruptAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_exactly_as_if_uninterrupted(prepared, tmp_path):
    config = training.TrainConfig(loss="focal", data=str(prepared), epochs=3, batch_size=2, lr=1e-3,
                                  model_params={**TINY_PARAMS, "dropout": 0.5})
    training.train(config, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C during the second epoch
        training.train(config, tmp_path / "cut", callbacks=[_InterruptAtEpoch(1)])
    assert runs.read_state(tmp_path / "cut")["epoch"] == 1
    assert len(read_history(tmp_path / "cut")) == 1
    training.resume(tmp_path / "cut")
    straight, cut = read_history(tmp_path / "straight"), read_history(tmp_path / "cut")
    assert [r["epoch"] for r in cut] == ["1", "2", "3"]
    for a, b in zip(straight, cut):
        assert a["loss"] == b["loss"] and a["val_loss"] == b["val_loss"]
    a = keras.saving.load_model(tmp_path / "straight" / runs.LAST)
    b = keras.saving.load_model(tmp_path / "cut" / runs.LAST)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)  # dropout masks, data order and optimizer state all restored
    with pytest.raises(runs.RunError, match="already finished"):
        training.resume(tmp_path / "cut")


def test_killed_process_resumes_from_its_last_completed_epoch(prepared, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--data", str(prepared), "--epochs", "6", "--batch-size", "2", "--run-dir", str(run), *TINY]
    proc = subprocess.Popen([sys.executable, "-c", MLRS, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and not ((run / runs.STATE).exists() and runs.read_state(run)["epoch"] >= 1):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = runs.read_state(run)["epoch"]
    assert 1 <= done < 6, f"the run was not killed mid-way (epoch {done})"
    result = run_mlrs("train", "--resume", run)
    assert result.returncode == 0, result.stderr
    assert f"resuming after epoch {done}" in result.stdout.replace("\n", " ")
    assert [r["epoch"] for r in read_history(run)] == [str(e) for e in range(1, 7)]
    assert runs.read_state(run)["finished"]
    assert not list((run / runs.CHECKPOINTS).glob(".*"))  # no half-written checkpoint left


# -- distribution -----------------------------------------------------------------------------------
def test_mirrored_training_on_two_logical_cpu_devices(tmp_path):
    prepared = tmp_path / "data"  # 2 train, 2 validation patches: every batch splits over 2 replicas
    data.prepare(data.sample_path(), prepared, split="random", seed=0, fractions=(0.4, 0.4, 0.2), workers=1)
    script = textwrap.dedent(f"""
        import json, os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from keras_mlrs import training
        seen = {{}}
        config = training.TrainConfig(loss="sparsemax", data={str(prepared)!r}, epochs=2, batch_size=2,
                                      distribute="mirrored", model_params={TINY_PARAMS!r})
        result = training.train(config, {str(tmp_path / "run")!r}, on_start=seen.update)
        print(json.dumps({{"replicas": seen["replicas"], "f1": result["samples"]["f1"]}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert 0.0 <= result["f1"] <= 1.0
    history = read_history(tmp_path / "run")
    assert len(history) == 2 and all(np.isfinite(float(r["loss"])) for r in history)


def test_multiworker_without_tf_config_is_a_clear_error(prepared, tmp_path):
    config = training.TrainConfig(data=str(prepared), epochs=1, distribute="multiworker")
    env = os.environ.pop("TF_CONFIG", None)
    try:
        with pytest.raises(training.MlrsError, match="TF_CONFIG"):
            training.train(config, tmp_path / "run")
    finally:
        if env is not None:
            os.environ["TF_CONFIG"] = env
    assert not (tmp_path / "run").exists()


# -- evaluate and predict ---------------------------------------------------------------------------
def test_evaluate_equals_scikit_learn_on_predict_output(trained, prepared, tmp_path):
    from sklearn import metrics as skm

    report_path = tmp_path / "report.json"
    result = runner.invoke(app, ["evaluate", str(trained), "--data", str(prepared), "--split", "train",
                                 "--json", str(report_path), "--csv", str(tmp_path / "csv"),
                                 "--markdown", str(tmp_path / "r.md"), "--figure", str(tmp_path / "f1.png")],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    names = data.patch_names(prepared, "train")
    folders = [data.sample_path() / n for n in names]
    result = runner.invoke(app, ["predict", str(trained), *map(str, folders), "--json"])
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.output)
    assert [p["input"] for p in predictions] == [str(f) for f in folders]
    y_true = np.stack([data.read_patch(f).labels for f in folders]).astype(int)
    y_pred = np.array([[c in p["labels"] for c in data.CLASS_NAMES] for p in predictions]).astype(int)
    scores = np.array([[p["scores"][c] for c in data.CLASS_NAMES] for p in predictions])
    assert report["patches"] == len(folders)
    for average in ("micro", "macro", "weighted", "samples"):
        for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
            expected = fn(y_true, y_pred, average=average, zero_division=0)
            assert report[average][name] == pytest.approx(expected, abs=1e-6), (average, name)
    per_class = skm.f1_score(y_true, y_pred, average=None, zero_division=0)
    for c, name in enumerate(data.CLASS_NAMES):
        assert report["per_class"][name]["f1"] == pytest.approx(per_class[c], abs=1e-6)
        assert report["per_class"][name]["support"] == int(y_true[:, c].sum())
    assert report["hamming_loss"] == pytest.approx(skm.hamming_loss(y_true, y_pred), abs=1e-6)
    assert report["lrap"] == pytest.approx(skm.label_ranking_average_precision_score(y_true, scores), abs=1e-5)
    assert report["coverage_error"] == pytest.approx(skm.coverage_error(y_true, scores), abs=1e-5)
    assert report["ranking_loss"] == pytest.approx(skm.label_ranking_loss(y_true, scores), abs=1e-5)
    assert report["map_micro"] == pytest.approx(skm.average_precision_score(y_true, scores, average="micro"), abs=1e-5)
    assert (tmp_path / "csv" / "per_class.csv").read_text().count("\n") == 20
    assert "| samples |" in (tmp_path / "r.md").read_text()
    assert (tmp_path / "f1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_defaults_to_the_runs_data_and_writes_into_the_run(trained):
    result = runner.invoke(app, ["evaluate", str(trained), "--split", "validation"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = trained / "evaluation-validation"
    report = json.loads((out / "report.json").read_text())
    assert report["patches"] == 1 and report["split"] == "validation"
    for name in ("overall.csv", "per_class.csv", "report.md", "per_class_f1.png"):
        assert (out / name).is_file()


def test_predict_with_another_decision_rule_and_a_multiband_geotiff(trained, tmp_path):
    import tifffile

    patch = data.read_patch(next(p for p in sorted(data.sample_path().iterdir()) if p.is_dir()))
    tif = tmp_path / "patch.tif"
    tifffile.imwrite(tif, patch.stacked(), photometric="minisblack", planarconfig="contig")
    result = runner.invoke(app, ["predict", str(trained / runs.BEST), str(tif), "--json", "--decision", "logit",
                                 "--threshold", "-100"])
    assert result.exit_code == 0, result.output
    [prediction] = json.loads(result.output)
    assert prediction["labels"] == list(data.CLASS_NAMES)  # every logit is above -100
    assert set(prediction["scores"]) == set(data.CLASS_NAMES)


# -- bad input: one line, exit 2, nothing written -------------------------------------------------
def test_bad_training_inputs_are_one_line_errors_that_write_nothing(prepared, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--data", prepared, "--epochs", "1", "--run-dir", run]
    one_line_error(run_mlrs_here(capsys, "train", "--loss", "focall", *common), "unknown loss 'focall'", "bce", "Did you mean 'focal'?")
    one_line_error(run_mlrs_here(capsys, "train", "--loss", "focal", "--gamma", "-1", *common), "gamma")
    one_line_error(run_mlrs_here(capsys, "train", "--loss", "bce", "--margin", "2", *common), "no hyperparameter 'margin'", "beta")
    one_line_error(run_mlrs_here(capsys, "train", "--data", tmp_path / "nowhere", "--run-dir", run), "does not exist")
    one_line_error(run_mlrs_here(capsys, "train", "--model", "resnet5", *common), "unknown model", "resnet50")
    one_line_error(run_mlrs_here(capsys, "train", "--data", data.sample_path(), "--split", "official", "--run-dir", run),
                   "no patch in the 'validation' split", "--split random")
    assert not run.exists()
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    one_line_error(run_mlrs_here(capsys, "train", *common), "already exists", "--resume", "--overwrite")
    one_line_error(run_mlrs_here(capsys, "train", "--overwrite", *common), "not a run directory")
    assert [p.name for p in run.iterdir()] == ["notes.txt"]
    one_line_error(run_mlrs_here(capsys, "train", "--resume", run), "not a run directory")


def test_bad_evaluation_inputs_are_one_line_errors(trained, prepared, tmp_path, capsys):
    other = keras.Sequential([keras.Input((120, 120, 12)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    other.save(tmp_path / "ten.keras")
    one_line_error(run_mlrs_here(capsys, "evaluate", tmp_path / "ten.keras", "--data", prepared), "outputs 10 classes", "19")
    odd = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(19)])
    odd.save(tmp_path / "odd.keras")
    one_line_error(run_mlrs_here(capsys, "evaluate", tmp_path / "odd.keras", "--data", prepared), "match neither BigEarthNet layout")
    one_line_error(run_mlrs_here(capsys, "evaluate", tmp_path / "missing.keras"), "does not exist")
    import shutil

    relabelled = tmp_path / "relabelled"
    shutil.copytree(prepared, relabelled)
    manifest = json.loads((relabelled / "manifest.json").read_text())
    manifest["nomenclature"]["classes"] = sorted(manifest["nomenclature"]["classes"])  # alphabetical order
    (relabelled / "manifest.json").write_text(json.dumps(manifest))
    one_line_error(run_mlrs_here(capsys, "evaluate", trained, "--data", relabelled), "another nomenclature")
    (tmp_path / "not-a-model.keras").write_text("hello")
    one_line_error(run_mlrs_here(capsys, "evaluate", tmp_path / "not-a-model.keras"), "cannot load")
    one_line_error(run_mlrs_here(capsys, "predict", trained, tmp_path / "nowhere"), "nowhere")
    one_line_error(run_mlrs_here(capsys, "evaluate", trained, "--decision", "sparsemax_support", "--threshold", "0.3"),
                   "--threshold does not apply")


# -- the rest of the surface ----------------------------------------------------------------------
def test_resnet50_backbone_trains_on_the_stacked_layout_and_round_trips(prepared, tmp_path):
    from keras_mlrs import models

    model = models.get("resnet50")
    assert models.input_layout(model) == "stacked"
    loss = losses.get("bce")
    model.compile(optimizer="rmsprop", loss=loss)
    x, y = next(iter(data.load(prepared, "train", batch_size=2, layout="stacked", shuffle=False)))
    assert np.isfinite(model.train_on_batch(x, y))
    model.save(tmp_path / "r.keras")
    again = keras.saving.load_model(tmp_path / "r.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-4, atol=1e-4)


def test_doctor_reports_what_a_bug_report_needs():
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["keras backend"] == keras.backend.backend()
    assert info["XLA (jit_compile) works"] == "yes"
    for key in ("tensorflow", "GPUs", "iNNvestigate engine", "Hugging Face cache", "Hugging Face offline (HF_HUB_OFFLINE)"):
        assert info[key]


def test_bench_train_prints_throughput_and_input_wait(tmp_path):
    result = runner.invoke(app, ["bench", "train", "--batch-size", "4", "--steps", "1", "--rounds", "1"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for row in ("patches/s, data in memory", "patches/s, data from prepared shards", "waiting for input"):
        assert row in result.output


def test_demo_runs_the_pipeline_on_the_sample(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--epochs", "1"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "not accuracy" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["runs"]) == {"bce", "sparsemax"}
    assert summary["splits"] == {"train": 3, "validation": 1, "test": 1}
    for r in summary["runs"].values():
        assert (Path(r["run_dir"]) / runs.BEST).is_file()
        assert set(r["prediction"]["predicted"]) <= set(data.CLASS_NAMES)
        assert r["prediction"]["true"]
    assert summary["runs"]["sparsemax"]["decision"] == "sparsemax(z) > 0"
    assert Path(summary["explanation"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
