"""`mlrs evaluate` and `mlrs predict`: evaluate equals scikit-learn on predict's output, the
run's own data by default, other decision rules, GeoTIFF inputs, and bad inputs."""

import json
import shutil

import keras
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from helpers import figure_title, one_line_error, run_mlrs_here
from keras_mlrs import data, runs
from keras_mlrs.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tiny_runs):
    """The bce run of the session (sigmoid rule)."""
    return tiny_runs["bce"][0]


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
    assert "F1 per class: bce" in figure_title(tmp_path / "f1.png")  # and f1.pdf beside it


def test_evaluate_defaults_to_the_runs_data_and_writes_into_the_run(trained):
    result = runner.invoke(app, ["evaluate", str(trained), "--split", "validation"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = trained / "evaluation-validation"
    report = json.loads((out / "report.json").read_text())
    assert report["patches"] == 1 and report["split"] == "validation"
    assert report["checkpoint"] == {"name": "last", "epoch": 2}  # the final epoch, as the study reports
    assert "final epoch 2" in (out / "report.md").read_text()
    for name in ("overall.csv", "per_class.csv", "report.md", "per_class_f1.png"):
        assert (out / name).is_file()


def test_evaluate_chooses_the_checkpoint_of_a_run(trained, tmp_path):
    """--checkpoint epoch-N evaluates that kept file, into its own folder, and says so (best,
    last and the errors: tests/runs/test_training.py and below)."""
    result = runner.invoke(app, ["evaluate", str(trained), "--split", "validation", "--checkpoint", "epoch-1"])
    assert result.exit_code == 0, result.output
    assert "epoch 1) on validation" in result.output
    report = json.loads((trained / "evaluation-validation-epoch-1" / "report.json").read_text())
    assert report["checkpoint"] == {"name": "epoch-1", "epoch": 1}
    direct = tmp_path / "direct.json"  # the kept epoch file itself, evaluated as a plain .keras file
    run = runs.RunDirectory(trained)
    result = runner.invoke(app, ["evaluate", str(run.checkpoint(1)), "--data", str(run.config().data), "--split",
                                 "validation", "--json", str(direct)])
    assert result.exit_code == 0, result.output
    direct = json.loads(direct.read_text())
    assert direct["checkpoint"] is None
    assert {a: direct[a] for a in ("micro", "samples", "per_class")} == {a: report[a] for a in ("micro", "samples",
                                                                                                  "per_class")}


def test_predict_with_another_decision_rule_and_a_multiband_geotiff(trained, tmp_path):
    patch = data.read_patch(next(p for p in sorted(data.sample_path().iterdir()) if p.is_dir()))
    tif = tmp_path / "patch.tif"
    tifffile.imwrite(tif, patch.stacked(), photometric="minisblack", planarconfig="contig")
    result = runner.invoke(app, ["predict", str(trained / runs.LAST), str(tif), "--json", "--decision", "logit",
                                 "--threshold", "-100"])
    assert result.exit_code == 0, result.output
    [prediction] = json.loads(result.output)
    assert prediction["labels"] == list(data.CLASS_NAMES)  # every logit is above -100
    assert set(prediction["scores"]) == set(data.CLASS_NAMES)
    deep = tmp_path / "a" / "very" / "long" / "path" / "to" / "the" / "patches" / "of" / "this" / "study"
    deep.mkdir(parents=True)
    folders = [shutil.copytree(p, deep / p.name) for p in sorted(data.sample_path().iterdir()) if p.is_dir()][:2]
    table = runner.invoke(app, ["predict", str(trained), *map(str, folders)], env={"COLUMNS": "120"}).output
    assert all(f.name in table.replace("\n", "") or f.name[:20] in table for f in folders)  # names, not paths
    assert "very/long" not in table and "top 3 (probability)" in table and "probabilitys" not in table


def test_bad_evaluation_inputs_are_one_line_errors(trained, prepared, tmp_path, capsys):
    other = keras.Sequential([keras.Input((120, 120, 12)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    other.save(tmp_path / "ten.keras")
    one_line_error(run_mlrs_here(capsys, "evaluate", tmp_path / "ten.keras", "--data", prepared), "outputs 10 classes", "19")
    odd = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(19)])
    odd.save(tmp_path / "odd.keras")
    one_line_error(run_mlrs_here(capsys, "evaluate", tmp_path / "odd.keras", "--data", prepared), "match neither BigEarthNet layout")
    one_line_error(run_mlrs_here(capsys, "evaluate", tmp_path / "missing.keras"), "does not exist")
    relabelled = tmp_path / "relabelled"
    shutil.copytree(prepared, relabelled)
    manifest = json.loads((relabelled / "manifest.json").read_text())
    manifest["nomenclature"]["classes"] = sorted(manifest["nomenclature"]["classes"])  # alphabetical order
    (relabelled / "manifest.json").write_text(json.dumps(manifest))
    one_line_error(run_mlrs_here(capsys, "evaluate", trained, "--data", relabelled), "another nomenclature")
    (tmp_path / "not-a-model.keras").write_text("hello")
    one_line_error(run_mlrs_here(capsys, "evaluate", tmp_path / "not-a-model.keras"), "is not a Keras model file")
    one_line_error(run_mlrs_here(capsys, "predict", trained, tmp_path / "nowhere"), "nowhere")
    one_line_error(run_mlrs_here(capsys, "evaluate", trained, "--decision", "sparsemax_support", "--threshold", "0.3"),
                   "--threshold does not apply")
    one_line_error(run_mlrs_here(capsys, "evaluate", trained, "--checkpoint", "epoch-9"), "kept no checkpoint of epoch 9")
    one_line_error(run_mlrs_here(capsys, "evaluate", trained, "--checkpoint", "final"), "unknown checkpoint 'final'")
    one_line_error(run_mlrs_here(capsys, "evaluate", trained / runs.LAST, "--checkpoint", "best"),
                   "run directories only")
