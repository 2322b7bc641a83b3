"""`mlrs explain-quality` and its library: a run's heatmaps measured on the first patches of a
split. The curves start at the model's own logit of the patch and end at its logit of the
patch made all baseline (both computed here by the model, independently of the
perturbation code), the conservation numbers equal an independent LRP call's, the spectral
shares sum to one, and the command writes its report and figures or fails in one line."""

import json

import keras
import numpy as np
import pytest

from helpers import one_line_error, run_mlrs_here
from keras_mlrs import runs
from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.core.layers import BandNormalization
from keras_mlrs.explain import lrp
from keras_mlrs.runs import explanation_quality as quality

# the run-level orchestration, under TensorFlow only: its numerics (LRP, region perturbation, profiles)
# are tested under both backends in tests/explain


@pytest.fixture(scope="module")
def measured(tiny_runs):
    run = tiny_runs["bce"][0]
    model = runs.load_model(run)
    report = quality.explanation_quality(run, split="train", patches=3, steps=4, random_seeds=(0, 1),
                                         randomisation=False, conservation_presets=("lrp.z",), model=model)
    return run, model, report


def test_the_curves_start_at_the_patchs_logit_and_end_at_the_all_baseline_patchs(measured):
    run, model, report = measured
    inputs, labels, names = quality.split_patches(model, run, "train", 3)
    assert report["patches"] == 3 and report["names"] == names
    logits = np.asarray(model.predict_on_batch(inputs), "float64")
    # every band at its normalisation mean (rounded to uint16): the fully perturbed patch
    means = {layer.name.split("_")[0]: np.asarray(layer.mean) for layer in model.layers if isinstance(layer, BandNormalization)}
    flat = {g: np.broadcast_to(np.rint(means[g]).astype("uint16"), a.shape[1:])[None] for g, a in inputs.items()}
    baseline_logits = np.asarray(model.predict_on_batch(flat), "float64")[0]
    explained = {(n, c) for i, n in enumerate(names) for c in np.flatnonzero(labels[i])}
    assert {(item["patch"], CLASS_NAMES.index(item["class"])) for item in report["items"]} == explained
    for item in report["items"]:
        i, c = names.index(item["patch"]), CLASS_NAMES.index(item["class"])
        for curve in (item["morf"], item["lerf"], *item["random"]):
            assert len(curve) == 5
            assert curve[0] == pytest.approx(logits[i, c], rel=1e-5, abs=1e-5)
            assert curve[-1] == pytest.approx(baseline_logits[c], rel=1e-5, abs=1e-5)
        assert item["aopc_morf"] == pytest.approx(np.mean(item["morf"][0] - np.asarray(item["morf"])))
    # the per-class table of the contract: each class's mean over its patches
    for name, row in report["per_class"].items():
        mine = [item for item in report["items"] if item["class"] == name]
        assert set(row) == {"aopc_lrp", "aopc_random", "aopc_lerf", "patches"} and row["patches"] == len(mine)
        assert row["aopc_lrp"] == pytest.approx(np.mean([item["aopc_morf"] for item in mine]))
    assert report["mean"]["pairs"] == len(report["items"])
    assert report["throughput"]["forward_passes"] > 0 and report["throughput"]["heatmaps_per_s"] > 0


def test_conservation_and_spectral_profile_of_the_explained_heatmaps(measured):
    run, model, report = measured
    inputs, labels, _ = quality.split_patches(model, run, "train", 3)
    relevance = lrp(model, inputs, list(range(len(CLASS_NAMES))))  # an independent call of the engine
    sums = sum(r.astype("float64").sum(axis=tuple(range(2, r.ndim))) for r in relevance.values())
    logits = np.asarray(model.predict_on_batch(inputs), "float64")
    chosen = labels.astype(bool)
    error = np.abs(sums[chosen] - logits[chosen])
    c = report["conservation"]
    assert c["heatmaps"] == chosen.sum()
    assert c["mean_abs_error"] == pytest.approx(error.mean(), rel=1e-3, abs=1e-6)
    assert c["mean_bias_share"] == pytest.approx(np.mean(1 - sums[chosen] / logits[chosen]), rel=1e-3, abs=1e-5)
    assert set(c["presets"]) == {"lrp.z"}
    profiles = report["spectral"]["per_class"]
    assert set(profiles) == {CLASS_NAMES[k] for k in np.flatnonzero(chosen.any(axis=0))}
    for entry in profiles.values():
        for sign in ("positive", "negative"):
            assert sum(entry[sign].values()) == pytest.approx(1.0)
            assert sum(entry[f"{sign}_groups"].values()) == pytest.approx(1.0)


def test_the_command_prints_the_table_and_writes_the_report_and_figures(tiny_runs, tmp_path, capsys):
    run = tiny_runs["sparsemax"][0]
    out, copy = tmp_path / "quality", tmp_path / "copy.json"
    done = run_mlrs_here(capsys, "explain-quality", run, "--split", "train", "--patches", "2", "--steps", "3",
                         "--random-orders", "1", "--no-randomisation", "--out", out, "--json", copy)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "quality.json").read_text())
    assert json.loads(copy.read_text()) == report
    assert set(report) >= {"per_class", "mean", "conservation", "spectral", "throughput"}
    assert report["randomisation"] is None and report["perturbation"]["steps"] == 3
    for name in report["per_class"]:
        assert name.split(",")[0] in done.stdout
    assert "AOPC LRP (MoRF)" in done.stdout and "forward passes in" in done.stdout
    assert "Spectral relevance profile" in done.stdout  # its table of shares per resolution branch
    for figure in ("perturbation_curves", "spectral_profile"):
        assert (out / f"{figure}.png").stat().st_size > 0 and (out / f"{figure}.pdf").is_file()


def test_the_randomisation_check_is_part_of_the_report(tiny_runs, tmp_path):
    run = tiny_runs["bce"][0]
    model = runs.load_model(run)
    report = quality.explanation_quality(run, split="train", patches=1, steps=2, random_seeds=(), classes="all",
                                         conservation_presets=(), randomisation_patches=1, randomisation_steps=False,
                                         model=model)  # the verdict step alone: the cascade is tests/explain's
    assert list(report["per_class"]) == list(CLASS_NAMES)  # every class, labelled or not
    r = report["randomisation"]
    assert r["classes"] == list(range(len(CLASS_NAMES)))
    kernels = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense)]
    assert sorted(r["order"]) == sorted(kernels) and r["order"][0] == "logits"
    assert len(r["steps"]) == 1 and r["steps"][0]["randomised"] == r["order"] and r["passed"] in (True, False)
    files = quality.write_quality(report, tmp_path / "q")
    assert set(files) == {"json", "curves", "spectral", "randomisation"}


@pytest.mark.parametrize("args, fragments", [
    (["--region", "7"], ("region",)),
    (["--preset", "lrp.epsilom"], ("lrp.epsilon",)),
    (["--baseline", "zeros"], ("baseline",)),
    (["--steps", "5000"], ("steps",)),
    (["--classes", "some"], ("classes",)),
])
def test_bad_input_is_one_line_and_writes_nothing(tiny_runs, tmp_path, capsys, args, fragments):
    run = tiny_runs["bce"][0]
    out = tmp_path / "q"
    done = run_mlrs_here(capsys, "explain-quality", run, "--split", "train", "--patches", "1", "--out", out, *args)
    one_line_error(done, *fragments)
    assert not out.exists()
