"""Calibrated thresholds of a run: fitted on the validation split only, never worse there than
the fixed rule, kept in the run tied to the model they were fitted on, and applied by
`mlrs evaluate`, `predict` and `explain --all-predicted` exactly as scikit-learn scores the
thresholded confidences. The session's `calibrated_runs` are shared: tests that change one
copy it first. (Export, push and pull: tests/e2e/test_zoo_to_hub.py.)"""

import json
import os
import shutil

import numpy as np
import pytest
from sklearn import metrics as skm
from typer.testing import CliRunner

from keras_mlrs import data, runs
from keras_mlrs.cli.main import app
from keras_mlrs.core import decision
from keras_mlrs.errors import InvalidParameterError, RunError
from keras_mlrs.files import atomic_write_text
from keras_mlrs.models import patch_inputs
from keras_mlrs.runs import calibration

runner = CliRunner()


def copy_run(run, to):
    """A copy of ``run`` sharing its files (keras-mlrs replaces files, never changes them in place)."""
    return shutil.copytree(run, to, copy_function=os.link)


def test_calibrated_f1_is_at_least_the_fixed_rules_on_the_split_it_was_fitted_on(calibrated_runs):
    for loss, (_, record) in calibrated_runs.items():
        score = "samples" if record["objective"] == "sample-f1" else "macro"
        assert record["scores"]["calibrated"][score] >= record["scores"]["fixed"][score], loss
        assert (record["split"], record["patches"], record["model"]["checkpoint"]) == ("validation", 1,
                                                                                      {"name": "last", "epoch": 2})
        assert record["confidence"] == {"bce": "probability", "sparsemax": "sparsemax probability"}[loss]
        assert record["base"] == {"bce": {"name": "sigmoid", "threshold": 0.5},
                                  "sparsemax": {"name": "sparsemax_support", "scale": 1.0}}[loss]
    run, record = calibrated_runs["bce"]  # the calibration's numbers are those of evaluate
    model = runs.load_model(run)
    dataset, *_ = runs.evaluation_data(model, run, "validation")
    fixed = runs.evaluate(model, dataset)
    calibrated = runs.evaluate(model, dataset, decision=runs.calibrated_rule(run, model))
    assert fixed["decision"] == record["base"] and calibrated["decision"] == record["decision"]
    for average in ("micro", "macro", "samples"):
        assert record["scores"]["fixed"][average] == pytest.approx(fixed[average]["f1"], abs=1e-6)
        assert record["scores"]["calibrated"][average] == pytest.approx(calibrated[average]["f1"], abs=1e-6)
    assert calibrated["samples"]["f1"] == 1.0  # one validation patch: each threshold cuts to its labels


