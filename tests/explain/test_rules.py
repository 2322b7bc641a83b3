"""LRP rules against an independent float64 NumPy formulation of each rule on dense ReLU
networks, written with the explicit contributions ``z_ij = a_i w_ij``."""

import numpy as np
import pytest

from helpers import mlp
from keras_mlrs.explain import AlphaBeta, Composite, Epsilon, Flat, Gamma, WSquare, Z, ZPlus, lrp

pytestmark = pytest.mark.backends


def _np_rule(rule, a, W, b, R):
    """Relevance of the inputs ``a [n, in]`` of ``a @ W + b`` from ``R [n, out]``, written
    with the explicit contributions ``z_ij = a_i w_ij``."""

    def safe(d):
        return d + 1e-7 * (d == 0)

    if isinstance(rule, Flat | WSquare):
        w = np.ones_like(W) if isinstance(rule, Flat) else W**2
        share = w / safe(w.sum(axis=0))  # [in, out]
        return R @ share.T
    if isinstance(rule, Gamma):
        W, b = W + rule.gamma * np.maximum(W, 0), b + rule.gamma * np.maximum(b, 0)
        rule = Z(bias=rule.bias)
    z = a[:, :, None] * W[None]  # [n, in, out]
    if isinstance(rule, Z | Epsilon):
        d = z.sum(axis=1) + (b if rule.bias else 0)
        d = safe(d) if isinstance(rule, Z) else d + rule.epsilon * np.where(d >= 0, 1, -1)
        return np.einsum("nij,nj->ni", z, R / d)
    zp, zn = np.maximum(z, 0), np.minimum(z, 0)
    if not rule.bias:
        bp = bn = 0
    elif rule.full_bias:
        bp = bn = b
    else:
        bp, bn = np.maximum(b, 0), np.minimum(b, 0)
    act = np.einsum("nij,nj->ni", zp, R / safe(zp.sum(axis=1) + bp))
    inh = np.einsum("nij,nj->ni", zn, R / safe(zn.sum(axis=1) + bn))
    return rule.alpha * act - rule.beta * inh

def _np_lrp(weights, x, cls, rules):
    acts, logits = [x], None
    for i, (W, b) in enumerate(weights):
        z = acts[-1] @ W + b
        if i < len(weights) - 1:
            acts.append(np.maximum(z, 0))
        else:
            logits = z
    R = np.zeros_like(logits)
    R[:, cls] = logits[:, cls]
    for i in reversed(range(len(weights))):
        R = _np_rule(rules[i], acts[i], *weights[i], R)
    return R

RULES = {
    "z": Z(), "z-no-bias": Z(bias=False), "epsilon": Epsilon(0.05), "alpha2beta1": AlphaBeta(2, 1),
    "alpha1beta0-full-bias": AlphaBeta(1, 0, full_bias=True), "alpha2beta1-no-bias": AlphaBeta(2, 1, bias=False),
    "zplus": ZPlus(), "flat": Flat(), "wsquare": WSquare(), "gamma": Gamma(0.25), "gamma-no-bias": Gamma(1.0, bias=False),
}

@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(RULES))
def test_every_rule_equals_the_float64_numpy_formulation(name, seed):
    model = mlp(seed)
    weights = [tuple(np.asarray(w, "float64") for w in layer.get_weights()) for layer in model.layers[1:]]
    x = np.random.default_rng(seed).normal(size=(6, 10))
    x[0, :3] = 0.0  # zero inputs and, through ReLU, zero activations
    rule = RULES[name]
    got = lrp(model, x.astype("float32"), [1, 3], preset=Composite(dense=rule, conv=rule))
    for k, cls in enumerate([1, 3]):
        expected = _np_lrp(weights, x, cls, [rule] * 3)
        np.testing.assert_allclose(got[:, k], expected, rtol=2e-4, atol=2e-5 * np.abs(expected).max())

def test_a_composite_gives_the_first_layer_its_own_rule():
    model = mlp(3)
    weights = [tuple(np.asarray(w, "float64") for w in layer.get_weights()) for layer in model.layers[1:]]
    x = np.random.default_rng(3).normal(size=(4, 10))
    composite = Composite(dense=Epsilon(0.1), conv=Z(), first=Flat())
    got = lrp(model, x.astype("float32"), 2, preset=composite)
    expected = _np_lrp(weights, x, 2, [Flat(), Epsilon(0.1), Epsilon(0.1)])
    np.testing.assert_allclose(got[:, 0], expected, rtol=2e-4, atol=2e-5 * np.abs(expected).max())

def test_gamma_rule_spans_z_to_z_plus():
    model = mlp(4)
    x = np.abs(np.random.default_rng(4).normal(size=(3, 10))).astype("float32")
    gamma0 = lrp(model, x, 0, preset=Composite(dense=Gamma(0.0), conv=Gamma(0.0)))
    np.testing.assert_allclose(gamma0, lrp(model, x, 0, preset="lrp.z"), rtol=1e-5, atol=1e-7)
    large = lrp(model, x, 0, preset=Composite(dense=Gamma(1e5, bias=False), conv=Gamma(1e5, bias=False)))
    np.testing.assert_allclose(large, lrp(model, x, 0, preset="lrp.z_plus"), rtol=1e-3, atol=1e-5)
