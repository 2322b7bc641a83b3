"""Calibrated per-class thresholds: the rule predicts what its thresholds say (and, at the
fixed thresholds, exactly what the loss's own rule does), travels through Keras
serialization, refuses bad thresholds, and the fit is exact: each class's F1 optimum, and a
sample-F1 never below the fixed rule's on the data it was fitted on (scikit-learn's F1). The
numerics run under every backend; serialization, backend-free, under TensorFlow."""

import keras
import numpy as np
import pytest
from sklearn.metrics import f1_score

from keras_mlrs.core import decision, metrics
from keras_mlrs.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError

BASES = ("sigmoid", "logit", "sparsemax_support")


def logits_and_labels(rng, n=300, k=19):
    """Labels with per-class rates, logits that carry them noisily (some ties and some
    saturated sigmoid probabilities among them)."""
    y = (rng.random((n, k)) < rng.uniform(0.05, 0.5, k)).astype(np.float32)
    z = (rng.normal(size=(n, k)) * 2 + 2.5 * y - 1.5).astype(np.float32)
    z[:10] = np.round(z[:10])  # ties
    z[10:13, :3] = 40.0  # probability 1.0 in float32
    return z, y


def thresholded(rule, z):
    """What ``rule``'s thresholds say, in numpy, from its confidence."""
    t = np.asarray(rule.thresholds, np.float32)
    if rule.base.name == "sigmoid":
        return np.asarray(rule.confidence(z)) >= t
    return np.asarray(rule.values(z)) > t


@pytest.mark.backends
@pytest.mark.parametrize("base", BASES)
def test_at_the_fixed_thresholds_the_calibrated_rule_is_the_fixed_rule(base, rng):
    z, _ = logits_and_labels(rng)
    z[20:25] = 0.0  # exactly on the logit and sigmoid cuts
    fixed = decision.get(base)
    same = decision.Calibrated(base, [decision.fixed_threshold(fixed)] * z.shape[1])
    np.testing.assert_array_equal(np.asarray(same(z)), np.asarray(fixed(z)))
    np.testing.assert_array_equal(np.asarray(same.scores(z)), np.asarray(fixed.scores(z)))
    np.testing.assert_array_equal(np.asarray(same.confidence(z)), np.asarray(fixed.confidence(z)))
    assert same.confidence_name == fixed.confidence_name


