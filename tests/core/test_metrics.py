"""Streaming metrics (keras_mlrs.core.metrics) against scikit-learn.

Every metric takes logits and a decision rule; accumulated over uneven batches it must
equal scikit-learn (``zero_division=0``) on the whole data, with ``y_pred = rule(logits)``
for label-set metrics and ``scores = rule.scores(logits)`` for ranking metrics.
"""

import itertools
import json

import keras
import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    coverage_error,
    f1_score,
    hamming_loss,
    label_ranking_average_precision_score,
    label_ranking_loss,
    precision_score,
    recall_score,
)

from keras_mlrs.core import decision, losses, metrics
from keras_mlrs.errors import MlrsError

pytestmark = [
    pytest.mark.backends,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning"),
    pytest.mark.filterwarnings("ignore:No positive class found:UserWarning"),
]

ATOL = 1e-6  # values in [0, 1]
RTOL_COVERAGE = 1e-6  # coverage error is in [0, K]: relative tolerance

RULES = {
    "sigmoid0.5": ("sigmoid", {"threshold": 0.5}),
    "sigmoid0.3": ("sigmoid", {"threshold": 0.3}),
    "logit0": ("logit", {"threshold": 0.0}),
    "logit0.7": ("logit", {"threshold": 0.7}),
    "sparsemax": ("sparsemax_support", {}),
}

AVERAGES = ("micro", "macro", "weighted", "samples", "none")
SCORES = {"precision": (metrics.Precision, precision_score),
          "recall": (metrics.Recall, recall_score),
          "f1": (metrics.F1, f1_score)}

# Many uneven batches. Every test streams batches of 1, 37 or 64 samples with K in {19, 4}
# only: JAX compiles each eager op once per shape, and every new shape costs seconds.
BATCHES = (1, 64, 37, 1, 37, 64)
N = sum(BATCHES)  # 204
K_SMALL = 4


def rule_of(key):
    name, params = RULES[key]
    return decision.get(name, **params)


def make_data(seed, n, k, ties=False):
    """Random labels and informative logits, with the edge cases planted:
    a class with no positives, a sample with no true label, a sample whose logits
    are all very negative (no predicted label), an all-ones label row and a row
    whose logits are all very positive."""
    rng = np.random.default_rng(seed)
    prevalence = rng.uniform(0.05, 0.6, size=k)
    y = (rng.random((n, k)) < prevalence).astype("float32")
    logits = 2.0 * rng.normal(size=(n, k)) + (2.0 * y - 1.0) * rng.uniform(0.0, 1.5, size=k) - 0.5
    y[:, 1] = 0.0  # a class with no positives at all
    y[3] = 0.0  # a sample with no true label
    logits[5] = -12.0 + 0.1 * rng.normal(size=k)  # no predicted label (sigmoid / logit rules)
    y[7] = 1.0  # an all-ones row
    logits[9] = 12.0 + 0.1 * rng.normal(size=k)  # every label predicted (sigmoid / logit rules)
    y[11] = 1.0
    logits[11] = -12.0 + 0.1 * rng.normal(size=k)  # all true, none predicted
    if ties:
        logits = np.round(logits * 2.0) / 2.0
    weights = rng.uniform(0.1, 3.0, size=n).astype("float32")
    return y, logits.astype("float32"), weights


def all_metrics(rule, max_samples=256):
    """Every metric and average, keyed by the name of its scikit-learn reference."""
    out = {}
    for score, (cls, _) in SCORES.items():
        for avg in AVERAGES:
            out[f"{score}_{avg}"] = cls(average=avg, decision=rule)
    out["hamming_loss"] = metrics.HammingLoss(decision=rule)
    out["ranking_loss"] = metrics.RankingLoss(decision=rule)
    out["coverage_error"] = metrics.CoverageError(decision=rule)
    out["lrap"] = metrics.LRAP(decision=rule)
    for avg in ("micro", "macro", "none"):
        out[f"map_{avg}"] = metrics.AveragePrecision(
            average=avg, decision=rule, max_samples=max_samples
        )
    return out


def sklearn_reference(y, pred, scores, w=None):
    y = np.asarray(y).astype(int)
    pred = np.asarray(pred).astype(int)
    scores = np.asarray(scores, dtype="float64")
    ref = {}
    for score, (_, fn) in SCORES.items():
        for avg in AVERAGES:
            ref[f"{score}_{avg}"] = fn(
                y, pred, average=None if avg == "none" else avg, zero_division=0, sample_weight=w
            )
    ref["hamming_loss"] = hamming_loss(y, pred, sample_weight=w)
    ref["ranking_loss"] = label_ranking_loss(y, scores, sample_weight=w)
    ref["coverage_error"] = coverage_error(y, scores, sample_weight=w)
    ref["lrap"] = label_ranking_average_precision_score(y, scores, sample_weight=w)
    for avg in ("micro", "macro", "none"):
        ref[f"map_{avg}"] = average_precision_score(
            y, scores, average=None if avg == "none" else avg, sample_weight=w
        )
    return ref


