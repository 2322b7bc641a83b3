"""LRP: the native engine against an independent float64 NumPy formulation (dense nets,
every rule) and against iNNvestigate 2.1.2 (K-Branch CNN and a residual CNN, every preset,
random weights, real sample patches); conservation; the BatchNorm canonizer; refusals."""

import hashlib

import keras
import numpy as np
import pytest

from keras_mlrs import data
from keras_mlrs.errors import InvalidParameterError
from keras_mlrs.explain import (
    LRP,
    AlphaBeta,
    Composite,
    Epsilon,
    Flat,
    Gamma,
    UnsupportedModelError,
    WSquare,
    Z,
    ZPlus,
    fold_batchnorm,
    lrp,
)
from keras_mlrs.explain.bridge import run_many
from keras_mlrs.models import kbranch_cnn

pytestmark = pytest.mark.backends

AGREEMENT_PRESETS = [
    "lrp.z", "lrp.epsilon", "lrp.alpha_1_beta_0", "lrp.alpha_2_beta_1", "lrp.z_plus",
    "lrp.sequential_preset_a", "lrp.sequential_preset_b", "lrp.sequential_preset_a_flat",
]
#: presets with an alpha-beta rule that counts the bias, where iNNvestigate puts the whole
#: bias into both denominators (our full_bias=True)
FULL_BIAS = {"lrp.alpha_1_beta_0", "lrp.alpha_2_beta_1", "lrp.sequential_preset_a", "lrp.sequential_preset_b",
             "lrp.sequential_preset_a_flat"}
CLASSES = [0, 11, 18]
#: presets where iNNvestigate's bias placement (the whole bias in both the activator's and
#: the inhibitor's denominator) is ill-conditioned: with beta > 0 the inhibitor's sum of
#: negative contributions plus a positive bias can pass through zero, and iNNvestigate does
#: not stabilise it. In float32 the two engines then differ where a denominator nearly
#: cancels (measured on 8 patches: within 1e-4 on 5, 1e-4 to 9e-4 on 2, 1.4e-2 on one), so
#: they are compared in float64, where every heatmap agrees to about 1e-12.
ILL_CONDITIONED = {"lrp.alpha_2_beta_1", "lrp.sequential_preset_b"}
#: compared in float64: the ill-conditioned presets, and lrp.epsilon as a control
FLOAT64_PRESETS = ["lrp.epsilon", *sorted(ILL_CONDITIONED)]


def relative_difference(a, b) -> float:
    """Max-abs difference over the heatmap, normalised by its max-abs."""
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))


# -- an independent reference: LRP of a ReLU MLP in float64 NumPy -------------------------------
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


def _mlp(seed, sizes=(10, 16, 12, 5)):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((sizes[0],))
    x = inputs
    for units in sizes[1:-1]:
        x = keras.layers.Dense(units, activation="relu", bias_initializer="random_normal")(x)
    model = keras.Model(inputs, keras.layers.Dense(sizes[-1], bias_initializer="random_normal")(x))
    return model


RULES = {
    "z": Z(), "z-no-bias": Z(bias=False), "epsilon": Epsilon(0.05), "alpha2beta1": AlphaBeta(2, 1),
    "alpha1beta0-full-bias": AlphaBeta(1, 0, full_bias=True), "alpha2beta1-no-bias": AlphaBeta(2, 1, bias=False),
    "zplus": ZPlus(), "flat": Flat(), "wsquare": WSquare(), "gamma": Gamma(0.25), "gamma-no-bias": Gamma(1.0, bias=False),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(RULES))
def test_every_rule_equals_the_float64_numpy_formulation(name, seed):
    model = _mlp(seed)
    weights = [tuple(np.asarray(w, "float64") for w in layer.get_weights()) for layer in model.layers[1:]]
    x = np.random.default_rng(seed).normal(size=(6, 10))
    x[0, :3] = 0.0  # zero inputs and, through ReLU, zero activations
    rule = RULES[name]
    got = lrp(model, x.astype("float32"), [1, 3], preset=Composite(dense=rule, conv=rule))
    for k, cls in enumerate([1, 3]):
        expected = _np_lrp(weights, x, cls, [rule] * 3)
        np.testing.assert_allclose(got[:, k], expected, rtol=2e-4, atol=2e-5 * np.abs(expected).max())


