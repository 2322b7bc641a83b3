"""Sparsemax (op and layer) against an exact float64 Euclidean projection onto the simplex,
and the decision rules built on it."""

import keras
import numpy as np
import pytest

from helpers import value_and_grad
from keras_mlrs.core import decision, layers
from keras_mlrs.core import ops as mops
from keras_mlrs.errors import MlrsError

pytestmark = pytest.mark.backends


def project(v):
    """Exact projection onto the simplex: bisection on τ to machine precision, then τ solved
    in closed form on the support found (independent of the sort-based algorithm)."""
    v = np.asarray(v, "float64")
    lo, hi = v.max() - 1.0, v.max()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.maximum(v - mid, 0).sum() > 1 else (lo, mid)
    support = v > 0.5 * (lo + hi)
    tau = (v[support].sum() - 1.0) / support.sum()
    return np.maximum(v - tau, 0.0)


def with_support(rng, k, size):
    """A vector whose projection is a known point with exactly ``size`` nonzero entries:
    entries ``τ + p_j`` on the support, ``τ - gap`` (gap >= 1e-2) off it."""
    p = rng.dirichlet(np.ones(size)) * 0.98 + 0.02 / size
    tau = rng.normal() * rng.choice([0.1, 10.0, 1000.0])
    v = np.full(k, tau) - rng.uniform(1e-2, 3.0, size=k)
    idx = rng.permutation(k)[:size]
    v[idx] = tau + p
    return v


def assert_projection(got, x):
    """``got`` equals the exact projection of each row of ``x`` to float32 accuracy: 2e-6,
    plus the float32 resolution of the row's magnitude (|x| up to 1e4 is tested)."""
    x = np.asarray(x, "float64")
    want = np.stack([project(r) for r in x.reshape(-1, x.shape[-1])]).reshape(x.shape)
    tol = 2e-6 + 2e-7 * np.abs(x).max(axis=-1, keepdims=True)
    assert np.all(np.abs(np.asarray(got, "float64") - want) <= tol), np.max(np.abs(got - want))
    return want


def test_keras_issue_23425_example():
    out = np.asarray(mops.sparsemax(np.array([[0.5, 0.4, 0.1, -1.0]], "float32")))
    np.testing.assert_allclose(out, [[0.5, 0.4, 0.1, 0.0]], atol=1e-6)


@pytest.mark.parametrize("k", [2, 7, 19])
def test_every_support_size_matches_the_exact_projection(k, rng):
    rows = []
    for size in range(1, k + 1):
        for _ in range(3):
            v = with_support(rng, k, size)
            rows.append(v)
    x = np.stack(rows).astype("float32")
    got = np.asarray(mops.sparsemax(x))
    want = assert_projection(got, x)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-4)
    assert [int((g > 0).sum()) for g in got] == [int((w > 0).sum()) for w in want]


def test_ties_large_values_and_other_axes(rng):
    x = np.array(
        [[1.0, 1.0, 1.0, 1.0], [3.0, 3.0, -5.0, -5.0], [1e4, 1e4 - 0.5, -1e4, 0.0], [-1e4, -1e4, -1e4, -1e4 + 0.1]],
        "float32",
    )
    assert_projection(mops.sparsemax(x), x)
    cube = rng.normal(size=(3, 5, 4)).astype("float32") * 3
    got = np.asarray(mops.sparsemax(cube, axis=1))
    want = np.moveaxis(np.apply_along_axis(project, 1, cube.astype("float64")), 1, 1)
    np.testing.assert_allclose(got, want, atol=2e-6)
    tau = np.asarray(mops.sparsemax_threshold(cube, axis=1))
    assert tau.shape == (3, 1, 4)
    np.testing.assert_allclose(np.maximum(cube - tau, 0), want, atol=2e-6)


def test_gradient_is_the_sparsemax_jacobian(rng):
    x = np.stack([with_support(rng, 9, s) for s in (1, 3, 5, 9)]).astype("float32")
    g = rng.normal(size=x.shape).astype("float32")
    _, grad = value_and_grad(lambda t: keras.ops.sum(keras.ops.multiply(mops.sparsemax(t), g)), x)
    for i in range(len(x)):
        s = (project(x[i]) > 0).astype("float64")
        jac = np.diag(s) - np.outer(s, s) / s.sum()
        np.testing.assert_allclose(grad[i], jac @ g[i], atol=1e-5)


def test_half_precision_input_keeps_its_dtype():
    x = np.array([[0.5, 0.4, 0.1, -1.0]], "float16")
    out = mops.sparsemax(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    np.testing.assert_allclose(np.asarray(out, "float32"), [[0.5, 0.4, 0.1, 0.0]], atol=2e-3)


def test_layer_scale_and_serialization(tmp_path, rng):
    x = rng.normal(size=(6, 19)).astype("float32")
    layer = layers.Sparsemax(scale=2.5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), np.stack([project(2.5 * r) for r in x]), atol=2e-6)
    inputs = keras.Input((19,))
    model = keras.Model(inputs, layers.Sparsemax(scale=2.5)(keras.layers.Dense(19)(inputs)))
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6)
    assert again.layers[-1].get_config()["scale"] == 2.5
    with pytest.raises(MlrsError):
        layers.Sparsemax(scale=0)


def test_decision_rules(rng):
    z = rng.normal(size=(12, 19)).astype("float32") * 3
    sig = decision.get("sigmoid", threshold=0.3)
    np.testing.assert_array_equal(np.asarray(sig(z)), (1 / (1 + np.exp(-z)) >= 0.3).astype("float32"))
    logit = decision.get("logit", threshold=0.7)
    np.testing.assert_array_equal(np.asarray(logit(z)), (z > 0.7).astype("float32"))
    np.testing.assert_array_equal(np.asarray(logit(z)), (np.asarray(logit.scores(z)) > 0).astype("float32"))
    sm = decision.get("sparsemax_support")
    expected = np.stack([project(r) > 0 for r in z]).astype("float32")
    np.testing.assert_array_equal(np.asarray(sm(z)), expected)
    for rule in (sig, logit, sm, decision.get("sparsemax_support", scale=3.0)):
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(rule))
        assert again == rule
        assert decision.get(rule.get_config() | {"name": rule.name}) == rule
    with pytest.raises(MlrsError, match="sigmoid, logit, sparsemax_support"):
        decision.get("softmax")
    for name, params in (("sigmoid", {"threshold": 1.0}), ("sparsemax_support", {"scale": -1}),
                         ("logit", {"threshold": float("inf")}), ("logit", {"margin": 1})):
        with pytest.raises(MlrsError):
            decision.get(name, **params)