def reference_for(rule, y, logits, w=None):
    pred = keras.ops.convert_to_numpy(rule(logits))
    scores = keras.ops.convert_to_numpy(rule.scores(logits))
    return sklearn_reference(y, pred, scores, w)


def stream(metric_dict, y, logits, w=None, batches=BATCHES):
    start = 0
    for size in batches:
        sl = slice(start, start + size)
        for m in metric_dict.values():
            m.update_state(y[sl], logits[sl], None if w is None else w[sl])
        start += size
    assert start == len(y)
    return {key: keras.ops.convert_to_numpy(m.result()) for key, m in metric_dict.items()}


def assert_matches(got, want, atol=ATOL, rtol_coverage=RTOL_COVERAGE):
    bad = []
    for key, expected in want.items():
        g = np.asarray(got[key], dtype="float64")
        e = np.asarray(expected, dtype="float64")
        if g.shape != e.shape:
            bad.append(f"{key}: shape {g.shape}, sklearn {e.shape}")
            continue
        if key == "coverage_error":
            ok = np.allclose(g, e, rtol=rtol_coverage, atol=0.0)
        else:
            ok = np.allclose(g, e, rtol=0.0, atol=atol)
        if not ok:
            bad.append(f"{key}: got {g}, sklearn {e}")
    assert not bad, "mismatches with scikit-learn:\n" + "\n".join(bad)


# --------------------------------------------------------------------------- streaming vs sklearn


# (seed, weighted): several seeds, with and without sample weights
SEEDS = [(0, False), (1, True), (2, True)]


@pytest.mark.parametrize("seed, weighted", SEEDS, ids=[f"seed{s}-{'w' if w else 'unw'}" for s, w in SEEDS])
@pytest.mark.parametrize("k", [19, K_SMALL])
@pytest.mark.parametrize("rule_key", list(RULES))
def test_streaming_matches_sklearn(rule_key, seed, k, weighted):
    rule = rule_of(rule_key)
    y, logits, w = make_data(seed, N, k)
    w = w if weighted else None
    got = stream(all_metrics(rule), y, logits, w)
    assert_matches(got, reference_for(rule, y, logits, w))


@pytest.mark.parametrize("k, weighted", [(19, True), (K_SMALL, False)], ids=["k19-w", "k4-unw"])
@pytest.mark.parametrize("rule_key", list(RULES))
def test_tied_scores_match_sklearn(rule_key, k, weighted):
    # logits on a 0.5 grid: many ties within samples (ranking metrics) and within
    # classes (average precision, one threshold per distinct score).
    rule = rule_of(rule_key)
    y, logits, w = make_data(10 + k, N, k, ties=True)
    w = w if weighted else None
    assert len(np.unique(logits[:, 0])) < N // 4  # really tied
    got = stream(all_metrics(rule), y, logits, w)
    assert_matches(got, reference_for(rule, y, logits, w))


def test_all_equal_scores():
    # Every score tied: AP is the (weighted) prevalence, ranking loss 1 for ranked samples.
    rule = rule_of("logit0")
    y, _, w = make_data(3, N, K_SMALL)
    logits = np.zeros_like(y)
    got = stream(all_metrics(rule), y, logits, w)
    assert_matches(got, reference_for(rule, y, logits, w))


@pytest.mark.parametrize("rule_key", ["sigmoid0.5", "logit0.7", "sparsemax"])
@pytest.mark.parametrize(
    "row",
    [[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]],
    ids=["mixed", "no-true", "all-true", "one-true"],
)
def test_single_sample_single_batch(rule_key, row):
    rule = rule_of(rule_key)
    y = np.array([row], dtype="float32")
    logits = np.array([[2.0, -1.0, 0.5, -3.0]], dtype="float32")
    got = stream(all_metrics(rule), y, logits, batches=(1,))
    assert_matches(got, reference_for(rule, y, logits))
    got_w = stream(all_metrics(rule), y, logits, np.array([2.5], "float32"), batches=(1,))
    assert_matches(got_w, reference_for(rule, y, logits, np.array([2.5])))


