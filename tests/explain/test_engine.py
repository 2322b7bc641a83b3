"""The LRP engine's properties and surface: conservation, the batch-normalisation canonizer,
output activations, classes by name, presets as data, layer maps and canonizers of one's
own, refusals, the blocked backward convolution, and the compiled engine against the one
run op by op."""

import contextlib
import dataclasses

import keras
import numpy as np
import pytest

from helpers import BACKEND, mlp, relative_difference, small_kbranch
from keras_mlrs.explain import (
    BASE_MAP,
    LRP,
    BatchNormFold,
    Canonizer,
    Epsilon,
    PassThrough,
    UnsupportedModelError,
    composites,
    fold_batchnorm,
    lrp,
)
from keras_mlrs.explain.kernels import (
    CHUNK_COLUMNS,
    KernelView,
    Windows,
    blocked_conv,
    transposed_chunks,
)
from keras_mlrs.explain.rules import WinnerTakeAll

pytestmark = pytest.mark.backends

CLASSES = [0, 11, 18]


def test_z_rule_without_bias_conserves_the_logit(patches):
    model = small_kbranch(5, zero_bias=True)
    relevance = lrp(model, patches, CLASSES, preset="lrp.z")
    total = sum(r.sum(axis=tuple(range(2, r.ndim))) for r in relevance.values())  # [batch, classes]
    logits = np.asarray(model.predict_on_batch(patches))[:, CLASSES]
    np.testing.assert_allclose(total, logits, rtol=1e-4, atol=1e-6)

@contextlib.contextmanager
def op_by_op():
    """TensorFlow's functions run eagerly inside (the other backends' LRP(jit=False) already
    runs op by op)."""
    if BACKEND != "tensorflow":
        yield
        return
    import tensorflow as tf

    eager = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(eager)


@pytest.mark.graph
@pytest.mark.skipif(BACKEND == "torch", reason="LRP under PyTorch runs eagerly only: there is no compiled form")
@pytest.mark.parametrize("preset", ["lrp.epsilon", "lrp.alpha_1_beta_0"])
def test_the_compiled_engine_equals_the_engine_run_op_by_op(patches, preset):
    """The TensorFlow graph (with its XLA-fused element-wise chains) or the jax.jit program
    gives the relevance of the same engine run one operation at a time, through every
    fast form of the K-Branch CNN: windows read as blocks by the first layer, the dense
    kernels' stored transposes in chunks (14,400 inputs: 4 chunks)."""
    model = small_kbranch(9)
    assert len(transposed_chunks(model.get_layer("b10m_fc").kernel, "float32")) == 4
    compiled = LRP(model, preset, jit=BACKEND == "jax")(patches, CLASSES)
    with op_by_op():
        expected = LRP(model, preset, jit=False)(patches, CLASSES)
    for group in expected:
        assert relative_difference(compiled[group], expected[group]) <= 1e-5, group


