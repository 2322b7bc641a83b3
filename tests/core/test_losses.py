"""Every loss against an independent float64 numpy formulation, written from the
definitions (not from the library's code): values, gradients (central finite differences
in float64), edge rows, extreme logits, mixed precision, training, serialization."""

import keras
import numpy as np
import pytest

from helpers import value_and_grad
from keras_mlrs.bigearthnet import TRAIN_CLASS_COUNTS
from keras_mlrs.core import losses, metrics
from keras_mlrs.errors import InvalidParameterError, MlrsError

pytestmark = pytest.mark.backends


def sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def simplex_projection(v):
    """Euclidean projection onto the simplex by bisection on τ (independent of sorting)."""
    lo, hi = v.max() - 1.0, v.max()
    for _ in range(200):
        tau = 0.5 * (lo + hi)
        if np.maximum(v - tau, 0).sum() > 1.0:
            lo = tau
        else:
            hi = tau
    tau = 0.5 * (lo + hi)
    return np.maximum(v - tau, 0.0), tau


def ref_per_sample(name, y, z, **hp):
    """Per-sample loss values in float64, straight from each loss's definition."""
    y = y.astype("float64")
    z = z.astype("float64")
    n, k = z.shape
    out = np.zeros(n)
    if name in ("bce", "weighted_bce"):
        w = hp.get("w", np.ones(k))
        p = sig(z)
        return np.mean(-w * (y * np.log(p) + (1 - y) * np.log(1 - p)), axis=1)
    if name == "focal":
        g, a = hp.get("gamma", 2.0), hp.get("alpha")
        p = sig(z)
        pt = np.where(y == 1, p, 1 - p)
        at = 1.0 if a is None else np.where(y == 1, a, 1 - a)
        return np.mean(-at * (1 - pt) ** g * np.log(pt), axis=1)
    if name == "hamming":
        p = sig(z)
        return np.mean(y * (1 - p) + (1 - y) * p, axis=1)
    if name == "huber":
        s = (2 * y - 1) * z
        return np.mean(np.where(s >= -1, np.maximum(0, 1 - s) ** 2, -4 * s), axis=1)
    if name == "ranking":  # the study's eq. 3.18, pair by pair; "mean" divides by the pairs
        m, reduction = hp.get("margin", 1.0), hp.get("pair_reduction", "sum")
        for i in range(n):
            total, count = 0.0, 0
            for u in range(k):
                if y[i, u] != 1:
                    continue
                for v in range(k):
                    if y[i, v] != 0:
                        continue
                    total += max(0.0, m + z[i, v] - z[i, u])
                    count += 1
            out[i] = total if reduction == "sum" else (total / count if count else 0.0)
        return out
    if name == "sparsemax":
        for i in range(n):
            q = y[i] / y[i].sum() if y[i].sum() else np.zeros(k)
            p, tau = simplex_projection(z[i])
            support = p > 0
            out[i] = -q @ z[i] + 0.5 * np.sum(z[i, support] ** 2 - tau**2) + 0.5 * q @ q
        return out
    if name == "asl":
        gp, gn, clip = hp.get("gamma_pos", 0.0), hp.get("gamma_neg", 4.0), hp.get("clip", 0.05)
        p = sig(z)
        pm = np.maximum(p - clip, 0)
        return np.mean(-(y * (1 - p) ** gp * np.log(p) + (1 - y) * pm**gn * np.log(1 - pm)), axis=1)
    if name == "lsep":
        for i in range(n):
            total = sum(np.exp(z[i, v] - z[i, u]) for u in range(k) if y[i, u] for v in range(k) if not y[i, v])
            out[i] = np.log1p(total)
        return out
    if name == "zlpr":
        neg = np.where(y == 0, np.exp(z), 0).sum(1)
        pos = np.where(y == 1, np.exp(-z), 0).sum(1)
        return np.log1p(neg) + np.log1p(pos)
    if name == "two_way":
        tp, tn = hp.get("tp", 4.0), hp.get("tn", 1.0)

        def relation(zz, yy):
            neg, pos = zz[yy == 0], zz[yy == 1]
            if len(neg) == 0 or len(pos) == 0:
                return 0.0
            a = tn * np.log(np.sum(np.exp(neg / tn))) + tp * np.log(np.sum(np.exp(-pos / tp)))
            return np.log1p(np.exp(a))

        rows = np.array([relation(z[i], y[i]) if y[i].any() else 0.0 for i in range(n)])
        cols = [relation(z[:, c], y[:, c]) for c in range(k) if y[:, c].any()]
        return rows + (np.mean(cols) if cols else 0.0)
    raise KeyError(name)