def test_sample_with_no_predicted_label_and_class_without_positives():
    # Hand-checked small case under sigmoid >= 0.5 (logit >= 0); class 1 has no positives.
    y = np.array(
        [[1, 0, 0, 0], [0, 0, 1, 0], [1, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 1]],
        dtype="float32",
    )
    logits = np.array(
        [[3, 1, -2, -1], [-1, -2, -3, -1], [2, -1, 1, -2], [-1, -1, -1, -1],
         [0.5, -1, -1, 2], [-2, -3, -1, -0.5]],
        dtype="float32",
    )
    got = stream(all_metrics("sigmoid"), y, logits, batches=(1,) * 6)
    # predictions: {0, 1}, {}, {0, 2}, {}, {0, 3}, {}
    assert got["precision_samples"] == pytest.approx((0.5 + 0 + 1 + 0 + 0.5 + 0) / 6, abs=ATOL)
    assert got["recall_samples"] == pytest.approx((1 + 0 + 2 / 3 + 0 + 1 + 0) / 6, abs=ATOL)
    np.testing.assert_allclose(got["precision_none"], [2 / 3, 0, 1, 1], atol=ATOL)
    np.testing.assert_allclose(got["recall_none"], [2 / 3, 0, 1 / 2, 1 / 3], atol=ATOL)
    assert got["precision_micro"] == pytest.approx(4 / 6, abs=ATOL)
    assert got["recall_micro"] == pytest.approx(4 / 8, abs=ATOL)
    assert got["hamming_loss"] == pytest.approx(6 / 24, abs=ATOL)
    assert got["map_none"][1] == 0.0  # class without positives
    assert_matches(got, reference_for(rule_of("sigmoid0.5"), y, logits))


def test_batching_does_not_matter():
    # Same data, other batch boundaries (sizes reversed): identical results up to rounding.
    rule = rule_of("sigmoid0.3")
    y, logits, w = make_data(7, N, 19)
    forward = stream(all_metrics(rule), y, logits, w)
    backward = stream(all_metrics(rule), y, logits, w, batches=BATCHES[::-1])
    assert_matches(backward, forward)


# --------------------------------------------------------------------------- average="none"


@pytest.mark.parametrize("k", [19, K_SMALL])
def test_average_none_is_per_class_vector(k):
    rule = rule_of("logit0")
    y, logits, w = make_data(4, N, k)
    ms = {key: m for key, m in all_metrics(rule).items() if key.endswith("_none")}
    got = stream(ms, y, logits, w)
    ref = reference_for(rule, y, logits, w)
    for key, value in got.items():
        assert value.shape == (k,), key
        np.testing.assert_allclose(value, ref[key], atol=ATOL, rtol=0, err_msg=key)
    assert ms["precision_none"].name == "precision_none"


@pytest.mark.parametrize("cls", [metrics.Precision, metrics.Recall, metrics.F1])
def test_average_none_accepts_python_none(cls):
    y, logits, _ = make_data(5, 64, K_SMALL)
    m = cls(average=None)
    assert m.average == "none"
    m.update_state(y, logits)
    ref = SCORES[m._score][1](
        y.astype(int), keras.ops.convert_to_numpy(decision.get("sigmoid")(logits)).astype(int),
        average=None, zero_division=0,
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(m.result()), ref, atol=ATOL)


# --------------------------------------------------------------------------- state


@pytest.mark.parametrize("average", ["micro", "macro", "none"])
def test_average_precision_overflow_is_nan(average):
    rule = rule_of("sigmoid0.5")
    y, logits, _ = make_data(6, N, K_SMALL)

    def ap_value():
        return keras.ops.convert_to_numpy(m.result())

    def sklearn_ap(sl):
        return reference_for(rule, y[sl], logits[sl])[f"map_{average}"]

    m = metrics.AveragePrecision(average=average, max_samples=74)
    m.update_state(y[:37], logits[:37])
    np.testing.assert_allclose(ap_value(), sklearn_ap(slice(0, 37)), atol=ATOL, rtol=0)
    m.update_state(y[37:74], logits[37:74])  # exactly max_samples: still exact
    np.testing.assert_allclose(ap_value(), sklearn_ap(slice(0, 74)), atol=ATOL, rtol=0)
    m.update_state(y[74:75], logits[74:75])  # 75 > 74
    assert np.all(np.isnan(ap_value()))
    m.update_state(y[75:112], logits[75:112])  # stays NaN
    assert np.all(np.isnan(ap_value()))
    # reset clears the overflow
    m.reset_state()
    m.update_state(y[112:176], logits[112:176])
    np.testing.assert_allclose(ap_value(), sklearn_ap(slice(112, 176)), atol=ATOL, rtol=0)
    m.update_state(y[150:187], logits[150:187])  # 101 > 74 within one batch
    assert np.all(np.isnan(ap_value()))
    m.reset_state()
    m.update_state(y[187:188], logits[187:188])
    np.testing.assert_allclose(ap_value(), sklearn_ap(slice(187, 188)), atol=ATOL, rtol=0)


