"""Bootstrap uncertainty of evaluation results (keras_mlrs.core.statistics): point values
against scikit-learn, intervals and p-values against a plain reimplementation that resamples
patches by index with the same draws."""

import ast
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from keras_mlrs.core import statistics
from keras_mlrs.errors import InvalidParameterError, MlrsError

pytestmark = [
    pytest.mark.backend_free,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning"),
]

AVERAGES = ("micro", "macro", "weighted", "samples")


def make_label_sets(rng, n=240, k=7, accuracy=0.85):
    """Random labels and a model's label sets right with probability ``accuracy``, with a
    class that has neither true nor predicted labels, a patch without either, a patch with
    true labels and none predicted, and one predicted but without true labels."""
    labels = rng.random((n, k)) < rng.uniform(0.05, 0.5, size=k)
    predicted = np.where(rng.random((n, k)) < accuracy, labels, ~labels)
    labels[:, 2] = predicted[:, 2] = False
    labels[0] = predicted[0] = False
    predicted[1] = False
    labels[2] = False
    return labels.astype("int64"), predicted.astype("int64")


def sklearn_metrics(labels, predicted, weights=None):
    out = {}
    for average in AVERAGES:
        scores = precision_recall_fscore_support(labels, predicted, average=average, zero_division=0,
                                                 sample_weight=weights)[:3]
        out.update({f"{s}_{average}": v for s, v in zip(("precision", "recall", "f1"), scores)})
    return out