def ref_mean(name, y, z, **hp):
    return ref_per_sample(name, y, z, **hp).mean()


def numeric_grad(name, y, z, h=1e-6, **hp):
    z = z.astype("float64")
    g = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        g[idx] = (ref_mean(name, y, zp, **hp) - ref_mean(name, y, zm, **hp)) / (2 * h)
    return g


def make_batch(rng, n=6, k=7, scale=3.0):
    z = (rng.normal(size=(n, k)) * scale).astype("float32")
    y = (rng.random((n, k)) < 0.4).astype("float32")
    y[0] = 0.0  # a sample with no label
    y[1] = 1.0  # a sample with every label
    y[2, :] = 0.0
    y[2, 3] = 1.0  # one label
    # keep logits away from the kinks of the hinge-type losses, where finite differences lie
    for kink in (-1.0, 1.0, 0.0):
        close = np.abs(np.abs(z) - abs(kink)) < 1e-3
        z[close] += 0.01
    return y, z


CASES = [
    ("bce", {}),
    ("focal", {}),
    ("focal", {"gamma": 0.5, "alpha": 0.25}),
    ("hamming", {}),
    ("huber", {}),
    ("ranking", {}),
    ("ranking", {"margin": 0.3}),
    ("ranking", {"pair_reduction": "mean"}),
    ("ranking", {"margin": 0.3, "pair_reduction": "mean"}),
    ("sparsemax", {}),
    ("asl", {}),
    ("asl", {"gamma_pos": 1.0, "gamma_neg": 2.0, "clip": 0.0}),
    ("lsep", {}),
    ("zlpr", {}),
    ("two_way", {}),
    ("two_way", {"tp": 2.0, "tn": 0.5}),
]


def _ids(case):
    name, hp = case
    return name + ("-" + "-".join(f"{k}{v}" for k, v in hp.items()) if hp else "")


def _close(a, b, rtol=1e-5):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    scale = max(float(np.max(np.abs(b))), 1e-3)
    assert np.max(np.abs(a - b)) <= rtol * scale, (np.max(np.abs(a - b)), scale)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_value_and_gradient_match_float64_reference(case, rng):
    name, hp = case
    k = 7 if rng.integers(2) else 19
    y, z = make_batch(rng, k=k)
    loss = losses.get(name, **hp)
    value, grad = value_and_grad(lambda t: loss(y, t), z)
    ref_hp = dict(hp)
    _close(value, ref_mean(name, y, z, **ref_hp))
    expected_grad = numeric_grad(name, y, z, **ref_hp)
    _close(grad, expected_grad, rtol=2e-5 if name in ("two_way", "lsep", "zlpr") else 1e-5)


def ranking_gradient_by_pairs(y, z, margin, pair_reduction):
    """The gradient of the batch mean of eq. 3.18 (or of its per-pair mean) with respect to
    the logits, pair by pair: an active hinge ``margin + z_v - z_u > 0`` adds ``+1`` to
    ``z_v`` and ``-1`` to ``z_u``, scaled by ``1 / n_pairs`` for the mean and ``1 / batch``."""
    z = z.astype("float64")
    n, k = z.shape
    grad = np.zeros((n, k))
    for i in range(n):
        pairs = [(u, v) for u in range(k) if y[i, u] == 1 for v in range(k) if y[i, v] == 0]
        scale = 1.0 if pair_reduction == "sum" else 1.0 / max(len(pairs), 1)
        for u, v in pairs:
            if margin + z[i, v] - z[i, u] > 0:
                grad[i, v] += scale / n
                grad[i, u] -= scale / n
    return grad


def away_from_hinge_kinks(rng, y, z, margin):
    """Nudge logits until no (positive, negative) pair sits within 1e-3 of the hinge's kink,
    where finite differences and subgradients disagree."""
    z = z.astype("float64")
    for i in range(len(z)):
        for _ in range(100):
            gaps = [margin + z[i, v] - z[i, u] for u in np.flatnonzero(y[i] == 1) for v in np.flatnonzero(y[i] == 0)]
            if not gaps or min(abs(g) for g in gaps) > 1e-3:
                break
            z[i] += rng.normal(size=z.shape[1]) * 0.01
    return z.astype("float32")