def test_evaluate_with_calibrated_thresholds_equals_scikit_learn_on_the_thresholded_scores(calibrated_runs, prepared,
                                                                                            tmp_path):
    """On the training split (patches the thresholds were not fitted on): the labels of
    `predict --thresholds calibrated` are its probabilities thresholded by calibration.json,
    and `evaluate --thresholds calibrated` is scikit-learn on them; the ranking metrics are
    scikit-learn on the calibrated rule's scores (each class's logit shifted by the logit of
    its threshold). The other rules' thresholding: tests/core/test_decision.py."""
    run, record = calibrated_runs["bce"]
    result = runner.invoke(app, ["evaluate", str(run), "--split", "train", "--thresholds", "calibrated", "--json",
                                 str(tmp_path / "report.json")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "decision rule calibrated" in result.output and "calibrated per class" in result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["decision"] == record["decision"]
    folders = [data.sample_path() / n for n in data.patch_names(prepared, "train")]
    result = runner.invoke(app, ["predict", str(run), *map(str, folders), "--json", "--thresholds", "calibrated"])
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.output)
    t = np.array(list(record["thresholds"].values()))
    confidence = np.array([[p["scores"][c] for c in data.CLASS_NAMES] for p in predictions])
    y_pred = np.array([[c in p["labels"] for c in data.CLASS_NAMES] for p in predictions]).astype(int)
    np.testing.assert_array_equal(y_pred, confidence >= t)
    y_true = np.stack([data.read_patch(f).labels for f in folders]).astype(int)
    for average in ("micro", "macro", "weighted", "samples"):
        for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
            assert report[average][name] == pytest.approx(fn(y_true, y_pred, average=average, zero_division=0),
                                                          abs=1e-6), (average, name)
    model = runs.load_model(run)
    logits = np.concatenate([model.predict_on_batch(patch_inputs(data.read_patch(f), "groups")) for f in folders])
    scores = logits.astype(np.float64) - np.log(t / (1 - t))
    assert report["lrap"] == pytest.approx(skm.label_ranking_average_precision_score(y_true, scores), abs=1e-5)
    assert report["coverage_error"] == pytest.approx(skm.coverage_error(y_true, scores), abs=1e-5)
    assert report["ranking_loss"] == pytest.approx(skm.label_ranking_loss(y_true, scores), abs=1e-5)
    assert report["map_micro"] == pytest.approx(skm.average_precision_score(y_true, scores, average="micro"), abs=1e-5)


def test_thresholds_are_stored_with_the_model_they_were_fitted_on(calibrated_runs, tmp_path):
    """Read back from the run directory and from its model files; refused for another
    checkpoint of the run, another run's model, or a model file outside a run."""
    run, record = calibrated_runs["bce"]
    expected = decision.get(record["decision"])
    assert isinstance(expected, decision.Calibrated) and list(expected.thresholds) == list(record["thresholds"].values())
    assert record["model"]["weights_sha256"] == runs.weights_fingerprint(runs.load_model(run))
    model = runs.load_model(run)  # the same weights as the run's last.keras and checkpoints/epoch-0002.keras
    for source in (run, run / runs.LAST, run / runs.CHECKPOINTS / "epoch-0002.keras"):
        assert runs.decision_rule(source, model, "calibrated") == expected
        assert runs.decision_rule(source, model) == decision.get(record["base"])  # fixed: the default
    with pytest.raises(RunError, match=r"fitted on another model \(checkpoint last \(epoch 2\) of .*bce\), not on "
                                       r"the weights of .*epoch-0001.keras; calibrate it again"):
        runs.calibrated_rule(run / runs.CHECKPOINTS / "epoch-0001.keras", runs.load_model(run, checkpoint="epoch-1"))
    other = copy_run(calibrated_runs["sparsemax"][0], tmp_path / "sparsemax")
    (other / runs.CALIBRATION).unlink()  # the link only: the session's run keeps its own
    shutil.copy(run / runs.CALIBRATION, other / runs.CALIBRATION)
    with pytest.raises(RunError, match="holds thresholds fitted on another model"):
        runs.calibrated_rule(other, runs.load_model(other))
    shutil.copy(run / runs.LAST, tmp_path / "alone.keras")
    with pytest.raises(RunError, match="outside a run directory, so it has no calibrated thresholds"):
        runs.calibrated_rule(tmp_path / "alone.keras", model)
    (other / runs.CALIBRATION).write_text(json.dumps({**record, "thresholds": {"Urban fabric": 0.5}}))
    with pytest.raises(RunError, match="is not a calibration written by keras-mlrs .*BigEarthNet-19 classes"):
        runs.read_calibration(other)


def test_calibrate_fits_on_validation_only_and_a_new_fit_replaces_the_cached_report(calibrated_runs, tmp_path,
                                                                                   monkeypatch):
    run = copy_run(calibrated_runs["bce"][0], tmp_path / "bce")
    titles = []  # the report's JSON only (its figures cost seconds, and are tests/runs/test_evaluation.py's)

    def write_report(report, json_path, title, **other_outputs):
        titles.append(title)
        atomic_write_text(json_path, json.dumps(report))

    monkeypatch.setattr("keras_mlrs.runs.evaluation.write_report", write_report)
    first = runs.run_report(run, "validation", thresholds="calibrated")
    assert first["decision"] == runs.read_calibration(run)["decision"]
    assert titles == [f"{run.name} (final epoch 2, calibrated thresholds) on validation"]
    assert (run / "evaluation-validation-calibrated" / "report.json").is_file()
    with monkeypatch.context() as patched:
        patched.setattr("keras_mlrs.runs.evaluation.evaluate", lambda *a, **k: pytest.fail("not read from the cache"))
        assert runs.run_report(run, "validation", thresholds="calibrated") == first
    with pytest.raises(InvalidParameterError, match="never fitted on the test split"):
        runs.calibrate(run, split="test")
    splits = []
    real_load = calibration.load
    monkeypatch.setattr(calibration, "load", lambda source, split, **kw: splits.append(split) or real_load(source, split, **kw))
    result = runner.invoke(app, ["calibrate", str(run), "--objective", "per-class-f1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert splits == ["validation"]
    assert "Marine waters" in result.output and "calibrated" in result.output and "per-class-f1" in result.output
    record = runs.read_calibration(run)
    assert record["objective"] == "per-class-f1"
    again = runs.run_report(run, "validation", thresholds="calibrated")  # computed again, with the new thresholds
    assert again["decision"] == record["decision"] and len(titles) == 2


def test_explain_all_predicted_explains_the_calibrated_labels(calibrated_runs, prepared, tmp_path, monkeypatch):
    """On the patch the thresholds were fitted on, where they give its true labels (sample-F1 1)."""
    run, record = calibrated_runs["bce"]
    folder = data.sample_path() / data.patch_names(prepared, "validation")[0]
    assert record["scores"]["calibrated"]["samples"] == 1.0
    explained = []  # what would be written (the figures cost seconds, and are tests/cli/test_explain_cli.py's)
    monkeypatch.setattr("keras_mlrs.explain.render.save", lambda e, out, **kw: explained.append(e.class_names) or [])
    result = runner.invoke(app, ["explain", str(folder), "--model", str(run), "--all-predicted", "--thresholds",
                                 "calibrated", "--out", str(tmp_path / "e")], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert explained == [[c for c, v in zip(data.CLASS_NAMES, data.read_patch(folder).labels) if v]]
