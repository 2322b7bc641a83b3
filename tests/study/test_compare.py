"""The comparison report's pieces (the whole report is tested end to end in tests/e2e)."""

from helpers import figure_title
from keras_mlrs import runs
from keras_mlrs.study import compare


def test_compare_highlights_the_best_run_of_each_row_only_when_runs_differ():
    assert compare.best([0.5, 0.7, 0.7, None]) == {1, 2}
    assert compare.best([0.0, 0.0]) == set() and compare.best([None, 0.3]) == set()


def test_runs_get_short_unique_names(tmp_path):
    a, b = tmp_path / "x" / "bce", tmp_path / "y" / "bce"
    assert runs.run_names([a, tmp_path / "x" / "focal"]) == ["bce", "focal"]
    assert runs.run_names([a, b]) == ["x/bce", "y/bce"]


def test_lrp_during_training_from_kept_checkpoints(tiny_runs, tmp_path):
    """The thesis's Tables 6.12-6.13: the runs kept every epoch (--keep-every 1), so the report
    draws one row per run and one column per epoch, each cell that epoch's checkpoint; the
    scores it records are those of the checkpoints themselves. (The whole report, this
    section included, is tested end to end in tests/e2e.)"""
    from keras_mlrs.explain import heatmaps

    patch = heatmaps.example_patch()
    names, run_dirs = ["bce", "sparsemax"], [tiny_runs["bce"][0], tiny_runs["sparsemax"][0]]
    grid = compare._training_grid(tmp_path, names, run_dirs, patch, ["Marine waters"], "lrp.epsilon", "rgb", print)
    assert grid["epochs"] == [1, 2] and grid["class"] == "Marine waters" and grid["patch"] == patch.name
    title = figure_title(tmp_path / grid["figure"].removeprefix("figures/"))  # a PNG and a PDF beside it
    assert grid["vector"] == grid["figure"].replace(".png", ".pdf")
    assert "Marine waters" in title and "bce, sparsemax" in title and "epochs 1, 2" in title
    run = runs.RunDirectory(tiny_runs["sparsemax"][0])
    first = heatmaps.explain_patch(runs.load_model(run.checkpoint(1)), patch, ["Marine waters"])
    assert grid["scores"]["sparsemax"]["1"] == first.scores[0]
    # a run that kept no epochs for it (no --keep-every): no figure, and the section says how to get one
    assert compare._training_grid(tmp_path, ["ranking"], [tiny_runs["ranking"][0]], patch, None, "lrp.epsilon", "rgb",
                                  print) is None
    result = {"runs": dict(zip(names, map(str, run_dirs))), "split": "test", "patches_evaluated": {"bce": 1},
              "decision": {"bce": "sigmoid"}, "checkpoint": {"bce": {"name": "last", "epoch": 2}}, "preset": "lrp.epsilon",
              "bands": "rgb", "lrp_training": None}
    text = compare._training_caption(result) + compare._models_sentence(result)
    assert "--keep-every" in text and "bce: final epoch 2" in text


def _copy_run(run, to, **config):
    """A copy of a finished run whose config.toml says ``config`` (e.g. another seed: a
    stand-in for a second training of the recipe, with the first one's weights)."""
    import shutil


    shutil.copytree(run, to)
    cfg = runs.RunDirectory(to).config()
    for k, v in config.items():
        setattr(cfg, k, v)
    (to / runs.CONFIG).write_text(cfg.to_toml())
    return to


def test_seeds_intervals_paired_tests_and_calibration_in_the_report(tiny_runs, tmp_path):
    """Runs of one recipe are grouped (mean ± std over seeds); every recipe gets bootstrap
    intervals over the patches (equal to a plain index resampling scored by scikit-learn),
    a paired test against bce, and its calibrated thresholds beside the fixed rule; the
    LRP patch is the split's own."""
    import json

    import numpy as np
    import pytest
    from sklearn.metrics import f1_score


    bce, sparsemax = tiny_runs["bce"][0], tiny_runs["sparsemax"][0]
    # keep_every=0: no LRP-during-training figure (tested above)
    runs_ = [_copy_run(bce, tmp_path / "bce", keep_every=0), _copy_run(bce, tmp_path / "bce-seed1", seed=1, keep_every=0),
             _copy_run(sparsemax, tmp_path / "sparsemax", keep_every=0)]
    result = compare.compare(runs_, tmp_path / "report", split="train", resamples=200, quality_patches=0)
    assert {k: v["runs"] for k, v in result["recipes"].items()} == {"bce": ["bce", "bce-seed1"],
                                                                    "sparsemax": ["sparsemax"]}
    assert result["recipes"]["bce"]["seeds"] == [0, 1]
    own = json.loads((tmp_path / "bce" / "evaluation-train" / "report.json").read_text())
    assert result["seeds"]["bce"]["f1_samples"] == {"mean": own["samples"]["f1"], "std": 0.0, "n": 2}
    assert result["seeds"]["sparsemax"]["f1_samples"]["std"] is None  # one seed

    stored = runs.run_outputs(tmp_path / "sparsemax", "train")
    labels = stored["labels"]
    predicted = compare._label_sets(stored["report"]["decision"], stored["logits"])
    draws = np.random.default_rng(0).integers(0, len(labels), size=(200, len(labels)))
    values = [f1_score(labels[i], predicted[i], average="samples", zero_division=0) for i in draws]
    interval = result["uncertainty"]["intervals"]["sparsemax"]["f1_samples"]
    assert interval["value"] == np.float64(f1_score(labels, predicted, average="samples", zero_division=0))
    assert (interval["low"], interval["high"]) == tuple(np.quantile(values, [0.025, 0.975]))
    assert result["uncertainty"]["reference"] == "bce" and list(result["uncertainty"]["paired"]) == ["sparsemax"]
    # the paired difference, in float64, against the Keras metrics' float32 report
    assert result["uncertainty"]["paired"]["sparsemax"]["difference"] == pytest.approx(
        interval["value"] - own["samples"]["f1"], abs=1e-6)

    for name in ("bce", "bce-seed1", "sparsemax"):  # each calibrated on its validation split first
        assert result["calibrated"][name]["decision"]["name"] == "calibrated"
        assert (tmp_path / name / runs.CALIBRATION).is_file()
    assert result["lrp_patch"] == {"source": "data", "split": "train", "patch": result["lrp"][0]["patch"]}
    assert result["lrp"][0]["patch"] in stored["names"]
    md = (tmp_path / "report" / "report.md").read_text()
    for title in (compare.SECTIONS["seeds"], compare.SECTIONS["paired"], compare.SECTIONS["calibrated"]):
        assert f"## {title}" in md
    assert f"| bce | 0, 1 | {own['samples']['f1']:.4f} ± 0.0000 |" in md
    assert "of the train split (the one with the most labels)" in md