def test_a_composite_gives_the_first_layer_its_own_rule():
    model = _mlp(3)
    weights = [tuple(np.asarray(w, "float64") for w in layer.get_weights()) for layer in model.layers[1:]]
    x = np.random.default_rng(3).normal(size=(4, 10))
    composite = Composite(dense=Epsilon(0.1), conv=Z(), first=Flat())
    got = lrp(model, x.astype("float32"), 2, preset=composite)
    expected = _np_lrp(weights, x, 2, [Flat(), Epsilon(0.1), Epsilon(0.1)])
    np.testing.assert_allclose(got[:, 0], expected, rtol=2e-4, atol=2e-5 * np.abs(expected).max())


def test_gamma_rule_spans_z_to_z_plus():
    model = _mlp(4)
    x = np.abs(np.random.default_rng(4).normal(size=(3, 10))).astype("float32")
    gamma0 = lrp(model, x, 0, preset=Composite(dense=Gamma(0.0), conv=Gamma(0.0)))
    np.testing.assert_allclose(gamma0, lrp(model, x, 0, preset="lrp.z"), rtol=1e-5, atol=1e-7)
    large = lrp(model, x, 0, preset=Composite(dense=Gamma(1e5, bias=False), conv=Gamma(1e5, bias=False)))
    np.testing.assert_allclose(large, lrp(model, x, 0, preset="lrp.z_plus"), rtol=1e-3, atol=1e-5)