@pytest.mark.parametrize("rule_key", ["sigmoid0.3", "sparsemax"])
def test_reset_state_resets_every_metric(rule_key):
    rule = rule_of(rule_key)
    y_a, logits_a, w_a = make_data(20, N, 19)
    y_b, logits_b, w_b = make_data(21, 75, 19)
    ms = all_metrics(rule)  # AveragePrecision holds 256 samples
    stream(ms, y_a, logits_a, w_a)
    stream(ms, y_b, logits_b, w_b, batches=(37, 1, 37))  # 279 samples: AP overflows
    assert np.isnan(keras.ops.convert_to_numpy(ms["map_macro"].result()))
    for key, m in ms.items():
        m.reset_state()
        for v in m.variables:
            assert not np.any(keras.ops.convert_to_numpy(v.value)), (key, v.name)
    got = stream(ms, y_b, logits_b, w_b, batches=(1, 37, 37))
    fresh = stream(all_metrics(rule), y_b, logits_b, w_b, batches=(1, 37, 37))
    assert_matches(got, fresh, atol=1e-7, rtol_coverage=1e-7)  # as good as new
    assert_matches(
        {k: v for k, v in got.items() if k != "map_micro"},  # float32 drift: see test_average_precision_weighted_large_n
        {k: v for k, v in reference_for(rule, y_b, logits_b, w_b).items() if k != "map_micro"},
    )


@pytest.mark.parametrize("average", ["micro", "macro"])
def test_average_precision_weighted_large_n(average):
    # 20,000 samples x 19 classes with real-valued sample weights: still within 1e-6 of
    # scikit-learn (the pooled micro average sums 380,000 weighted terms).
    rule = rule_of("sigmoid0.5")
    n = 20_000
    y, logits, w = make_data(1, n, 19)
    m = metrics.AveragePrecision(average=average, decision=rule, max_samples=n)
    m.update_state(y, logits, w)
    scores = keras.ops.convert_to_numpy(rule.scores(logits))
    want = average_precision_score(y, scores, average=average, sample_weight=w)
    assert float(keras.ops.convert_to_numpy(m.result())) == pytest.approx(want, abs=ATOL, rel=0)


def test_result_before_any_update():
    for key, m in all_metrics("sigmoid").items():
        value = keras.ops.convert_to_numpy(m.result())
        assert np.all(np.isfinite(value)), key


def test_sample_weight_column_shape_and_unit_weights():
    rule = rule_of("logit0")
    y, logits, w = make_data(8, N, K_SMALL)
    col = stream(all_metrics(rule), y, logits, w[:, None])
    assert_matches(col, reference_for(rule, y, logits, w))
    ones = stream(all_metrics(rule), y, logits, np.ones_like(w))
    assert_matches(ones, reference_for(rule, y, logits))


def test_weights_scale_invariance():
    rule = rule_of("sigmoid0.5")
    y, logits, w = make_data(9, N, 19)
    a = stream(all_metrics(rule), y, logits, w)
    b = stream(all_metrics(rule), y, logits, 4.0 * w)
    assert_matches(b, a)


# --------------------------------------------------------------------------- in model.compile


def _tiny_model(d, k):
    model = keras.Sequential([keras.Input((d,)), keras.layers.Dense(k)])
    return model


def _compiled_metric_list(loss):
    return metrics.standard(loss.decision) + [
        metrics.AveragePrecision(max_samples=256),  # the data has 61 samples; compiled, every row is sorted each step
        metrics.HammingLoss(decision=loss.decision),
    ]


def _model_data(n=61, d=8, k=6):
    rng = np.random.default_rng(123)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (rng.random((n, k)) < 0.4).astype("float32")
    y[:, 2] = 0.0  # a class without positives
    y[4] = 0.0
    y[6] = 1.0
    return x, y


def _expected_logs(rule, y, logits, w=None, keys=None):
    ref = reference_for(rule, y, logits, w)
    keys = keys or [f"{s}_{a}" for s in SCORES for a in ("micro", "macro", "samples")] + [
        "map_macro",
        "hamming_loss",
    ]
    return {key: ref[key] for key in keys}