@pytest.mark.parametrize("pair_reduction", ["sum", "mean"])
@pytest.mark.parametrize("k", [7, 19])
def test_ranking_pair_reductions_match_eq_3_18_pair_by_pair(pair_reduction, k, rng):
    """Eq. 3.18 (sum over pairs, the default) and its per-pair mean: per-sample values, the
    batch value and the gradient against float64 references written pair by pair, with
    samples without a positive, without a negative (every label positive) and with one label."""
    margin = float(rng.choice([1.0, 0.5]))
    y, z = make_batch(rng, n=8, k=k)
    y[3] = 0.0
    y[3, :-1] = 1.0  # every label but one
    z = away_from_hinge_kinks(rng, y, z, margin)
    hp = {"margin": margin, "pair_reduction": pair_reduction}
    loss = losses.get("ranking", **hp)
    per_sample = ref_per_sample("ranking", y, z, **hp)
    _close(np.asarray(loss.__class__(reduction="none", **hp)(y, z)), per_sample)
    _close(np.asarray(losses.ranking(y, z, **hp)), per_sample)
    value, grad = value_and_grad(lambda t: loss(y, t), z)
    _close(value, per_sample.mean())
    by_pairs = ranking_gradient_by_pairs(y, z, **hp)
    _close(grad, by_pairs)
    _close(grad, numeric_grad("ranking", y, z, **hp))
    # rows 0 (no label) and 1 (every label) have no pair: value 0 and no gradient, exactly
    assert per_sample[0] == per_sample[1] == 0.0
    assert np.all(np.asarray(loss.__class__(reduction="none", **hp)(y, z))[:2] == 0.0)
    assert np.all(grad[:2] == 0.0)
    # the mean is the sum divided by each sample's number of positive x negative pairs
    n_pairs = y.sum(1) * (k - y.sum(1))
    summed = ref_per_sample("ranking", y, z, margin=margin, pair_reduction="sum")
    mean = ref_per_sample("ranking", y, z, margin=margin, pair_reduction="mean")
    np.testing.assert_allclose(mean * n_pairs, summed, rtol=1e-12)


def test_ranking_default_is_the_sum_of_eq_3_18():
    assert losses.spec("ranking").hyperparameters == {"margin": 1.0, "pair_reduction": "sum"}
    y = np.array([[1, 0, 0, 1], [1, 0, 0, 0]], "float32")
    z = np.array([[0.0, 0.5, -1.0, 2.0], [0.0, 0.5, 0.0, -3.0]], "float32")
    # row 0: only (u=0, v=1) is active, 1.5; row 1: 1.5 + 1.0 + 0 over 3 pairs
    np.testing.assert_allclose(np.asarray(losses.get("ranking", reduction="none")(y, z)), [1.5, 2.5], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(losses.ranking(y, z)), [1.5, 2.5], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(losses.get("ranking", pair_reduction="mean", reduction="none")(y, z)),
                               [1.5 / 4, 2.5 / 3], rtol=1e-6)


@pytest.mark.parametrize("pair_reduction", ["sum", "mean"])
def test_ranking_without_pairs_is_zero_with_zero_gradient(pair_reduction):
    """Batches whose samples all lack a pair: every label positive, none, or a mix."""
    z = np.random.default_rng(7).normal(size=(4, 19)).astype("float32") * 3
    loss = losses.get("ranking", pair_reduction=pair_reduction)
    for y in (np.ones((4, 19), "float32"), np.zeros((4, 19), "float32"),
              np.array([[1] * 19, [0] * 19] * 2, "float32")):
        value, grad = value_and_grad(lambda t, y=y: loss(y, t), z)
        assert float(value) == 0.0 and np.all(grad == 0.0), (value, grad)
    big = np.where(np.arange(19) % 2, 1e4, -1e4)[None].repeat(4, 0).astype("float32")
    value, grad = value_and_grad(lambda t: loss(np.ones((4, 19), "float32"), t), big)
    assert float(value) == 0.0 and np.all(grad == 0.0)


