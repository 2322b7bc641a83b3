"""Loss landscapes (Li et al. 2018) of the session's tiny runs: the centre of every grid is the
run's model evaluated independently (its loss with the run's hyperparameters, scikit-learn's
sample-F1, the L2 penalty summed by hand), the directions are seeded, backend-free NumPy
draws, filter-normalised, zero for batch normalisation, biases and non-trainable variables,
the weights come back exactly, the 2-D plane holds the 1-D line, and `mlrs landscape` writes
its folder whole or not at all. The session's runs are read, never written: the command runs
on a copy."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from helpers import figure_title, one_line_error, run_mlrs_here
from keras_mlrs import runs
from keras_mlrs.core import losses
from keras_mlrs.errors import InvalidParameterError, MlrsError, RunError
from keras_mlrs.runs import landscape

# under TensorFlow only: the JAX half of the suite would train the session's tiny runs for it alone (about
# 100 s); the directions are drawn by NumPy, not the backend, and the LRP-free evaluation is plain Keras

#: The variables of the narrow K-Branch CNN a landscape moves: 9 convolution kernels, the 4
#: hidden dense kernels and the classifier's kernel (not its bias).
KERNELS = 14


@pytest.fixture(scope="module")
def bce(tiny_runs, tmp_path_factory):
    """A copy of the tiny bce run sharing its files (keras-mlrs replaces files, never changes them)."""
    return shutil.copytree(tiny_runs["bce"][0], tmp_path_factory.mktemp("landscape") / "bce", copy_function=os.link)


@pytest.fixture(scope="module")
def line(bce):
    """The run's model, its weights before, and its 1-D landscape (5 points) computed on that model."""
    model = runs.load_model(bce)
    before = [np.array(w, copy=True) for w in model.get_weights()]
    return model, before, landscape.landscape(bce, points=5, model=model)


def independent(run, model, split="validation", patches=None):
    """Labels and logits of ``split`` of the run's data, and the run's loss built from its config."""
    dataset, *_ = runs.evaluation_data(model, run, split)
    ys, logits = [], []
    for x, y in dataset:
        ys.append(np.asarray(y, np.float32))
        logits.append(np.asarray(model.predict_on_batch(keras.tree.map_structure(np.asarray, x)), np.float32))
    y, z = np.concatenate(ys)[:patches], np.concatenate(logits)[:patches]
    config = runs.RunDirectory(run).config()
    return y, z, losses.get(config.loss, **config.loss_params)


def test_the_centre_of_the_grid_is_the_runs_model_evaluated_on_the_split(tiny_runs, line, bce):
    """Every decision rule's run: the loss with the run's own hyperparameters (the ranking run's
    margin 2 came from the command line), the sample-F1 as scikit-learn computes it on the
    run's rule, and the L2 penalty as the K-Branch CNN defines it (1e-5 Σw² per kernel)."""
    skm = pytest.importorskip("sklearn.metrics")
    model, _, result = line
    results = {"bce": (bce, model, result)}
    for loss in ("ranking", "sparsemax"):
        run = tiny_runs[loss][0]
        net = runs.load_model(run)
        results[loss] = (run, net, landscape.landscape(run, points=3, model=net))
    assert results["ranking"][2]["loss"] == {"name": "ranking", "params": {"margin": 2}}
    for loss, (run, net, r) in results.items():
        y, z, fn = independent(run, net)
        centre = (r["points"] - 1) // 2
        assert r["alphas"][centre] == 0.0
        assert r["origin"]["loss"] == r["loss_values"][centre]
        assert r["origin"]["loss"] == pytest.approx(float(fn(y, z)), rel=1e-6), loss
        assert r["origin"]["loss"] == pytest.approx(float(net.loss(y, z)), rel=1e-6), loss  # the compiled loss too
        predicted = np.asarray(fn.decision(z)).astype(int)
        assert r["decision"]["name"] == fn.decision.name
        assert r["origin"]["f1_samples"] == pytest.approx(
            skm.f1_score(y.astype(int), predicted, average="samples", zero_division=0), abs=1e-6), loss
        penalty = sum(1e-5 * float(np.sum(np.asarray(v, np.float64) ** 2)) for v in net.trainable_variables
                      if v.path.endswith("kernel") and not v.path.startswith("logits"))
        assert r["origin"]["penalty"] == pytest.approx(penalty, rel=1e-5), loss
        assert (r["split"], r["patches"], r["checkpoint"]) == ("validation", 1, {"name": "last", "epoch": 2})
        assert r["perturbed"]["variables"] == KERNELS