@pytest.mark.graph
def test_compiled_model_evaluate_matches_sklearn(tmp_path):
    keras.utils.set_random_seed(1)
    x, y = _model_data()
    loss = losses.get("bce")
    assert loss.decision == decision.get("sigmoid", threshold=0.5)
    model = _tiny_model(x.shape[1], y.shape[1])
    model.compile(optimizer="sgd", loss=loss, metrics=_compiled_metric_list(loss))
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert "f1_samples" in history.history
    logs = model.evaluate(x, y, batch_size=7, return_dict=True, verbose=0)
    logits = model.predict(x, batch_size=7, verbose=0)
    expected = _expected_logs(loss.decision, y, logits)
    missing = sorted(set(expected) - set(logs))
    assert not missing, f"missing from evaluate logs: {missing} (got {sorted(logs)})"
    assert_matches(logs, expected, atol=1e-5, rtol_coverage=1e-5)

    # the model, compiled with these metrics, saves and reloads
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, batch_size=7, verbose=0), logits, atol=1e-6)
    loaded_logs = loaded.evaluate(x, y, batch_size=7, return_dict=True, verbose=0)
    assert_matches(loaded_logs, expected, atol=1e-5, rtol_coverage=1e-5)


@pytest.mark.graph
def test_compiled_model_weighted_metrics_other_rule_and_ranking_metrics():
    # evaluate only (no training); sample weights, a logit rule, every metric family
    keras.utils.set_random_seed(2)
    x, y = _model_data(n=45, k=5)
    w = np.random.default_rng(5).uniform(0.2, 2.0, size=len(x)).astype("float32")
    loss = losses.get("bce")
    rule = decision.get("logit", threshold=0.3)
    ms = [
        metrics.F1(average="samples", decision=rule),
        metrics.Precision(average="weighted", decision=rule),
        metrics.Recall(average="micro", decision=rule),
        metrics.HammingLoss(decision=rule),
        metrics.AveragePrecision(average="macro", decision=rule, max_samples=64),
        metrics.AveragePrecision(average="micro", decision=rule, max_samples=64),
        metrics.RankingLoss(decision=rule),
        metrics.CoverageError(decision=rule),
        metrics.LRAP(decision=rule),
    ]
    model = _tiny_model(x.shape[1], y.shape[1])
    # Keras passes sample_weight to `weighted_metrics` only (`metrics` stay unweighted).
    model.compile(optimizer="sgd", loss=loss, weighted_metrics=ms)
    logs = model.evaluate(x, y, sample_weight=w, batch_size=8, return_dict=True, verbose=0)
    logits = model.predict(x, batch_size=8, verbose=0)
    keys = ["f1_samples", "precision_weighted", "recall_micro", "hamming_loss", "map_macro",
            "map_micro", "ranking_loss", "coverage_error", "lrap"]
    expected = _expected_logs(rule, y, logits, w, keys)
    assert_matches(logs, expected, atol=1e-5, rtol_coverage=1e-5)


# --------------------------------------------------------------------------- serialization


SERIALIZABLE = [
    lambda: metrics.Precision(average="macro", decision=decision.get("sigmoid", threshold=0.3)),
    lambda: metrics.Recall(average="samples", decision="logit"),
    lambda: metrics.F1(average="none", decision=decision.get("logit", threshold=0.7)),
    lambda: metrics.F1(average="weighted", decision="sparsemax_support", name="my_f1"),
    lambda: metrics.HammingLoss(decision=decision.get("sigmoid", threshold=0.3)),
    lambda: metrics.RankingLoss(decision="sparsemax_support"),
    lambda: metrics.CoverageError(decision=decision.get("logit", threshold=0.7)),
    lambda: metrics.LRAP(decision="logit"),
    lambda: metrics.AveragePrecision(average="micro", decision="logit", max_samples=256),
    lambda: metrics.AveragePrecision(
        average="none", decision=decision.get("sigmoid", threshold=0.3), max_samples=256
    ),
    lambda: metrics.CF1(decision=decision.get("logit", threshold=0.7)),
    lambda: metrics.OF1(decision="sparsemax_support", name="my_of1"),
    lambda: metrics.PrecisionAtK(k=3, decision=decision.get("sigmoid", threshold=0.3)),
]


SERIALIZABLE_IDS = ["precision-macro", "recall-samples", "f1-none", "f1-weighted-named",
                    "hamming", "ranking-loss", "coverage", "lrap", "map-micro", "map-none", "cf1", "of1-named",
                    "precision-at-3"]