def test_a_dense_kernels_stored_transpose_is_its_transpose_in_chunks():
    kernel = np.random.default_rng(0).normal(size=(3 * CHUNK_COLUMNS + 5, 7)).astype("float32")
    chunks = [keras.ops.convert_to_numpy(c) for c in transposed_chunks(kernel, "float32")]
    assert len(chunks) == 3 and all(c.flags.c_contiguous for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks, axis=1), kernel.T)
    assert len(transposed_chunks(kernel[:CHUNK_COLUMNS // 2], "float32")) == 1


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

def test_fewer_patches_than_the_batch_size_are_padded_and_cut_back(patches):
    model = small_kbranch(8)
    analyzer = LRP(model, "lrp.epsilon")
    two = {g: x[:2] for g, x in patches.items()}
    padded = analyzer(two, [1, 4], batch_size=5)
    default = analyzer(two, [1, 4])
    for group in padded:
        assert padded[group].shape == default[group].shape == (2, 2, *patches[group].shape[1:])
        assert relative_difference(padded[group], default[group]) <= 1e-5

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
    model = mlp(0)
    with pytest.raises(ValueError, match="19-class"):
        lrp(model, np.zeros((1, 10), "float32"), "urban fabric")
    with pytest.raises(ValueError, match="out of range"):
        lrp(model, np.zeros((1, 10), "float32"), 7)
    with pytest.raises(ValueError, match="shape \\(9,\\)"):
        lrp(model, np.zeros((2, 9), "float32"), 0)
    with pytest.raises(ValueError, match="unknown LRP preset 'lrp.epsilom'.*Did you mean 'lrp.epsilon'"):
        lrp(model, np.zeros((1, 10), "float32"), 0, preset="lrp.epsilom")
    with pytest.raises(ValueError, match="no parameter 'gamma'"):
        lrp(model, np.zeros((1, 10), "float32"), 0, preset="lrp.epsilon", gamma=1.0)

@pytest.mark.parametrize("size, kernel", [((12, 12), (5, 5)), ((11, 13), (5, 6)), ((9, 10), (7, 5)), ((10, 10), (4, 4))])
def test_blocked_convolution_equals_the_direct_one(size, kernel):
    """The 2 x 2-block form of a first layer's backward convolution, odd and even sizes and
    kernels, against the direct convolution."""

    rng = np.random.default_rng(sum(size) + sum(kernel))
    x = rng.normal(size=(3, size[0] + kernel[0] - 1, size[1] + kernel[1] - 1, 6)).astype("float32")
    k = rng.normal(size=(*kernel, 6, 3)).astype("float32")
    direct = keras.ops.convert_to_numpy(keras.ops.conv(x, k, padding="valid"))
    blocked = keras.ops.convert_to_numpy(blocked_conv(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(k), size))
    assert blocked.shape == direct.shape
    np.testing.assert_allclose(blocked, direct, rtol=1e-4, atol=1e-4 * np.abs(direct).max())


@pytest.mark.parametrize("kernel, pool, size", [(5, 2, 12), (5, 2, 11), (3, 2, 12), (5, 3, 12)])
def test_max_pool_relevance_kept_as_windows_equals_the_whole_tensor(kernel, pool, size):
    """Relevance through a tiling max pooling is held as windows (pooled relevance, shares);
    scaled per patch and transposed through the first layer's convolution, read as 2 x 2
    blocks where that applies (5 x 5 'same', 2 x 2 pools, even sizes), it equals the
    whole-tensor path: the gradient of the pooling times the scale, transposed directly."""
    rng = np.random.default_rng(kernel + pool + size)
    conv = keras.layers.Conv2D(8, kernel, padding="same", use_bias=False)
    conv.build((None, size, size, 4))
    pooling = keras.layers.MaxPooling2D(pool)
    x = rng.normal(size=(2, size, size, 8)).astype("float32")
    x[0, :2, :2] = 1.0  # tied maxima share
    hp = size // pool
    R = rng.normal(size=(3, 2, hp, hp, 8)).astype("float32")
    q = rng.normal(size=(2, size, size, 8)).astype("float32")
    kernel_t = keras.ops.convert_to_tensor(conv.kernel)
    windows = WinnerTakeAll().relevance(pooling, [keras.ops.convert_to_tensor(x)], keras.ops.convert_to_tensor(R))[0]
    assert isinstance(windows, Windows)
    # the independent path: routing by hand in numpy (ties split evenly), then the direct transpose
    whole = np.zeros((3, 2, size, size, 8), "float32")
    for c, n, i, j, ch in np.ndindex(3, 2, hp, hp, 8):
        window = x[n, pool * i: pool * i + pool, pool * j: pool * j + pool, ch]
        winners = window == window.max()
        whole[c, n, pool * i: pool * i + pool, pool * j: pool * j + pool, ch] = R[c, n, i, j, ch] * winners / winners.sum()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(windows.dense()), whole, rtol=1e-6, atol=1e-6)
    view = KernelView(conv, kernel_t, None, (size, size, 4))
    expected = keras.ops.convert_to_numpy(view.transpose(keras.ops.convert_to_tensor(whole * q[None]), kernel_t))
    got = keras.ops.convert_to_numpy(view.transpose(windows.scaled(keras.ops.convert_to_tensor(q)), kernel_t))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_presets_are_composites_whose_parameters_replace_rule_fields():
    assert composites.names()[:2] == ["lrp.z", "lrp.epsilon"]
    assert composites.parameters("lrp.epsilon") == {"epsilon": 1e-7, "bias": True}
    assert composites.parameters("lrp.sequential_preset_b") == {"epsilon": 0.1, "full_bias": False}
    assert composites.parameters("lrp.z_plus") == {}
    preset_b = composites.get("lrp.sequential_preset_b", epsilon=0.5, full_bias=True)
    assert preset_b.dense == Epsilon(0.5) and preset_b.conv.full_bias and preset_b.conv.alpha == 2.0
    assert composites.get("lrp.sequential_preset_b_flat").first is not None
    with pytest.raises(ValueError, match="no parameter 'alpha'"):
        composites.get("lrp.alpha_1_beta_0", alpha=2.0)  # the preset fixes alpha and beta
    with pytest.raises(ValueError, match="alpha - beta = 1"):
        composites.get("lrp.alpha_beta", alpha=2.0)


def test_a_layer_map_of_ones_own_covers_another_layer():
    inputs = keras.Input((6,))
    x = keras.layers.Dense(5, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.UnitNormalization(name="unit")(x)))
    with pytest.raises(UnsupportedModelError, match="'unit' \\(UnitNormalization\\).*LayerMap"):
        LRP(model)
    passing = dataclasses.replace(composites.get("lrp.epsilon"), layer_map=BASE_MAP.extended(
        (keras.layers.UnitNormalization, PassThrough())))
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    relevance = lrp(model, x, [0, 2], preset=passing)
    assert relevance.shape == (4, 2, 6) and np.isfinite(relevance).all() and np.abs(relevance).max() > 0


def test_canonizers_are_passed_in(patches):
    model = small_kbranch(9)
    with pytest.raises(UnsupportedModelError, match="BatchNormalization"):
        LRP(model, canonizers=())  # nothing folds the batch normalisation: its layers have no rule

    class Counting(Canonizer):
        calls = 0

        def apply(self, graph):
            Counting.calls += 1
            return graph

    folded = LRP(model, canonizers=(BatchNormFold(), Counting()))(patches, 3)
    assert Counting.calls == 1
    for group, r in lrp(model, patches, 3).items():
        np.testing.assert_allclose(folded[group], r, rtol=1e-5, atol=1e-9)