def test_runs_on_different_test_sets_are_refused_unless_allowed(tiny_runs, prepared, tmp_path):
    import pytest

    from keras_mlrs import data
    from keras_mlrs.errors import InvalidParameterError

    other = tmp_path / "other-data"  # the sample split with another seed: another test patch
    data.prepare(data.sample_path(), other, split="random", seed=3, fractions=(0.6, 0.2, 0.2), workers=1)
    assert data.open_source(other).names("test") != data.open_source(prepared).names("test")
    moved = _copy_run(tiny_runs["bce"][0], tmp_path / "bce-elsewhere", data=str(other), keep_every=0)
    pair = [_copy_run(tiny_runs["sparsemax"][0], tmp_path / "sparsemax", keep_every=0), moved]
    with pytest.raises(InvalidParameterError, match="evaluated on different test sets.*allow_different_data"):
        compare.compare(pair, tmp_path / "refused", quality_patches=0)
    assert not (tmp_path / "refused").exists()
    with pytest.raises(InvalidParameterError, match="the reference 'focal' is none of the compared recipes"):
        compare.compare(pair, tmp_path / "refused", reference="focal", allow_different_data=True, quality_patches=0)
    result = compare.compare(pair, tmp_path / "allowed", allow_different_data=True, resamples=20, quality_patches=0)
    assert "different test sets" in result["warning"]
    for name in ("report.md", "report.html"):
        assert "different test sets" in (tmp_path / "allowed" / name).read_text()


def test_explanation_quality_and_landscapes_per_loss_in_the_report(tiny_runs, tmp_path):
    """Each run's explanations measured on the same first patches of the split (AOPC per
    loss and class, spectral shares per branch) and its loss along one shared direction: the
    report's numbers are those of the library's own functions for each run, in its tables."""
    import pytest

    from keras_mlrs.runs import explanation_quality, landscape

    names = ["bce", "sparsemax"]
    run_dirs = [_copy_run(tiny_runs[n][0], tmp_path / n, keep_every=0) for n in names]
    result = compare.compare(run_dirs, tmp_path / "report", split="train", resamples=20, quality_patches=2,
                             landscape_points=3)
    quality, shapes = result["explanation_quality"], result["landscape"]
    assert list(quality) == names and list(shapes) == names
    alone = explanation_quality.explanation_quality(run_dirs[1], split="train", patches=2, randomisation=False,
                                                     conservation_presets=())
    assert quality["sparsemax"]["mean"] == pytest.approx(alone["mean"])
    assert list(quality["sparsemax"]["per_class"]) == list(alone["per_class"])
    for name, row in alone["per_class"].items():
        assert quality["sparsemax"]["per_class"][name] == pytest.approx(row)
    assert {r["architecture"] for r in shapes.values()} == {landscape.architecture(runs.load_model(run_dirs[0]))}
    assert {r["seed"] for r in shapes.values()} == {0}
    verdict = quality["bce"]["randomisation"]  # every kernel layer randomised at once: the verdict alone
    assert verdict["layers"] == 14 and verdict["patches"] == 2 and verdict["passed"] in (True, False)
    md = (tmp_path / "report" / "report.md").read_text()
    html = (tmp_path / "report" / "report.html").read_text()
    m = quality["bce"]["mean"]
    assert f"| bce | {m['pairs']} |" in md and f"{m['aopc_lrp']:.4f}" in md
    assert f"{verdict['final_mean']:.2f}, {'passed' if verdict['passed'] else 'flagged'}" in md
    assert f"{shapes['sparsemax']['origin']['loss']:.4f}" in md
    for figure in ("perturbation_curves", "spectral_bce", "spectral_sparsemax", "landscape"):
        assert (tmp_path / "report" / "figures" / f"{figure}.png").is_file()
        assert f"figures/{figure}.png" in md and f"figures/{figure}.png" in html