@pytest.mark.parametrize("make", SERIALIZABLE, ids=SERIALIZABLE_IDS)
def test_serialize_round_trip(make):
    m = make()
    config = keras.saving.serialize_keras_object(m)
    config = json.loads(json.dumps(config))  # JSON-safe
    back = keras.saving.deserialize_keras_object(config)
    assert type(back) is type(m)
    assert back.name == m.name
    assert back.decision == m.decision
    assert type(back.decision) is type(m.decision)
    assert getattr(back, "average", None) == getattr(m, "average", None)
    assert getattr(back, "max_samples", None) == getattr(m, "max_samples", None)
    assert getattr(back, "k", None) == getattr(m, "k", None)
    assert back.get_config() == m.get_config()
    # and it computes the same thing
    y, logits, w = make_data(30, 38, K_SMALL)
    for metric in (m, back):
        metric.update_state(y[:1], logits[:1], w[:1])
        metric.update_state(y[1:], logits[1:], w[1:])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(back.result()), keras.ops.convert_to_numpy(m.result()), atol=0
    )


def test_from_config_accepts_decision_name_and_config():
    cfg = metrics.F1(average="macro", decision=decision.get("logit", threshold=0.7)).get_config()
    assert metrics.F1.from_config(cfg).decision == decision.get("logit", threshold=0.7)
    assert metrics.F1.from_config({**cfg, "decision": "sparsemax_support"}).decision == (
        decision.get("sparsemax_support")
    )


def test_standard_uses_the_given_rule():
    rule = decision.get("logit", threshold=0.7)
    ms = metrics.standard(rule)
    assert len(ms) == 9
    assert {m.name for m in ms} == {
        f"{s}_{a}" for s in ("precision", "recall", "f1") for a in ("micro", "macro", "samples")
    }
    assert all(m.decision == rule for m in ms)
    assert all(m.decision == decision.get("sparsemax_support") for m in metrics.standard("sparsemax_support"))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("cls", [metrics.Precision, metrics.Recall, metrics.F1])
@pytest.mark.parametrize("average", ["mirco", "binary", "", "MACROS"])
def test_unknown_average_raises(cls, average):
    with pytest.raises(MlrsError, match="average"):
        cls(average=average)


@pytest.mark.parametrize("average", ["weighted", "samples", "macr", None])
def test_average_precision_unsupported_average_raises(average):
    if average is None:  # None means "none": allowed
        assert metrics.AveragePrecision(average=None).average == "none"
        return
    with pytest.raises(MlrsError):
        metrics.AveragePrecision(average=average)


@pytest.mark.parametrize("max_samples", [0, -5])
def test_average_precision_bad_max_samples_raises(max_samples):
    with pytest.raises(MlrsError):
        metrics.AveragePrecision(max_samples=max_samples)


def test_unknown_decision_rule_raises():
    with pytest.raises(MlrsError):
        metrics.F1(decision="sigmod")


@pytest.mark.parametrize("key", ["precision_micro", "f1_none", "hamming_loss", "ranking_loss",
                                 "coverage_error", "lrap", "map_macro", "map_micro"])
@pytest.mark.parametrize(
    "shapes",
    [((4, 5), (4, 6)), ((3, 5), (4, 5)), ((4,), (4, 5)), ((4, 5), (4,)), ((4, 5, 1), (4, 5, 1))],
    ids=["classes", "batch", "y-1d", "logits-1d", "3d"],
)
def test_mismatched_shapes_raise(key, shapes):
    m = all_metrics("sigmoid")[key]
    y_shape, logits_shape = shapes
    y = np.zeros(y_shape, "float32")
    logits = np.zeros(logits_shape, "float32")
    with pytest.raises(MlrsError):
        m.update_state(y, logits)


@pytest.mark.parametrize("key", ["precision_micro", "f1_none", "map_macro"])
def test_class_count_change_after_first_batch_raises(key):
    # Metrics with per-class state are sized by the first batch's number of classes; a
    # later batch with another number of classes is a shape mismatch, to be reported as
    # MlrsError (not a backend error from deep inside the update).
    m = all_metrics("sigmoid")[key]
    m.update_state(np.zeros((1, K_SMALL), "float32"), np.zeros((1, K_SMALL), "float32"))
    with pytest.raises(MlrsError):
        m.update_state(np.zeros((1, 19), "float32"), np.zeros((1, 19), "float32"))