@pytest.mark.parametrize("pair_reduction", ["sum", "mean"])
def test_ranking_config_round_trip_keeps_pair_reduction(pair_reduction):
    loss = losses.get("ranking", margin=0.5, pair_reduction=pair_reduction)
    config = loss.get_config()
    assert config["pair_reduction"] == pair_reduction and config["margin"] == 0.5
    again = losses.Ranking.from_config(config)
    assert again.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(revived) is losses.Ranking and revived.get_config() == config
    assert losses.get({"name": "ranking", "pair_reduction": pair_reduction}).get_config()["pair_reduction"] == pair_reduction
    y, z = make_batch(np.random.default_rng(0), k=19)
    np.testing.assert_allclose(float(revived(y, z)), float(loss(y, z)), rtol=1e-7)
    # a config saved before pair_reduction existed gets the default, eq. 3.18
    assert losses.Ranking.from_config({"name": "ranking", "margin": 1.0}).get_config()["pair_reduction"] == "sum"


def test_ranking_bad_pair_reduction_is_a_one_line_invalid_parameter_error():
    y, z = np.zeros((2, 5), "float32"), np.zeros((2, 5), "float32")
    attempts = [lambda: losses.get("ranking", pair_reduction="avg"), lambda: losses.Ranking(pair_reduction="max"),
                lambda: losses.ranking(y, z, pair_reduction="avg"), lambda: losses.get("ranking", pair_reduction=1)]
    for attempt in attempts:
        with pytest.raises(InvalidParameterError, match=r"unknown pair_reduction '.*'; choose one of: sum, mean") as err:
            attempt()
        assert "\n" not in str(err.value)
    with pytest.raises(InvalidParameterError, match="Did you mean 'mean'"):
        losses.get("ranking", pair_reduction="meen")
    assert losses.get("ranking", pair_reduction=" Mean ").get_config()["pair_reduction"] == "mean"
    with pytest.raises(InvalidParameterError, match="no hyperparameter 'pair_reductions'.*Did you mean 'pair_reduction'"):
        losses.get("ranking", pair_reductions="sum")


def test_weighted_bce_uses_inverse_frequency_of_the_bigearthnet_counts(rng):
    y, z = make_batch(rng, k=19)
    counts = np.asarray(TRAIN_CLASS_COUNTS, "float64")
    w = (1 / counts) / np.mean(1 / counts)
    value, grad = value_and_grad(lambda t: losses.get("weighted_bce")(y, t), z)
    _close(value, ref_mean("weighted_bce", y, z, w=w))
    _close(grad, numeric_grad("weighted_bce", y, z, w=w))
    np.testing.assert_allclose(losses.inverse_frequency_weights(counts), w, rtol=1e-12)
    beta = 0.999
    cb = (1 - beta) / (1 - beta**counts)
    np.testing.assert_allclose(losses.class_balanced_weights(counts, beta), cb / cb.mean(), rtol=1e-10)
    for name in ("bce", "focal"):
        weighted = losses.get(name, class_weights="class_balanced", beta=beta)
        hp = {"gamma": 2.0} if name == "focal" else {}
        per_class = ref_per_sample_classwise(name, y, z, **hp)
        np.testing.assert_allclose(float(weighted(y, z)), np.mean(per_class * (cb / cb.mean())), rtol=1e-5)


def ref_per_sample_classwise(name, y, z, gamma=2.0):
    p = sig(z.astype("float64"))
    if name == "bce":
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))
    pt = np.where(y == 1, p, 1 - p)
    return -((1 - pt) ** gamma) * np.log(pt)


def test_sparsemax_gradient_is_sparsemax_minus_q(rng):
    y, z = make_batch(rng, k=11)
    _, grad = value_and_grad(lambda t: losses.get("sparsemax", reduction="sum")(y, t), z)
    for i in range(len(z)):
        p, _ = simplex_projection(z[i].astype("float64"))
        q = y[i] / y[i].sum() if y[i].sum() else np.zeros_like(p)
        np.testing.assert_allclose(grad[i], p - q, atol=2e-6)


@pytest.mark.parametrize("name", losses.names())
def test_finite_at_extreme_logits(name):
    rng = np.random.default_rng(0)
    k = 19
    z = np.where(rng.random((4, k)) < 0.5, 1e4, -1e4).astype("float32")
    z[0] = 1e4
    z[1] = -1e4
    y = (rng.random((4, k)) < 0.5).astype("float32")
    y[2] = 0
    value, grad = value_and_grad(lambda t: losses.get(name)(y, t), z)
    assert np.isfinite(value) and np.all(np.isfinite(grad)), (value, grad)