# -- K-Branch models ------------------------------------------------------------------------------
def numpy_weights(model, seed):
    """``model`` with He-normal kernels and small random biases drawn by NumPy, so the
    weights (and the cached iNNvestigate results) are the same under every backend."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            kernel = layer.kernel
            fan_in = int(np.prod(kernel.shape[:-1]))
            values = [rng.normal(0, np.sqrt(2 / fan_in), kernel.shape)]
            if layer.bias is not None:
                values.append(rng.normal(0, 0.05, layer.bias.shape))
            layer.set_weights([v.astype("float32") for v in values])
    return model


def small_kbranch(seed, zero_bias=False):
    """A narrow K-Branch CNN with random weights and random batch-normalisation statistics
    (so folding them matters); ``zero_bias``: every bias, folded ones included, is zero."""
    model = numpy_weights(kbranch_cnn(width=0.25, branch_units=16, fc_units=32), seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            mean = np.zeros(n) if zero_bias else rng.normal(0, 0.2, n)
            beta = np.zeros(n) if zero_bias else rng.normal(0, 0.2, n)
            layer.set_weights([rng.uniform(0.5, 1.5, n), beta, mean, rng.uniform(0.5, 2.0, n)])
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, np.zeros_like(bias) if zero_bias else rng.normal(0, 0.1, bias.shape)])
    return model


@pytest.fixture(scope="module")
def patches():
    """The 6 real sample patches and 2 of uniform random bands, as K-Branch inputs."""
    real = [data.read_patch(p) for p in sorted(data.sample_path().iterdir()) if p.is_dir()]
    rng = np.random.default_rng(0)
    out = {}
    for group, array in real[0].groups.items():
        random = rng.integers(0, 4000, (2, *array.shape)).astype("uint16")
        out[group] = np.concatenate([np.stack([p.groups[group] for p in real]), random])
    return out


def residual_net(seed):
    """A small stacked-layout CNN with a strided convolution, zero padding, overlapping
    max pooling, a residual Add, average pooling and global average pooling."""
    inputs = keras.Input((120, 120, 12), dtype="uint16", name="bands")
    from keras_mlrs.data.bands import STACKED_BANDS
    from keras_mlrs.layers import BandNormalization

    x = BandNormalization(STACKED_BANDS)(inputs)
    x = keras.layers.ZeroPadding2D(1)(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Conv2D(16, 2, padding="valid")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return numpy_weights(keras.Model(inputs, keras.layers.Dense(19)(x)), seed)


def _dtype(case) -> str:
    return "float64" if case[0].endswith("float64") else "float32"


@pytest.fixture(scope="module")
def innvestigate_reference(patches, request):
    """iNNvestigate's relevance for every agreement case, from one worker process. The
    results are cached on disk (pytest's cache), keyed by the weights and inputs, so the
    TensorFlow and JAX runs of the suite share one computation."""
    stacked = np.concatenate(
        [data.read_patch(p).stacked()[None] for p in sorted(data.sample_path().iterdir()) if p.is_dir()][:3]
    )
    # Flat areas of the real patches give exactly tied maxima in the residual net's
    # overlapping max pooling; which tied unit wins then hangs on the last bit of the
    # normalisation's rounding, which the two engines compute differently (measured: 7 %
    # of the heatmap's max at one tied window out of 11,637). 0-2 DN of noise breaks the ties.
    stacked = stacked + np.random.default_rng(0).integers(0, 3, stacked.shape).astype("uint16")
    kbranch = fold_batchnorm(small_kbranch(0))
    cases = {("kbranch", p): (kbranch, patches, p) for p in AGREEMENT_PRESETS if p not in ILL_CONDITIONED}
    for p in FLOAT64_PRESETS:
        cases[("kbranch-float64", p)] = (kbranch, patches, p)
    for p in sorted(FULL_BIAS):
        cases[("kbranch-zero-bias", p)] = (fold_batchnorm(small_kbranch(1, zero_bias=True)), patches, p)
    for p in ("lrp.epsilon", "lrp.alpha_2_beta_1"):
        cases[("residual", p)] = (residual_net(2), stacked, p)
    cache = request.config.cache.mkdir("keras-mlrs-innvestigate")
    results, missing = {}, []
    for key, (model, x, preset) in cases.items():
        digest = hashlib.sha256(preset.encode() + repr(CLASSES).encode() + _dtype(key).encode())
        for w in model.get_weights():
            digest.update(np.ascontiguousarray(w).tobytes())
        for a in keras.tree.flatten(x):
            digest.update(np.ascontiguousarray(a).tobytes())
        path = cache / f"{digest.hexdigest()[:32]}.npz"
        if path.exists():
            with np.load(path) as npz:
                results[key] = {k: npz[k] for k in npz.files}
        else:
            missing.append((key, path))
    if missing:
        with _float64_mode():  # the bridge normalises the bands in float64 for float64 cases
            computed = run_many([(cases[k][0], cases[k][1], CLASSES, cases[k][2], {"dtype": _dtype(k)})
                                 for k, _ in missing])
        for (key, path), (relevance, _) in zip(missing, computed):
            relevance = relevance if isinstance(relevance, dict) else {"bands": relevance}
            np.savez(path, **relevance)
            results[key] = relevance
    return {key: (cases[key][0], cases[key][1], results[key]) for key in cases}


@pytest.mark.parametrize("preset", [p for p in AGREEMENT_PRESETS if p not in ILL_CONDITIONED])
def test_native_engine_agrees_with_innvestigate_on_kbranch(preset, innvestigate_reference):
    """float32, every heatmap (patch x class x resolution group) within 1e-4 relative.
    Measured (TensorFlow): 3e-7 to 1e-5. A wrong rule differs by O(1) on every patch."""
    model, x, reference = innvestigate_reference[("kbranch", preset)]
    params = {"full_bias": True} if preset in FULL_BIAS else {}
    native = lrp(model, x, CLASSES, preset=preset, **params)
    for group in native:
        assert np.abs(reference[group]).max() > 0
        for i in range(len(native[group])):
            for c in range(len(CLASSES)):
                assert relative_difference(native[group][i, c], reference[group][i, c]) <= 1e-4, (group, i, c)


@pytest.mark.parametrize("preset", FLOAT64_PRESETS)
def test_in_float64_the_engines_agree_on_every_heatmap(preset, innvestigate_reference):
    """Both engines in float64 (weights and normalised bands alike): every heatmap agrees to
    1e-10, on the ill-conditioned presets too. So the engines compute the same function;
    their float32 differences there are rounding, amplified where a denominator nearly
    cancels. Measured (TensorFlow): at most 8.4e-13 (lrp.epsilon: 3e-14)."""
    model, x, reference = innvestigate_reference[("kbranch-float64", preset)]
    params = {"full_bias": True} if preset in FULL_BIAS else {}
    with _float64_mode():
        native = lrp(model, x, CLASSES, preset=preset, dtype="float64", **params)
    for group in native:
        assert native[group].dtype == np.float64 and reference[group].dtype == np.float64
        for i in range(len(native[group])):
            for c in range(len(CLASSES)):
                assert relative_difference(native[group][i, c], reference[group][i, c]) <= 1e-10, (group, i, c)


def _float64_mode():
    """JAX computes in float64 only in its 64-bit mode; TensorFlow always can."""
    import contextlib

    if keras.backend.backend() == "jax":
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def test_float64_on_jax_without_64_bit_mode_is_refused_in_one_line():
    model = _mlp(0)
    if keras.backend.backend() == "jax":
        with pytest.raises(InvalidParameterError, match="needs 64-bit mode; set JAX_ENABLE_X64=1"):
            LRP(model, dtype="float64")
        with pytest.raises(InvalidParameterError, match="needs 64-bit mode; set JAX_ENABLE_X64=1"):
            run_many([(model, np.ones((1, 10)), 0, "lrp.epsilon", {"dtype": "float64"})])
    else:
        assert LRP(model, dtype="float64")(np.ones((1, 10)), 0).dtype == np.float64
    with pytest.raises(InvalidParameterError, match="float32 or float64, not 'float16'"):
        LRP(model, dtype="float16")


@pytest.mark.parametrize("preset", sorted(FULL_BIAS))
def test_alpha_beta_bias_placements_agree_without_bias(preset, innvestigate_reference):
    model, x, reference = innvestigate_reference[("kbranch-zero-bias", preset)]
    native = lrp(model, x, CLASSES, preset=preset)  # bias on same-sign paths, the default
    for group in native:
        assert relative_difference(native[group], reference[group]) <= 1e-4, group


def test_the_bias_placement_matters_when_there_is_a_bias(innvestigate_reference):
    model, x, reference = innvestigate_reference[("kbranch-float64", "lrp.alpha_2_beta_1")]
    with _float64_mode():
        same_sign = lrp(model, x, CLASSES, preset="lrp.alpha_2_beta_1", dtype="float64")
    assert relative_difference(same_sign["b10m"], reference["b10m"]) > 1e-3


@pytest.mark.parametrize("preset", ["lrp.epsilon", "lrp.alpha_2_beta_1"])
def test_native_engine_agrees_with_innvestigate_on_a_residual_cnn(preset, innvestigate_reference):
    model, x, reference = innvestigate_reference[("residual", preset)]
    native = lrp(model, x, CLASSES, preset=preset, **({"full_bias": True} if preset in FULL_BIAS else {}))
    assert relative_difference(native, reference["bands"]) <= 1e-4


# -- properties -------------------------------------------------------------------------------------
def test_z_rule_without_bias_conserves_the_logit(patches):
    model = small_kbranch(5, zero_bias=True)
    relevance = lrp(model, patches, CLASSES, preset="lrp.z")
    total = sum(r.sum(axis=tuple(range(2, r.ndim))) for r in relevance.values())  # [batch, classes]
    logits = np.asarray(model.predict_on_batch(patches))[:, CLASSES]
    np.testing.assert_allclose(total, logits, rtol=1e-4, atol=1e-6)


def test_folding_batchnorm_changes_neither_outputs_nor_relevance(patches):
    model = small_kbranch(6)
    folded = fold_batchnorm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    np.testing.assert_allclose(folded.predict_on_batch(patches), model.predict_on_batch(patches), rtol=1e-4, atol=1e-4)
    a, b = lrp(model, patches, 4, preset="lrp.epsilon"), lrp(folded, patches, 4, preset="lrp.epsilon")
    for group in a:
        assert relative_difference(a[group], b[group]) <= 1e-4


def test_relevance_starts_from_the_logit_whatever_the_output_activation(patches):
    model = small_kbranch(7)
    x = model.get_layer("fusion_dropout").output
    sigmoid_dense = keras.layers.Dense(19, activation="sigmoid", name="sigmoid_logits")
    with_sigmoid = keras.Model(model.input, sigmoid_dense(x))
    sigmoid_dense.set_weights(model.get_layer("logits").get_weights())
    with_layer = keras.Model(model.input, keras.layers.Activation("sigmoid")(model.outputs[0]))
    expected = lrp(model, patches, [2, 3])
    for other in (with_sigmoid, with_layer):
        got = lrp(other, patches, [2, 3])
        for group in expected:
            np.testing.assert_allclose(got[group], expected[group], rtol=1e-5, atol=1e-9)


def test_classes_by_name_or_index_in_one_call_equal_separate_calls(patches):
    model = small_kbranch(8)
    analyzer = LRP(model, "lrp.alpha_2_beta_1")
    together = analyzer(patches, ["urban fabric", 7, "Marine waters"], batch_size=3)
    for k, cls in enumerate([0, 7, 18]):
        alone = analyzer(patches, cls)
        for group in together:
            assert together[group].shape == (8, 3, *patches[group].shape[1:])
            assert relative_difference(together[group][:, k], alone[group][:, 0]) <= 1e-5


def test_unsupported_models_and_inputs_are_refused_with_the_reason():
    inputs = keras.Input((8,))
    normed = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.LayerNormalization(name="ln")(inputs)))
    with pytest.raises(UnsupportedModelError, match="'ln' \\(LayerNormalization\\)"):
        LRP(normed)
    bn_first = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.BatchNormalization(name="bn0")(inputs)))
    with pytest.raises(UnsupportedModelError, match="'bn0' does not directly follow"):
        LRP(bn_first)
    shared = keras.layers.Dense(8, name="shared")
    twice = keras.Model(inputs, keras.layers.Dense(3)(shared(shared(inputs))))
    with pytest.raises(UnsupportedModelError, match="'shared' is called more than once"):
        LRP(twice)

    class Custom(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(UnsupportedModelError, match="subclassed"):
        LRP(Custom())
    model = _mlp(0)
    with pytest.raises(ValueError, match="19-class"):
        lrp(model, np.zeros((1, 10), "float32"), "urban fabric")
    with pytest.raises(ValueError, match="out of range"):
        lrp(model, np.zeros((1, 10), "float32"), 7)
    with pytest.raises(ValueError, match="shape \\(9,\\)"):
        lrp(model, np.zeros((2, 9), "float32"), 0)
    with pytest.raises(ValueError, match="unknown LRP preset 'lrp.epsilom'.*Did you mean 'lrp.epsilon'"):
        lrp(model, np.zeros((1, 10), "float32"), 0, preset="lrp.epsilom")
    with pytest.raises(ValueError, match="no parameter gamma"):
        lrp(model, np.zeros((1, 10), "float32"), 0, preset="lrp.epsilon", gamma=1.0)


@pytest.mark.parametrize("size, kernel", [((12, 12), (5, 5)), ((11, 13), (5, 6)), ((9, 10), (7, 5)), ((10, 10), (4, 4))])
def test_blocked_convolution_equals_the_direct_one(size, kernel):
    """The 2 x 2-block form of a first layer's backward convolution, odd and even sizes and
    kernels, against the direct convolution."""
    from keras_mlrs.explain.engine import _blocked_conv

    rng = np.random.default_rng(sum(size) + sum(kernel))
    x = rng.normal(size=(3, size[0] + kernel[0] - 1, size[1] + kernel[1] - 1, 6)).astype("float32")
    k = rng.normal(size=(*kernel, 6, 3)).astype("float32")
    direct = keras.ops.convert_to_numpy(keras.ops.conv(x, k, padding="valid"))
    blocked = keras.ops.convert_to_numpy(_blocked_conv(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(k), size))
    assert blocked.shape == direct.shape
    np.testing.assert_allclose(blocked, direct, rtol=1e-4, atol=1e-4 * np.abs(direct).max())