def test_the_grid_is_symmetric_and_holds_zero_exactly():
    np.testing.assert_array_equal(landscape.grid(5), [-1.0, -0.5, 0.0, 0.5, 1.0])
    for points, span in ((3, 1.0), (21, 0.3), (11, 2.5), (41, 0.07)):
        alphas = landscape.grid(points, span)
        assert len(alphas) == points and alphas[0] == -span and alphas[-1] == span
        assert alphas[(points - 1) // 2] == 0.0
        np.testing.assert_array_equal(alphas, -alphas[::-1])
        assert np.all(np.diff(alphas) > 0)


def test_directions_are_seeded_filter_normalised_numpy_draws_zero_for_what_is_kept(tiny_runs, line):
    """The same seed gives the same directions, another seed others; each filter of δ (an
    output channel of a convolution, an output unit of a dense layer) has the norm of the
    same filter of θ; batch normalisation, biases and non-trainable variables get zero. The
    draws are NumPy's, variable after variable in the model's order: another run of the
    architecture gets the same draws, scaled to its own weights."""
    model, _, _ = line
    first, again = landscape.random_directions(model, seed=0), landscape.random_directions(model, seed=0)
    other = landscape.random_directions(model, seed=1)
    weights = {v.path: np.asarray(v) for v in model.weights}
    assert list(first[0]) == [v.path for v in model.weights]
    moved = [v for v in model.weights if landscape.perturbed(v)]
    assert len(moved) == KERNELS and all(v.trainable and v.path.endswith("/kernel") for v in moved)
    for v in model.weights:
        d = first[0][v.path]
        np.testing.assert_array_equal(d, again[0][v.path])
        assert d.shape == tuple(v.shape) and d.dtype == np.float32
        if landscape.perturbed(v):
            assert not np.array_equal(d, other[0][v.path])
            np.testing.assert_allclose(landscape.filter_norms(d), landscape.filter_norms(weights[v.path]), rtol=1e-5)
            assert landscape.filter_norms(d).shape == (v.shape[-1],)
        else:  # gamma, beta, moving mean and variance, the classifier's bias
            assert v.path.rsplit("/", 1)[1] in ("gamma", "beta", "moving_mean", "moving_variance", "bias"), v.path
            assert not np.any(d), v.path
    rng = np.random.default_rng(0)  # the documented draw: NumPy, in the model's variable order
    for v in moved:
        expected = landscape.filter_normalise(rng.standard_normal(tuple(v.shape)), weights[v.path])
        np.testing.assert_allclose(first[0][v.path], expected, rtol=1e-6)
    # another run of the architecture: the same draws (each filter divided by its weights' norm)
    net = runs.load_model(tiny_runs["sparsemax"][0])
    theirs = landscape.random_directions(net, seed=0)
    assert landscape.architecture(net) == landscape.architecture(model)
    for v, w in zip(moved, (u for u in net.weights if landscape.perturbed(u))):
        mine = first[0][v.path] / landscape.filter_norms(weights[v.path])
        np.testing.assert_allclose(theirs[0][w.path] / landscape.filter_norms(np.asarray(w)), mine, rtol=1e-4,
                                   atol=1e-6)
    two = landscape.random_directions(model, seed=0, count=2)  # δ first: the 1-D direction
    assert all(np.array_equal(two[0][k], first[0][k]) for k in first[0])
    assert any(not np.array_equal(two[1][k], first[0][k]) for k in first[0])


def test_the_penalty_along_a_filter_normalised_direction_grows_as_one_plus_alpha_squared(line):
    """An independent check of the normalisation through the evaluated model: every
    regularised kernel moves by a direction of its own norm, so the penalty P satisfies
    P(α) + P(-α) = 2 P(0) (1 + α²)."""
    _, _, result = line
    alphas, penalty = result["alphas"], result["penalty_values"]
    centre = (len(alphas) - 1) // 2
    for i in range(centre):
        alpha = alphas[-1 - i]
        assert penalty[i] + penalty[-1 - i] == pytest.approx(2 * penalty[centre] * (1 + alpha**2), rel=1e-4)
    assert penalty[0] > penalty[centre] and penalty[-1] > penalty[centre]


def test_the_weights_are_restored_exactly_also_when_the_evaluation_fails(line, bce):
    model, before, result = line
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert len(set(result["loss_values"])) > 1  # the weights did move in between

    def fail(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        landscape.landscape(bce, points=3, model=model, progress=fail)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_the_plane_holds_the_line_along_its_first_direction(line, bce, tmp_path):
    model, _, result = line
    plane = landscape.landscape(bce, directions=2, points=3, model=model)
    short = landscape.landscape(bce, points=3, model=model)
    assert plane["alphas"] == plane["betas"] == short["alphas"] == [-1.0, 0.0, 1.0]
    assert np.shape(plane["loss_values"]) == np.shape(plane["f1_values"]) == (3, 3)
    assert plane["origin"] == short["origin"] and plane["loss_values"][1][1] == result["origin"]["loss"]
    column = [row[1] for row in plane["loss_values"]]  # beta = 0: along delta
    np.testing.assert_allclose(column, short["loss_values"], rtol=1e-6)
    np.testing.assert_allclose([row[1] for row in plane["f1_values"]], short["f1_values"], atol=1e-6)
    np.testing.assert_allclose(short["loss_values"], [result["loss_values"][i] for i in (0, 2, 4)], rtol=1e-6)
    assert not np.allclose(plane["loss_values"][1], column)  # alpha = 0: along eta, another direction
    figure = landscape.contour_figure(plane, tmp_path / "plane.png")
    title = figure_title(figure.png)
    assert "bce" in title and "validation split" in title and "seed 0" in title and "3 by 3 points" in title
    assert figure.info["loss_range"][0] == pytest.approx(min(min(r) for r in plane["loss_values"]))


def test_patches_takes_the_first_patches_of_the_split(line, bce):
    model, _, _ = line
    r = landscape.landscape(bce, split="train", points=3, patches=2, model=model)
    y, z, fn = independent(bce, model, "train", patches=2)
    assert r["patches"] == r["evaluation_set"]["patches"] == 2 and r["split"] == "train"
    assert r["origin"]["loss"] == pytest.approx(float(fn(y, z)), rel=1e-6)
    assert landscape.landscape(bce, split="train", points=3, patches=100, model=model)["patches"] == 3


def test_several_runs_share_the_directions_of_one_seed_in_one_figure(tiny_runs, line, tmp_path):
    both = landscape.landscapes([tiny_runs["bce"][0], tiny_runs["sparsemax"][0]], points=3)
    assert list(both) == ["bce", "sparsemax"]
    assert both["bce"]["loss_values"] == pytest.approx([line[2]["loss_values"][i] for i in (0, 2, 4)], rel=1e-6)
    figure = landscape.landscape_figure(both, tmp_path / "both.png")
    title = figure_title(figure.png)
    assert "bce, sparsemax" in title and "validation split" in title and "seed 0" in title
    assert "the same directions for every run" in title
    assert figure.info == {"runs": ["bce", "sparsemax"], "seed": 0, "loss_scale": figure.info["loss_scale"],
                           "same_directions": True}
    reseeded = {**both, "sparsemax": {**both["sparsemax"], "seed": 1}}
    with pytest.raises(InvalidParameterError, match="different directions"):
        landscape.landscape_figure(reseeded, tmp_path / "no.png")
    with pytest.raises(InvalidParameterError, match="contour_figure"):
        landscape.landscape_figure({"plane": {**both["bce"], "directions": 2}}, tmp_path / "no.png")
    assert not (tmp_path / "no.png").exists()


def test_options_out_of_range_are_one_line_errors(line, bce, tmp_path):
    model, _, _ = line
    for options, message in (({"directions": 3}, "directions=1"), ({"points": 4}, "odd whole number >= 3"),
                             ({"points": 1}, "odd whole number"), ({"points": True}, "odd whole number"),
                             ({"span": 0}, "positive number"), ({"span": float("inf")}, "positive number"),
                             ({"seed": -1}, "`seed`"), ({"patches": 0}, "number of patches"),
                             ({"batch_size": 0}, "`batch_size`"), ({"split": "random"}, "unknown split")):
        with pytest.raises(MlrsError, match=message):
            landscape.landscape(bce, model=model, **options)
    assert landscape.check_options(directions=2) == 11 and landscape.check_options() == 21
    (tmp_path / "config.toml").write_text('loss = "bce"\n')
    with pytest.raises(RunError, match="has no finished model"):
        landscape.landscape(tmp_path)
    small = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(InvalidParameterError, match="do not fit the model"):
        landscape.evaluate_landscape(small, np.zeros((1, 3)), np.zeros((1, 2)), losses.get("bce"),
                                     losses.get("bce").decision, landscape.random_directions(model), [0.0])


def test_the_command_writes_the_json_and_the_figure_into_the_run(line, bce, capsys, tmp_path):
    result = run_mlrs_here(capsys, "landscape", bce, "--split", "validation", "--points", "5", "--json",
                           tmp_path / "copy.json")
    assert result.returncode == 0, result.stderr
    assert "Loss along δ" in result.stdout and "At the trained weights: loss" in result.stdout
    folder = bce / "landscape-validation"
    assert sorted(p.name for p in folder.iterdir()) == [".keras-mlrs-output.json", "landscape.json", "landscape.pdf",
                                                        "landscape.png"]
    assert f"Written: {folder / 'landscape.json'}" in result.stdout.replace("\n", "")
    written = json.loads((folder / "landscape.json").read_text())
    assert written == json.loads((tmp_path / "copy.json").read_text())
    assert written["loss_values"] == pytest.approx(line[2]["loss_values"], rel=1e-6)
    assert (written["seed"], written["points"], written["directions"], written["span"]) == (0, 5, 1, 1.0)
    assert (written["loss"]["name"], written["split"], written["checkpoint"]["name"]) == ("bce", "validation", "last")
    title = figure_title(folder / "landscape.png")
    assert title.startswith("Loss landscape of bce (final epoch 2) on the validation split") and "seed 0" in title
    again = run_mlrs_here(capsys, "landscape", bce, "--points", "3", "--seed", "4")  # its own folder: replaced
    assert again.returncode == 0, again.stderr
    assert json.loads((folder / "landscape.json").read_text())["seed"] == 4


@pytest.mark.parametrize("args, fragments", [
    (["{run}", "--directions", "3"], ["--directions 1 (a line) or --directions 2"]),
    (["{run}", "--points", "4"], ["--points must be an odd whole number >= 3"]),
    (["{run}", "--points", "1"], ["--points must be an odd"]),
    (["{run}", "--span", "0"], ["--span must be a positive number"]),
    (["{run}", "--patches", "0"], ["number of patches must be a whole number >= 1"]),
    (["{run}", "--checkpoint", "epoch-9"], ["kept no checkpoint of epoch 9"]),
    (["{run}", "--split", "random"], ["unknown split 'random'"]),
    (["{run}", "--out", "{run}/config.toml"], ["is a file, not a folder"]),
    (["{run}", "--out", "{tmp}/foreign"], ["holds no loss landscape written by keras-mlrs"]),
    (["{tmp}/not-a-run"], ["is not a run directory"]),
    (["{tmp}/missing"], ["does not exist"]),
])
def test_bad_input_is_a_one_line_error_and_writes_nothing(bce, capsys, tmp_path, args, fragments):
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")

    def listing():
        return sorted(str(p) for root in (bce, tmp_path) for p in root.rglob("*"))

    before = listing()
    result = run_mlrs_here(capsys, "landscape", *(a.format(run=bce, tmp=tmp_path) for a in args))
    one_line_error(result, "error:", *fragments)
    assert listing() == before