def test_metrics_built_in_advance_equal_lazily_built_ones():
    y, logits, w = make_data(4, N, K_SMALL)
    built = metrics.standard("sigmoid", num_classes=K_SMALL)
    assert all(m.variables for m in built)  # their state exists before the first update
    lazy = metrics.standard("sigmoid")
    assert not any(m.variables for m in lazy)
    got = stream({m.name: m for m in built}, y, logits, w)
    assert_matches(got, stream({m.name: m for m in lazy}, y, logits, w), atol=0.0)
    with pytest.raises(MlrsError, match="has seen 4 classes, now got 19"):
        built[0].update_state(np.zeros((2, 19)), np.zeros((2, 19)))


# --------------------------------------------------------------------------- CF1, OF1, precision at k


def cv_reference(y, pred, w=None):
    """CF1 and OF1 from scikit-learn's macro and micro precision and recall."""
    y, pred = np.asarray(y).astype(int), np.asarray(pred).astype(int)
    kw = {"zero_division": 0, "sample_weight": w}
    out = {}
    for key, average in (("cf1", "macro"), ("of1", "micro")):
        p, r = precision_score(y, pred, average=average, **kw), recall_score(y, pred, average=average, **kw)
        out[key] = 0.0 if p + r == 0 else 2 * p * r / (p + r)
    return out


def precision_at_k_reference(y, scores, k, w=None):
    """Precision at k, ties shared: the mean over every order of the classes used to break
    ties (exact: each order is equally likely), or the one order of untied scores."""
    scores = np.asarray(scores, "float64")
    classes = scores.shape[1]
    untied = all(len(np.unique(row)) == classes for row in scores)
    orders = [range(classes)] if untied else itertools.permutations(range(classes))
    per_sample = []
    for order in orders:
        tie_break = np.broadcast_to(np.asarray(order), scores.shape)
        top = np.lexsort((tie_break, -scores), axis=1)[:, :k]  # by score, then by tie_break
        per_sample.append(np.take_along_axis(np.asarray(y, "float64"), top, axis=1).sum(axis=1) / k)
    return np.average(np.mean(per_sample, axis=0), weights=w)


def cv_metrics(rule, ks):
    out = {"cf1": metrics.CF1(decision=rule), "of1": metrics.OF1(decision=rule),
           "f1_micro": metrics.F1("micro", decision=rule), "f1_macro": metrics.F1("macro", decision=rule),
           "map_none": metrics.AveragePrecision("none", decision=rule, max_samples=256)}
    out.update({f"precision_at_{k}": metrics.PrecisionAtK(k, decision=rule) for k in ks})
    return out


def cv_expected(rule, y, logits, ks, w=None):
    pred = keras.ops.convert_to_numpy(rule(logits))
    scores = keras.ops.convert_to_numpy(rule.scores(logits))
    want = cv_reference(y, pred, w)
    want.update({f"precision_at_{k}": precision_at_k_reference(y, scores, k, w) for k in ks})
    want["map_none"] = average_precision_score(y, scores, average=None, sample_weight=w)
    return want


@pytest.mark.parametrize("k", [19, K_SMALL])
@pytest.mark.parametrize("rule_key", list(RULES))
def test_cf1_of1_and_precision_at_k_match_references(rule_key, k, rng):
    # random weighted data (a rare class, samples without true or predicted labels, all-true
    # rows planted); K=19 scores are untied, so each top k is one set of classes
    rule = rule_of(rule_key)
    y, logits, w = make_data(int(rng.integers(2**31)), N, k)
    ks = (1, 3, 5) if k == 19 else (1, 3, 4)
    got = stream(cv_metrics(rule, ks), y, logits, w)
    want = cv_expected(rule, y, logits, ks, w)
    assert_matches(got, want)
    assert got["of1"] == pytest.approx(got["f1_micro"], abs=ATOL)  # OF1 is micro F1
    assert got["cf1"] >= got["f1_macro"] - ATOL  # the harmonic mean of the means is at least the mean


@pytest.mark.parametrize("rule_key", ["sigmoid0.5", "logit0.7", "sparsemax"])
def test_precision_at_k_shares_tied_scores(rule_key):
    # logits on a 0.5 grid over 4 classes: many ties at the k-th score; the reference
    # averages over all 24 orders of the tied classes
    rule = rule_of(rule_key)
    y, logits, w = make_data(40, N, K_SMALL, ties=True)
    scores = keras.ops.convert_to_numpy(rule.scores(logits))
    assert sum(len(np.unique(row)) < K_SMALL for row in scores) > N // 4  # really tied
    got = stream(cv_metrics(rule, (1, 3, 4)), y, logits, w)
    assert_matches(got, cv_expected(rule, y, logits, (1, 3, 4), w) | {"map_none": got["map_none"]})
    # every score tied: the expected share of true labels among any k
    zeros = np.zeros_like(logits)
    got = stream({"p3": metrics.PrecisionAtK(3, decision=rule)}, y, zeros, w)
    assert got["p3"] == pytest.approx(np.average(y.sum(axis=1) / K_SMALL, weights=w), abs=ATOL)