@pytest.mark.parametrize("name", losses.names())
def test_float32_under_mixed_precision(name):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(19)])
        x = np.random.default_rng(1).normal(size=(16, 8)).astype("float32") * 50
        logits = model(x)
        assert keras.backend.standardize_dtype(logits.dtype) == "float16"
        y = (np.random.default_rng(2).random((16, 19)) < 0.3).astype("float32")
        value = losses.get(name)(y, logits)
        assert keras.backend.standardize_dtype(value.dtype) == "float32"
        assert np.isfinite(float(keras.ops.convert_to_numpy(value)))
        _, grad = value_and_grad(lambda t: losses.get(name)(y, t), keras.ops.convert_to_numpy(logits).astype("float16"))
        assert np.all(np.isfinite(np.asarray(grad, "float32")))
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", losses.names())
def test_training_reduces_each_loss(name):
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 12)).astype("float32")
    w = rng.normal(size=(12, 19))
    y = (x @ w + 0.3 * rng.normal(size=(256, 19)) > 1.0).astype("float32")
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(19)])
    loss = losses.get(name)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    before = model.evaluate(x, y, batch_size=256, verbose=0)
    model.fit(x, y, batch_size=64, epochs=10, verbose=0)  # 40 steps
    after = model.evaluate(x, y, batch_size=256, verbose=0)
    assert after < 0.9 * before, (before, after)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # never trained
@pytest.mark.parametrize("name", losses.names())
def test_compiled_model_round_trips_through_load_model(name, tmp_path):
    keras.utils.set_random_seed(0)
    loss = losses.get(name)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(19)])
    # eagerly: the round trip is the point, not tracing a graph of nine metrics twice per loss
    model.compile(optimizer="adam", loss=loss, metrics=metrics.standard(loss.decision), run_eagerly=True)
    x = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
    y = (np.random.default_rng(1).random((8, 19)) < 0.3).astype("float32")
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    assert again.run_eagerly
    assert type(again.loss) is type(loss)
    assert again.loss.get_config() == loss.get_config()
    after = again.evaluate(x, y, verbose=0, return_dict=True)
    for key, value in before.items():
        np.testing.assert_allclose(after[key], value, rtol=1e-5, atol=1e-6)


def test_reductions_and_sample_weight():
    rng = np.random.default_rng(5)
    y, z = make_batch(rng, k=19)
    sw = rng.random(len(z)).astype("float32")
    per = ref_per_sample("focal", y, z)
    np.testing.assert_allclose(np.asarray(losses.get("focal", reduction="none")(y, z)), per, rtol=1e-5)
    np.testing.assert_allclose(float(losses.get("focal", reduction="sum")(y, z)), per.sum(), rtol=1e-5)
    np.testing.assert_allclose(float(losses.get("focal")(y, z, sample_weight=sw)), np.mean(per * sw), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(losses.focal(y, z)), per, rtol=1e-5)


def test_registry_names_rules_and_errors():
    assert losses.names() == [
        "bce", "focal", "weighted_bce", "hamming", "huber", "ranking", "sparsemax",
        "asl", "lsep", "zlpr", "two_way",
    ]
    rules = {n: losses.get(n).decision.name for n in losses.names()}
    assert rules == {
        "bce": "sigmoid", "focal": "sigmoid", "weighted_bce": "sigmoid", "hamming": "sigmoid",
        "asl": "sigmoid", "huber": "logit", "ranking": "logit", "lsep": "logit", "zlpr": "logit",
        "two_way": "logit", "sparsemax": "sparsemax_support",
    }
    with pytest.raises(MlrsError, match="bce, focal, weighted_bce"):
        losses.get("nope")
    bad = [
        ("focal", {"gamma": -1}), ("focal", {"alpha": 1.5}), ("ranking", {"margin": 0}),
        ("ranking", {"pair_reduction": "avg"}), ("ranking", {"pair_reduction": None}),
        ("asl", {"clip": 1.0}), ("asl", {"clip": -0.1}), ("two_way", {"tp": 0}), ("two_way", {"tn": -1}),
        ("bce", {"beta": 1.0}), ("focal", {"gama": 2}), ("bce", {"class_weights": "tf-idf"}),
        ("bce", {"class_weights": [1, -1]}), ("weighted_bce", {"class_weights": None}),
    ]
    for name, hp in bad:
        with pytest.raises(MlrsError):
            losses.get(name, **hp)
    with pytest.raises(MlrsError, match="do not match"):
        losses.get("bce")(np.zeros((2, 19)), np.zeros((2, 18)))
    with pytest.raises(MlrsError, match="one weight per class"):
        losses.get("weighted_bce")(np.zeros((2, 5)), np.zeros((2, 5)))
