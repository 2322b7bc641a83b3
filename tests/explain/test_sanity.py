"""Sanity checks of explanations: conservation of the logit (exact for LRP-0 without biases,
the bias share otherwise, against hand-computed values), the model-parameter randomisation
test (a weight-dependent method passes, a weight-independent one is flagged, the caller's
model untouched, reproducible by seed), and its measures against independent references:
SSIM computed window by window and by hand, Spearman's rank correlation by counting."""

import json

import keras
import numpy as np
import pytest

from helpers import BACKEND, numpy_weights, small_kbranch
from keras_mlrs.errors import InvalidParameterError, MlrsError, ShapeMismatchError, UnknownNameError
from keras_mlrs.explain import lrp, sanity

pytestmark = pytest.mark.backends


def tiny_cnn(seed, bias=True, pool=True, batchnorm=False, size=16, classes=5, kernel_initializer="glorot_uniform"):
    """A small float-input ReLU CNN, weights drawn by NumPy (the same under every backend);
    ``bias=False``: no layer has a bias."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=bias and not batchnorm,
                            kernel_initializer=kernel_initializer, name="conv1")(inputs)
    if batchnorm:
        x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    if pool:
        x = keras.layers.AveragePooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", use_bias=bias, name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(8, activation="relu", use_bias=bias, name="fc")(x)
    model = keras.Model(inputs, keras.layers.Dense(classes, use_bias=bias, name="logits")(x), name="tiny_cnn")
    numpy_weights(model, seed)
    if batchnorm:
        rng = np.random.default_rng(seed)
        model.get_layer("bn1").set_weights([rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.3, 4), rng.normal(0, 0.3, 4),
                                            rng.uniform(0.5, 2.0, 4)])
    return model


def images(seed, n=3, size=16):
    return np.random.default_rng(100 + seed).normal(size=(n, size, size, 3)).astype("float32")


@pytest.fixture(scope="module")
def kbranch():
    """A narrow K-Branch CNN with random weights and batch-normalisation statistics, every
    bias (folded ones included) zero: LRP-0 conserves its logits exactly."""
    return small_kbranch(3, zero_bias=True)


def first(patches, n=3):
    return {g: a[:n] for g, a in patches.items()}


def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message and "--" not in message, message
    return message


# -- conservation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lrp_0_conserves_the_logit_in_a_network_without_any_bias(seed):
    model, x = tiny_cnn(seed, bias=False), images(seed)
    c = sanity.conservation(model, x, lrp(model, x, [0, 2, 4], preset="lrp.z"), [0, 2, 4])
    np.testing.assert_allclose(c["logit"], np.asarray(model.predict_on_batch(x), "float64")[:, [0, 2, 4]])
    assert np.abs(c["logit"]).min() > 1e-3  # a meaningful test: no logit near zero
    assert c["rel_error"].max() <= 1e-4
    np.testing.assert_allclose(c["bias_share"], 0, atol=1e-4)


def test_lrp_0_conserves_the_logit_of_a_kbranch_cnn_whose_biases_and_batchnorm_offsets_are_zero(kbranch, patches):
    model = kbranch
    report = sanity.conservation_report(model, first(patches, 4), [0, 7, 18], presets=["lrp.z"])
    assert report["heatmaps"] == 12 and report["classes"] == [0, 7, 18]
    z = report["presets"]["lrp.z"]
    assert z["max_rel_error"] <= 1e-4 and abs(z["mean_bias_share"]) <= 1e-4


def test_the_bias_share_of_one_dense_layer_is_its_bias_over_the_logit(rng):
    """For ``z = x W + b``, LRP-0 gives input ``i`` the relevance ``x_i w_i``: what is
    missing from the logit is exactly ``b``."""
    w, b = rng.normal(size=(7, 4)), rng.normal(0, 0.5, 4)
    inputs = keras.Input((7,))
    model = keras.Model(inputs, keras.layers.Dense(4, name="linear")(inputs))
    model.get_layer("linear").set_weights([w.astype("float32"), b.astype("float32")])
    x = rng.normal(size=(5, 7)).astype("float32")
    z = x.astype("float64") @ w.astype("float32").astype("float64") + b.astype("float32")
    c = sanity.conservation(model, x, lrp(model, x, [0, 1, 2, 3], preset="lrp.z"), [0, 1, 2, 3])
    np.testing.assert_allclose(c["logit"], z, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c["abs_error"], np.broadcast_to(np.abs(b.astype("float32")), z.shape), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(c["bias_share"] * z, np.broadcast_to(b.astype("float32"), z.shape), rtol=1e-4,
                               atol=1e-5)


def test_a_network_with_biases_leaves_a_bias_share_of_logit_minus_sum():
    model, x = tiny_cnn(4), images(4)
    c = sanity.conservation(model, x, lrp(model, x, [1, 3], preset="lrp.z"), [1, 3])
    np.testing.assert_allclose(c["bias_share"] * c["logit"], c["logit"] - c["sum"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(c["rel_error"], np.abs(c["bias_share"]), rtol=1e-9)
    assert np.abs(c["bias_share"]).max() > 1e-3


def test_logits_leave_an_output_activation_out():
    linear = tiny_cnn(5)
    x = images(5)
    dense = keras.layers.Dense(5, activation="sigmoid", name="sigmoid_logits")
    with_sigmoid = keras.Model(linear.input, dense(linear.get_layer("fc").output))
    dense.set_weights(linear.get_layer("logits").get_weights())
    with_layer = keras.Model(linear.input, keras.layers.Activation("softmax")(linear.output))
    expected = np.asarray(linear.predict_on_batch(x), "float64")
    for model in (with_sigmoid, with_layer):
        np.testing.assert_allclose(sanity.logits(model, x), expected, rtol=1e-5, atol=1e-6)


def test_the_conservation_report_summarises_each_preset_in_plain_data():
    model, x = tiny_cnn(6), images(6)
    report = sanity.conservation_report(model, x, [0, 4], presets=("lrp.z", "lrp.epsilon", "lrp.alpha_1_beta_0"))
    assert json.loads(json.dumps(report)) == report
    assert list(report["presets"]) == ["lrp.z", "lrp.epsilon", "lrp.alpha_1_beta_0"] and report["heatmaps"] == 6
    c = sanity.conservation(model, x, lrp(model, x, [0, 4], preset="lrp.z"), [0, 4])
    z = report["presets"]["lrp.z"]
    assert z["mean_abs_error"] == pytest.approx(c["abs_error"].mean()) and z["max_rel_error"] == pytest.approx(
        c["rel_error"].max())
    assert z["mean_bias_share"] == pytest.approx(c["bias_share"].mean())
    for entry in report["presets"].values():
        assert set(entry) == {"mean_abs_error", "max_abs_error", "mean_rel_error", "max_rel_error", "mean_bias_share"}
        assert 0 <= entry["mean_abs_error"] <= entry["max_abs_error"]


# -- randomisation ----------------------------------------------------------------------------------
def test_a_fully_randomised_kbranch_cnn_changes_epsilon_heatmaps_so_the_preset_passes(kbranch, patches):
    model = kbranch
    result = sanity.randomisation_check(model, first(patches), [0, 3], preset="lrp.epsilon", final_only=True,
                                        jit=BACKEND != "torch")  # two analyzers: compiling each is quicker than op by op
    (step,) = result["steps"]
    assert step["randomised"] == sanity.cascade_order(model) == result["order"]
    assert result["passed"] is True and result["verdict"]["flagged"] is False
    assert result["verdict"]["final_mean"] == step["mean"]["spearman_abs"] < 0.35
    assert np.shape(step["values"]["ssim"]) == (3, 2) and step["mean"]["ssim"] < 0.35


@pytest.mark.parametrize("seed", [0, 1])
def test_heatmaps_that_do_not_depend_on_the_weights_are_flagged(seed):
    """The Flat rule everywhere on a network without max pooling spreads the logit over the
    receptive fields whatever the weights: every step's heatmaps equal the trained ones up to
    a factor, so the check flags it."""
    model = tiny_cnn(seed, pool=False)
    result = sanity.randomisation_check(model, images(seed), [0, 2], preset="lrp.flat", seed=seed)
    assert [s["randomised"] for s in result["steps"]] == [["logits"], ["logits", "fc"], ["logits", "fc", "conv2"],
                                                         ["logits", "fc", "conv2", "conv1"]]
    for step in result["steps"]:
        # equal up to a factor; only float32 rounding reorders the many tied values
        assert min(np.ravel(step["values"]["spearman_abs"])) > 0.95
    assert result["passed"] is False and result["verdict"]["flagged"] is True
    assert result["verdict"]["final_mean"] > 0.95
    random = sanity.randomised_copy(model, None, seed=seed)
    a, b = (sanity.heatmaps_of(m, lrp(m, images(seed), [0, 2], preset="lrp.flat")) for m in (model, random))
    a, b = (h / np.abs(h).max(axis=(2, 3), keepdims=True) for h in (a, b))
    np.testing.assert_allclose(np.abs(a), np.abs(b), atol=1e-5)


def test_the_check_leaves_the_callers_model_alone_and_is_reproducible_by_seed():
    seed = 3
    model, x = tiny_cnn(seed, batchnorm=True), images(seed)
    before = [w.copy() for w in model.get_weights()]
    common = {"preset": "lrp.epsilon", "layers": ["logits", "conv1"]}
    a = sanity.randomisation_check(model, x, [1, 3], seed=seed, **common)
    for w, v in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w, v)
    assert sanity.randomisation_check(model, x, [1, 3], seed=seed, **common) == a
    other = sanity.randomisation_check(model, x, [1, 3], seed=seed + 10, **common)
    assert other["steps"][-1]["values"] != a["steps"][-1]["values"]
    assert json.loads(json.dumps(a)) == a
    # the independent mode randomises one layer per step, then all of them, with the same weights
    alone = sanity.randomisation_check(model, x, [1, 3], seed=seed, mode="independent", **common)
    assert [s["randomised"] for s in alone["steps"]] == [["logits"], ["conv1"], ["logits", "conv1"]]
    assert [s["layer"] for s in alone["steps"]] == ["logits", "conv1", "all"]
    assert alone["steps"][0] == a["steps"][0]
    assert alone["steps"][-1]["values"] == a["steps"][-1]["values"]


def test_randomised_layers_come_from_their_own_initializers_with_their_batchnorm_reset():
    model = tiny_cnn(0, batchnorm=True, kernel_initializer=keras.initializers.RandomUniform(2.0, 3.0))
    trained = {layer.name: layer.get_weights() for layer in model.layers}
    copy = sanity.randomised_copy(model, ["conv1"], seed=7)
    kernel = copy.get_layer("conv1").get_weights()[0]
    assert kernel.min() >= 2.0 and kernel.max() < 3.0  # RandomUniform(2, 3), not the trained weights
    gamma, beta, mean, variance = copy.get_layer("bn1").get_weights()
    for value, expected in ((gamma, 1), (beta, 0), (mean, 0), (variance, 1)):
        np.testing.assert_array_equal(value, np.full(4, expected, "float32"))
    for name in ("conv2", "fc", "logits"):
        for w, v in zip(trained[name], copy.get_layer(name).get_weights()):
            np.testing.assert_array_equal(w, v)
    for layer in model.layers:  # the original is untouched
        for w, v in zip(trained[layer.name], layer.get_weights()):
            np.testing.assert_array_equal(w, v)
    kept = sanity.randomised_copy(model, ["conv1"], seed=7, batchnorm="keep")
    np.testing.assert_array_equal(kept.get_layer("conv1").get_weights()[0], kernel)  # same seed, same weights
    for w, v in zip(trained["bn1"], kept.get_layer("bn1").get_weights()):
        np.testing.assert_array_equal(w, v)
    other = sanity.randomised_copy(model, ["conv1"], seed=8).get_layer("conv1").get_weights()[0]
    assert not np.array_equal(other, kernel)


def test_the_cascade_goes_from_the_logits_down_to_the_first_convolutions(kbranch):
    order = sanity.cascade_order(kbranch)
    assert order[:2] == ["logits", "fusion_fc"]
    assert set(order[2:5]) == {"b10m_fc", "b20m_fc", "b60m_fc"}
    assert set(order[5:8]) == {f"{g}_block3_conv" for g in ("b10m", "b20m", "b60m")}
    assert set(order[-3:]) == {f"{g}_block1_conv" for g in ("b10m", "b20m", "b60m")} and len(order) == 14


# -- the measures against independent references ------------------------------------------------------
def reference_ranks(a):
    """Rank by counting: 1 + the values below + half the other values equal (mean rank of ties)."""
    a = np.asarray(a, "float64").ravel()
    below = (a[None, :] < a[:, None]).sum(1)
    equal = (a[None, :] == a[:, None]).sum(1)
    return below + (equal + 1) / 2


def reference_spearman(a, b):
    ra, rb = reference_ranks(a), reference_ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def test_spearman_equals_the_correlation_of_ranks_counted_by_hand(rng):
    a = rng.integers(0, 12, 600)  # many ties
    b = a + rng.integers(-6, 6, 600)
    np.testing.assert_array_equal(sanity.rank(a), reference_ranks(a))
    assert sanity.spearman(a, b) == pytest.approx(reference_spearman(a, b), abs=1e-12)
    c = rng.normal(size=(20, 30))
    d = c + rng.normal(size=(20, 30))
    assert sanity.spearman(c, d) == pytest.approx(reference_spearman(c, d), abs=1e-12)
    assert sanity.spearman(c, np.exp(c)) == pytest.approx(1.0) and sanity.spearman(c, -c) == pytest.approx(-1.0)
    assert np.isnan(sanity.spearman(np.ones(5), np.arange(5)))


def reference_ssim(a, b, data_range):
    """SSIM window by window: the 11 × 11 Gaussian weights (sigma 1.5, summing to 1) of every
    window that fits inside the image, population moments, averaged."""
    k = np.arange(-5, 6)
    g = np.exp(-(k**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            x, y = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            mx, my = (w * x).sum(), (w * y).sum()
            vx, vy, cxy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum(), (w * (x - mx) * (y - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_equals_a_window_by_window_computation(rng):
    a = rng.normal(size=(17, 14))
    b = 0.6 * a + rng.normal(0, 0.5, size=(17, 14))
    span = max(a.max(), b.max()) - min(a.min(), b.min())
    assert sanity.ssim(a, b) == pytest.approx(reference_ssim(a, b, span), abs=1e-12)
    assert sanity.ssim(a, b, data_range=2.0) == pytest.approx(reference_ssim(a, b, 2.0), abs=1e-12)


def test_ssim_properties(rng):
    """Identity, symmetry, and a negated pattern of zero local mean (SSIM of ``x`` and ``-x``
    is negative only where the luminance term is near 1: local means small beside C1)."""
    a, b = rng.normal(size=(24, 24)), rng.normal(size=(24, 24))
    assert sanity.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert sanity.ssim(a, b) == pytest.approx(sanity.ssim(b, a), abs=1e-15)
    checker = (-1.0) ** np.add.outer(np.arange(24), np.arange(24)) + 0.01 * a
    assert sanity.ssim(checker, -checker) < -0.9
    assert abs(sanity.ssim(a, b)) < 0.3
    assert sanity.ssim(np.full((12, 12), 0.5), np.full((12, 12), 0.5)) == 1.0


def test_ssim_of_constant_and_ramp_images_by_hand():
    """Constant images: only the luminance term is left, ``(2 c1 c2 + C1) / (c1² + c2² + C1)``.
    A horizontal ramp ``x = column`` and ``x + c``: the window's mean is its centre column
    ``m``, both variances and the covariance are ``s² = Σ g_k k²``; so the contrast-structure
    term is 1 and SSIM is the mean of ``(2 m (m + c) + C1) / (m² + (m + c)² + C1)``; with
    ``-x`` it is ``(-2 m² + C1)(-2 s² + C2) / ((2 m² + C1)(2 s² + C2))``."""
    a, b = np.full((15, 15), 0.2), np.full((15, 15), 0.7)
    c1 = (0.01 * 0.5) ** 2
    assert sanity.ssim(a, b) == pytest.approx((2 * 0.2 * 0.7 + c1) / (0.2**2 + 0.7**2 + c1), rel=1e-12)

    ramp = np.tile(np.arange(20, dtype="float64"), (13, 1))
    centres = np.arange(5, 15, dtype="float64")  # the columns windows centre on (rows: 3 positions, the same)
    shift = 3.0
    c1, c2 = (0.01 * (19 + shift)) ** 2, (0.03 * (19 + shift)) ** 2
    expected = np.mean((2 * centres * (centres + shift) + c1) / (centres**2 + (centres + shift) ** 2 + c1))
    assert sanity.ssim(ramp, ramp + shift) == pytest.approx(expected, rel=1e-9)

    k = np.arange(-5, 6)
    g = np.exp(-(k**2) / 4.5)
    s2 = float((g / g.sum() * k**2).sum())
    c1, c2 = (0.01 * 38) ** 2, (0.03 * 38) ** 2
    expected = np.mean((-2 * centres**2 + c1) * (-2 * s2 + c2) / ((2 * centres**2 + c1) * (2 * s2 + c2)))
    assert sanity.ssim(ramp, -ramp) == pytest.approx(expected, rel=1e-9)


# -- refusals ---------------------------------------------------------------------------------------
def test_bad_requests_are_refused_in_one_line():
    model, x = tiny_cnn(0), images(0)
    with pytest.raises(UnknownNameError, match="Did you mean 'lrp.epsilon'") as err:
        sanity.randomisation_check(model, x, 0, preset="lrp.epsilom")
    one_line(err)
    for kwargs, kind, fragment in (
        ({"mode": "cascade"}, UnknownNameError, "unknown randomisation mode 'cascade'"),
        ({"batchnorm": "drop"}, UnknownNameError, "batch normalisation handling 'drop'"),
        ({"metric": "hog"}, UnknownNameError, "similarity metric 'hog'"),
        ({"threshold": 2}, InvalidParameterError, "threshold must be a number from -1 to 1"),
        ({"layers": ["fc", "relu1"]}, InvalidParameterError, "cannot randomise layers \\['relu1'\\]"),
        ({"layers": ["fc", "fc"]}, InvalidParameterError, "give distinct names"),
        ({"bands": "rgbn"}, UnknownNameError, "band set"),
        ({"preset": "lrp.epsilon", "gamma": 1.0}, InvalidParameterError, "no parameter 'gamma'"),
    ):
        with pytest.raises(kind, match=fragment) as err:
            sanity.randomisation_check(model, x, 0, **kwargs)
        one_line(err)
    with pytest.raises(ShapeMismatchError, match="shape \\(12, 12, 3\\)") as err:
        sanity.randomisation_check(model, x[:, :12, :12], 0)
    one_line(err)
    with pytest.raises(MlrsError, match="out of range") as err:
        sanity.randomisation_check(model, x, 9)
    one_line(err)

    relevance = lrp(model, x, [0, 1], preset="lrp.z")
    with pytest.raises(ShapeMismatchError, match="relevance must be \\[patches, classes, ...\\] = \\(3, 3\\)") as err:
        sanity.conservation(model, x, relevance, [0, 1, 2])
    one_line(err)
    with pytest.raises(ShapeMismatchError, match="logit_values must be") as err:
        sanity.conservation(model, x, relevance, [0, 1], logit_values=np.zeros((3, 4)))
    one_line(err)
    with pytest.raises(UnknownNameError, match="unknown LRP preset 'lrp.zz'") as err:
        sanity.conservation_report(model, x, [0], presets=["lrp.z", "lrp.zz"])
    one_line(err)
    with pytest.raises(InvalidParameterError, match="no preset") as err:
        sanity.conservation_report(model, x, [0], presets=[])
    one_line(err)
    for a, b, fragment in ((np.zeros((12, 12)), np.zeros((12, 13)), "one shape"),
                           (np.zeros((10, 12)), np.ones((10, 12)), "at least 11")):
        with pytest.raises(ShapeMismatchError, match=fragment) as err:
            sanity.ssim(a, b)
        one_line(err)