def test_cv_scores_hand_checked_and_without_any_true_label():
    y = np.array([[1, 0, 1, 0], [1, 1, 0, 0]], "float32")
    logits = np.array([[2, -1, 1, -3], [-1, 3, -2, -1]], "float32")  # logit > 0: {0, 2}, {1}
    got = stream(cv_metrics("logit", (1, 2)), y, logits, batches=(1, 1))
    # per class (P, R): (1, 1/2), (1, 1), (1, 1), (0, 0): CP = 3/4, CR = 5/8; OP = 3/3, OR = 3/4
    assert got["cf1"] == pytest.approx(2 * 0.75 * 0.625 / 1.375, abs=ATOL)
    assert got["of1"] == pytest.approx(2 * 0.75 / 1.75, abs=ATOL)
    assert got["precision_at_1"] == pytest.approx(1.0, abs=ATOL)
    # second patch's top 2: class 1, then one of the tied classes 0 (true) and 3: half a hit
    assert got["precision_at_2"] == pytest.approx((1.0 + 0.75) / 2, abs=ATOL)
    # no true label anywhere: every precision and recall is 0 (zero_division=0), so is P@k
    none = np.zeros((4, K_SMALL), "float32")
    logits = np.array([[3, -1, 1, -2], [-1, -1, -1, -1], [2, 2, 2, 2], [0.5, -3, 0.2, 1]], "float32")
    got = stream(cv_metrics("logit", (1, 3)), none, logits, batches=(1, 1, 1, 1))
    assert {k: float(got[k]) for k in ("cf1", "of1", "precision_at_1", "precision_at_3")} == dict.fromkeys(
        ("cf1", "of1", "precision_at_1", "precision_at_3"), 0.0)
    assert cv_reference(none, logits > 0) == {"cf1": 0.0, "of1": 0.0}


def test_perfect_predictions_and_a_class_without_positives():
    # perfect label sets: OF1 is 1; CF1 is below 1 when a class has neither true nor
    # predicted labels (its precision and recall count as 0), like the macro F1
    y, _, _ = make_data(41, 64, K_SMALL)
    y[:, 1] = 0.0  # class 1: no positives
    logits = np.where(y > 0, 5.0, -5.0).astype("float32")
    got = stream(cv_metrics("logit", (1,)), y, logits, batches=(64,))
    assert got["of1"] == pytest.approx(1.0, abs=ATOL)
    assert got["cf1"] == pytest.approx(0.75, abs=ATOL)  # CP = CR = 3/4
    assert got["f1_macro"] == pytest.approx(0.75, abs=ATOL)
    assert got["map_none"][1] == 0.0 and np.allclose(np.delete(got["map_none"], 1), 1.0, atol=ATOL)


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3", None])
def test_precision_at_k_needs_a_whole_k(k):
    with pytest.raises(MlrsError, match="k"):
        metrics.PrecisionAtK(k)


def test_precision_at_k_larger_than_the_classes_raises():
    m = metrics.PrecisionAtK(5)
    with pytest.raises(MlrsError, match="k=5 is more than the 4 classes"):
        m.update_state(np.zeros((1, K_SMALL), "float32"), np.zeros((1, K_SMALL), "float32"))
    assert metrics.PrecisionAtK(4).name == "precision_at_4"


@pytest.mark.graph
def test_cv_scores_in_a_compiled_model():
    # traced (tf.function / jax.jit): the same values as eagerly, with sample weights
    keras.utils.set_random_seed(3)
    x, y = _model_data(n=45, k=5)
    w = np.random.default_rng(6).uniform(0.2, 2.0, size=len(x)).astype("float32")
    rule = decision.get("logit", threshold=0.2)
    model = _tiny_model(x.shape[1], y.shape[1])
    model.compile(optimizer="sgd", loss=losses.get("bce"), weighted_metrics=[
        metrics.CF1(decision=rule), metrics.OF1(decision=rule), metrics.PrecisionAtK(3, decision=rule)])
    logs = model.evaluate(x, y, sample_weight=w, batch_size=8, return_dict=True, verbose=0)
    want = cv_expected(rule, y, model.predict(x, batch_size=8, verbose=0), (3,), w)
    assert_matches(logs, {k: want[k] for k in ("cf1", "of1", "precision_at_3")}, atol=1e-5)