def plain_metrics(labels, predicted):
    """The metrics of one (resampled) set of patches, written out directly."""
    y, p = labels.astype(bool), predicted.astype(bool)
    tp, fp, fn = (y & p).sum(0).astype(float), (~y & p).sum(0).astype(float), (y & ~p).sum(0).astype(float)

    def ratio(a, b):
        return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)

    out = {}
    per_class = {"precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn)}
    t, f_p, f_n = tp.sum(), fp.sum(), fn.sum()
    micro = {"precision": ratio(t, t + f_p), "recall": ratio(t, t + f_n), "f1": ratio(2 * t, 2 * t + f_p + f_n)}
    tp_n, fp_n, fn_n = (y & p).sum(1).astype(float), (~y & p).sum(1).astype(float), (y & ~p).sum(1).astype(float)
    samples = {"precision": ratio(tp_n, tp_n + fp_n), "recall": ratio(tp_n, tp_n + fn_n),
               "f1": ratio(2 * tp_n, 2 * tp_n + fp_n + fn_n)}
    support = tp + fn
    for score in ("precision", "recall", "f1"):
        out[f"{score}_micro"] = float(micro[score])
        out[f"{score}_macro"] = float(per_class[score].mean())
        out[f"{score}_weighted"] = float(ratio((per_class[score] * support).sum(), support.sum()))
        out[f"{score}_samples"] = float(samples[score].mean())
    return out


def plain_resampled(labels, predicted, resamples, seed):
    """Each metric on each resample, the resample's patches picked by index (the draws the
    module documents)."""
    n = len(labels)
    indices = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    rows = [plain_metrics(labels[i], predicted[i]) for i in indices]
    return {name: np.array([row[name] for row in rows]) for name in statistics.METRICS}


# --------------------------------------------------------------------------- point values


def test_study_metrics_equal_scikit_learn(rng):
    labels, predicted = make_label_sets(rng)
    counts = statistics.confusion_per_patch(labels, predicted)
    got = statistics.study_metrics(*counts)
    assert set(got) == set(statistics.METRICS)
    want = sklearn_metrics(labels, predicted)
    for name in statistics.METRICS:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name
    # with real-valued sample weights too
    weights = rng.uniform(0.1, 3.0, size=len(labels))
    got = statistics.study_metrics(*counts, weights=weights)
    want = sklearn_metrics(labels, predicted, weights)
    for name in statistics.METRICS:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name


def test_confusion_per_patch_counts():
    labels = np.array([[1, 0, 1], [0, 0, 0]])
    predicted = np.array([[1, 1, 0], [0, 1, 0]], dtype=bool)
    tp, fp, fn = statistics.confusion_per_patch(labels, predicted)
    assert tp.dtype == np.int64 and tp.shape == (2, 3)
    np.testing.assert_array_equal(tp, [[1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(fp, [[0, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(fn, [[0, 0, 1], [0, 0, 0]])


def test_study_metrics_of_resampling_weights_are_those_of_the_resampled_patches(rng):
    # weights [B, N] = how often each patch is drawn: the metrics of the drawn patches
    labels, predicted = make_label_sets(rng, n=50)
    indices = rng.integers(0, 50, size=(6, 50))
    weights = np.stack([np.bincount(i, minlength=50) for i in indices])
    got = statistics.study_metrics(*statistics.confusion_per_patch(labels, predicted), weights=weights)
    for b, i in enumerate(indices):
        want = plain_metrics(labels[i], predicted[i])
        for name in statistics.METRICS:
            assert got[name][b] == pytest.approx(want[name], abs=1e-12), (b, name)


def test_edge_cases_without_positives_or_predictions():
    none = np.zeros((5, 3), int)
    some = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 1]])
    for labels, predicted in ((none, none), (none, some), (some, none)):
        got = statistics.study_metrics(*statistics.confusion_per_patch(labels, predicted))
        assert got == dict.fromkeys(statistics.METRICS, 0.0)
        assert got == pytest.approx(sklearn_metrics(labels, predicted), abs=0)
    perfect = statistics.study_metrics(*statistics.confusion_per_patch(some, some))
    assert perfect["f1_micro"] == perfect["f1_macro"] == perfect["f1_weighted"] == 1.0
    assert perfect["f1_samples"] == pytest.approx(3 / 5)  # two patches without labels score 0


# --------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_bootstrap_intervals_equal_a_plain_index_resampling(rng, level):
    labels, predicted = make_label_sets(rng, n=150, k=5)
    seed = int(rng.integers(2**31))
    got = statistics.bootstrap(labels, predicted, resamples=120, seed=seed, level=level)
    values = plain_resampled(labels, predicted, 120, seed)
    point = plain_metrics(labels, predicted)
    assert list(got) == list(statistics.METRICS)
    for name in statistics.METRICS:
        low, high = np.quantile(values[name], [(1 - level) / 2, (1 + level) / 2])
        assert got[name]["value"] == pytest.approx(point[name], abs=1e-12), name
        assert got[name]["low"] == pytest.approx(low, abs=1e-12), name
        assert got[name]["high"] == pytest.approx(high, abs=1e-12), name


def test_bootstrap_intervals_contain_the_value_and_shrink_with_more_patches(rng):
    small = statistics.bootstrap(*make_label_sets(rng, n=200), resamples=300, seed=1)
    large = statistics.bootstrap(*make_label_sets(rng, n=3000), resamples=300, seed=1)
    for name in statistics.METRICS:
        for result in (small, large):
            assert result[name]["low"] <= result[name]["value"] <= result[name]["high"], name
        assert large[name]["high"] - large[name]["low"] < small[name]["high"] - small[name]["low"], name


def test_bootstrap_is_reproducible_and_the_blocks_do_not_matter(rng, monkeypatch):
    labels, predicted = make_label_sets(rng, n=90)
    first = statistics.bootstrap(labels, predicted, resamples=50, seed=7)
    assert statistics.bootstrap(labels, predicted, resamples=50, seed=7) == first
    assert statistics.bootstrap(labels, predicted, resamples=50, seed=8) != first
    monkeypatch.setattr(statistics, "_BLOCK_ENTRIES", 90 * 3)  # blocks of 3 rows, the last of 2
    assert statistics.bootstrap(labels, predicted, resamples=50, seed=7) == first


def test_bootstrap_of_one_patch_and_one_resample():
    got = statistics.bootstrap([[1, 0, 1]], [[1, 1, 1]], resamples=1, seed=0)
    assert got["precision_micro"] == {"value": 2 / 3, "low": 2 / 3, "high": 2 / 3}
    assert got["recall_samples"] == {"value": 1.0, "low": 1.0, "high": 1.0}


# --------------------------------------------------------------------------- paired bootstrap


def test_a_model_against_itself_differs_by_nothing():
    labels, predicted = make_label_sets(np.random.default_rng(3))
    got = statistics.paired_bootstrap(labels, predicted, predicted.copy(), resamples=200)
    assert got == {"metric": "f1_samples", "a": got["a"], "b": got["a"], "difference": 0.0, "low": 0.0,
                   "high": 0.0, "p_value": 1.0}


def test_a_clearly_better_model_has_the_smallest_p_value(rng):
    labels, worse = make_label_sets(rng, n=400, accuracy=0.7)
    better = np.where(rng.random(labels.shape) < 0.95, labels, 1 - labels)
    got = statistics.paired_bootstrap(labels, worse, better, metric="f1_macro", resamples=199, seed=2)
    assert got["difference"] > 0.1 and got["low"] > 0
    assert got["p_value"] == 1 / 200  # bounded below by 1 / (resamples + 1)
    reverse = statistics.paired_bootstrap(labels, better, worse, metric="f1_macro", resamples=199, seed=2)
    assert reverse["difference"] == -got["difference"] and reverse["p_value"] == got["p_value"]


@pytest.mark.parametrize("metric", ["f1_samples", "precision_micro", "recall_macro"])
def test_paired_bootstrap_equals_a_plain_index_resampling(rng, metric):
    # two models as good as each other: p-values spread over (0, 1]
    labels, a = make_label_sets(rng, n=120, k=5, accuracy=0.8)
    b = np.where(rng.random(labels.shape) < 0.8, labels, 1 - labels)
    got = statistics.paired_bootstrap(labels, a, b, metric=metric, resamples=150, seed=5, level=0.9)
    diffs = plain_resampled(labels, b, 150, 5)[metric] - plain_resampled(labels, a, 150, 5)[metric]
    observed = plain_metrics(labels, b)[metric] - plain_metrics(labels, a)[metric]
    low, high = np.quantile(diffs, [0.05, 0.95])
    p_value = (1 + np.sum(np.abs(diffs - observed) >= abs(observed) - 1e-12)) / 151
    assert got["difference"] == pytest.approx(observed, abs=1e-12)
    assert got["a"] == pytest.approx(plain_metrics(labels, a)[metric], abs=1e-12)
    assert (got["low"], got["high"]) == pytest.approx((low, high), abs=1e-12)
    assert got["p_value"] == pytest.approx(p_value)
    assert got["low"] <= got["difference"] <= got["high"]


def test_several_seeds_are_averaged_on_the_same_resamples(rng):
    """[S, N, C]: a recipe trained with S seeds; each resample's metric is the seeds' mean."""
    labels, a = make_label_sets(rng, n=100, k=4)
    seeds = np.stack([a, *(np.where(rng.random(labels.shape) < 0.85, labels, 1 - labels) for _ in range(2))])
    got = statistics.bootstrap(labels, seeds, resamples=80, seed=3)
    per_seed = [plain_resampled(labels, p, 80, 3) for p in seeds]
    for name in ("f1_samples", "f1_macro", "precision_micro"):
        mean = np.mean([v[name] for v in per_seed], axis=0)
        assert got[name]["value"] == pytest.approx(np.mean([plain_metrics(labels, p)[name] for p in seeds]), abs=1e-12)
        assert (got[name]["low"], got[name]["high"]) == pytest.approx(tuple(np.quantile(mean, [0.025, 0.975])),
                                                                        abs=1e-12)
    paired = statistics.paired_bootstrap(labels, a, seeds, resamples=80, seed=3)
    diffs = np.mean([v["f1_samples"] for v in per_seed], axis=0) - per_seed[0]["f1_samples"]
    assert (paired["low"], paired["high"]) == pytest.approx(tuple(np.quantile(diffs, [0.025, 0.975])), abs=1e-12)
    assert statistics.bootstrap(labels, seeds[:1], resamples=80, seed=3) == statistics.bootstrap(
        labels, a, resamples=80, seed=3)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("resamples", [0, -3, 2.5, True, "100"])
def test_bad_resamples_raise(resamples):
    with pytest.raises(InvalidParameterError, match="resamples"):
        statistics.bootstrap([[1, 0]], [[1, 0]], resamples=resamples)


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.2, 95, "0.95"])
def test_bad_level_raises(level):
    with pytest.raises(InvalidParameterError, match="level"):
        statistics.paired_bootstrap([[1, 0]], [[1, 0]], [[0, 1]], level=level)


@pytest.mark.parametrize("labels, predicted", [
    (np.zeros((4, 3)), np.zeros((4, 2))),
    (np.zeros((4, 3)), np.zeros((5, 3))),
    (np.zeros(4), np.zeros(4)),
    (np.zeros((0, 3)), np.zeros((0, 3))),
], ids=["classes", "patches", "1d", "empty"])
def test_mismatched_or_empty_arrays_raise(labels, predicted):
    with pytest.raises(MlrsError, match="shape"):
        statistics.bootstrap(labels, predicted)
    with pytest.raises(MlrsError, match="shape"):
        statistics.paired_bootstrap(labels, labels, predicted)


def test_scores_instead_of_label_sets_raise():
    with pytest.raises(InvalidParameterError, match="decision rule"):
        statistics.confusion_per_patch([[1, 0]], [[0.7, 0.2]])
    with pytest.raises(InvalidParameterError, match="confusion_per_patch"):
        statistics.study_metrics([[2, 0]], [[0, 0]], [[0, 0]])


def test_bad_weights_and_metric_raise():
    counts = statistics.confusion_per_patch([[1, 0], [0, 1]], [[1, 1], [0, 1]])
    with pytest.raises(MlrsError, match="weights"):
        statistics.study_metrics(*counts, weights=[1.0, 2.0, 3.0])
    with pytest.raises(InvalidParameterError, match="non-negative"):
        statistics.study_metrics(*counts, weights=[1.0, -1.0])
    with pytest.raises(MlrsError, match="f1_samples"):
        statistics.paired_bootstrap([[1, 0]], [[1, 0]], [[0, 1]], metric="f1_sample")


def test_messages_name_no_command_line_flags():
    messages = []
    for call in (lambda: statistics.bootstrap([[1]], [[1]], resamples=0),
                 lambda: statistics.bootstrap([[1]], [[1]], level=2),
                 lambda: statistics.bootstrap([[1]], [[1, 0]]),
                 lambda: statistics.bootstrap([[1]], [[0.5]])):
        with pytest.raises(MlrsError) as error:
            call()
        messages.append(str(error.value))
    assert not any("--" in m for m in messages), messages


def test_the_module_imports_numpy_only():
    tree = ast.parse(Path(statistics.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"numbers", "numpy", "keras_mlrs.errors"}