@pytest.mark.backends
@pytest.mark.parametrize("base", BASES)
def test_labels_are_the_thresholded_confidence_and_scores_are_positive_exactly_there(base, rng):
    z, _ = logits_and_labels(rng)
    k = z.shape[1]
    t = {"sigmoid": rng.uniform(0.05, 0.95, k), "logit": rng.normal(size=k),
         "sparsemax_support": np.r_[0.0, rng.uniform(0, 0.3, k - 1)]}[base]
    rule = decision.Calibrated(base, t.tolist())
    labels, scores = np.asarray(rule(z)) > 0, np.asarray(rule.scores(z))
    np.testing.assert_array_equal(labels, thresholded(rule, z))
    np.testing.assert_array_equal(labels, scores >= 0 if base == "sigmoid" else scores > 0)
    if base == "sparsemax_support":  # a threshold of 0 is the support itself
        np.testing.assert_array_equal(labels[:, 0], np.asarray(decision.get(base)(z))[:, 0] > 0)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_the_rule_round_trips_through_configs_keras_serialization_and_a_saved_model(tmp_path):
    rule = decision.Calibrated(decision.SparsemaxSupport(scale=2.0), [0.0, 0.125] + [0.25] * 17)
    assert decision.get({"name": "calibrated", **rule.get_config()}) == rule
    assert decision.get("calibrated", **rule.get_config()) == rule
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(rule)) == rule
    assert hash(rule) == hash(decision.get({"name": "calibrated", **rule.get_config()}))
    assert rule.get_config()["base"] == {"name": "sparsemax_support", "scale": 2.0}
    assert "sparsemax(2·z)_c > t_c" in rule.describe() and "from 0 to 0.25" in rule.describe()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(19)])
    model.compile(loss="mse", metrics=[metrics.F1("samples", decision=rule)])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # its metrics apply the thresholds they were saved with
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)).astype(np.float32), (rng.random((16, 19)) < 0.3).astype(np.float32)
    logs = loaded.evaluate(x, y, return_dict=True, verbose=0)
    expected = f1_score(y, thresholded(rule, loaded.predict(x, verbose=0)), average="samples", zero_division=0)
    assert logs["f1_samples"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.backends
def test_bad_thresholds_are_refused():
    cases = [
        ({"thresholds": None}, "one threshold per class"),
        ({"thresholds": []}, "got none"),
        ({"thresholds": "0.5"}, "one threshold per class"),
        ({"thresholds": [0.5, float("nan")]}, "finite numbers"),
        ({"thresholds": [0.5, True]}, "finite numbers"),
        ({"thresholds": [0.5, 1.0]}, "probabilities in \\(0, 1\\)"),
        ({"thresholds": [0.0]}, "probabilities in \\(0, 1\\)"),
        ({"base": "sparsemax_support", "thresholds": [-0.1]}, "probabilities in \\[0, 1\\]"),
        ({"base": {"name": "calibrated", "thresholds": [0.5]}, "thresholds": [0.5]}, "not to 'calibrated'"),
    ]
    for params, message in cases:
        with pytest.raises(InvalidParameterError, match=message):
            decision.Calibrated(**params)
    with pytest.raises(UnknownNameError, match="Did you mean 'sigmoid'"):
        decision.Calibrated("sigmod", [0.5])
    with pytest.raises(ShapeMismatchError, match="holds 3 thresholds but the model outputs 19 logits"):
        decision.Calibrated("logit", [0.0] * 3)(np.zeros((2, 19), np.float32))


@pytest.mark.backends
@pytest.mark.parametrize("base", BASES)
def test_per_class_f1_is_each_class_exact_optimum(base, rng):
    """Every label set a threshold can give a class (all cuts between its sorted values) is
    tried by brute force: the fitted threshold's F1 is the best of them, and a class keeps the
    fixed threshold unless another one is strictly better."""
    z, y = logits_and_labels(rng, n=120)
    fixed = decision.get(base)
    rule = decision.fit_thresholds(fixed, z, y, "per-class-f1")
    values = np.asarray(rule.values(z))
    chosen, before = np.asarray(rule(z)), np.asarray(fixed(z))
    got = f1_score(y, chosen, average=None, zero_division=0)
    for c in range(z.shape[1]):
        cuts = np.unique(values[:, c])
        options = np.concatenate([values[None, :, c] > cuts[:, None], values[None, :, c] >= cuts[:1, None]])
        if base == "sparsemax_support":  # thresholds on a probability: nothing outside the support
            options &= values[None, :, c] > 0
        hits, total = (options & (y[None, :, c] > 0)).sum(1), options.sum(1) + y[:, c].sum()
        best = np.max(np.where(total > 0, 2 * hits / np.maximum(total, 1), 0.0))
        assert got[c] == pytest.approx(best, abs=1e-12), c
        if f1_score(y[:, c], before[:, c], zero_division=0) == pytest.approx(best, abs=1e-12):
            assert rule.thresholds[c] == decision.fixed_threshold(fixed)


@pytest.mark.backends
@pytest.mark.parametrize("base", BASES)
def test_sample_f1_is_never_below_the_fixed_rule_or_the_per_class_fit(base, rng):
    z, y = logits_and_labels(rng)
    fixed = decision.get(base)

    def samples(rule):
        return f1_score(y, np.asarray(rule(z)), average="samples", zero_division=0)

    fitted = decision.fit_thresholds(fixed, z, y, "sample-f1")
    per_class = decision.fit_thresholds(fixed, z, y, "per-class-f1")
    assert samples(fitted) >= samples(per_class) - 1e-12
    # these logits leave room to gain (less for sparsemax, whose thresholds can only narrow its support)
    assert samples(fitted) > samples(fixed) + (0.001 if base == "sparsemax_support" else 0.01)
    assert f1_score(y, np.asarray(per_class(z)), average="macro", zero_division=0) >= f1_score(
        y, np.asarray(fixed(z)), average="macro", zero_division=0)
    again = decision.fit_thresholds(fitted, z, y, "sample-f1")  # a calibrated rule refits from its base
    assert again == fitted


@pytest.mark.backends
def test_a_perfect_fixed_rule_is_kept_and_bad_fits_are_refused():
    y = np.eye(19, dtype=np.float32)[:4]
    z = np.where(y > 0, 3.0, -3.0).astype(np.float32)
    for objective in decision.OBJECTIVES:
        rule = decision.fit_thresholds("sigmoid", z, y, objective)
        assert rule.thresholds == (0.5,) * 19  # nothing beats it: nothing moves
    with pytest.raises(UnknownNameError, match="unknown calibration objective 'macro-f1'; choose one of: sample-f1"):
        decision.fit_thresholds("sigmoid", z, y, "macro-f1")
    with pytest.raises(ShapeMismatchError, match="one shape"):
        decision.fit_thresholds("sigmoid", z[:, :3], y, "sample-f1")
    with pytest.raises(ShapeMismatchError, match="at least one patch"):
        decision.fit_thresholds("sigmoid", z[:0], y[:0], "sample-f1")
