"""TF1RMSprop against an independent float64 numpy version of TF1's ApplyRMSProp and
ApplyCenteredRMSProp (written from the kernels' documented formulas), against TF1's own
optimizer under TensorFlow, against Keras' RMSprop (the first step differs), and through
get_config and a saved ``.keras`` model."""

import keras
import numpy as np
import pytest

from keras_mlrs.core.optimizers import TF1RMSprop

pytestmark = pytest.mark.backends

SHAPES = [(7,), (3, 4), (2, 3, 5)]
STEPS = 5
SETTINGS = {
    "default": {},
    "momentum": {"momentum": 0.9},
    "centered": {"centered": True},
    "centered_momentum": {"centered": True, "momentum": 0.5, "rho": 0.8},
    # ms falls from 1 to ~1e-5 in 5 steps where g is small: there epsilon (1e-10) shows
    "fast_decay": {"rho": 0.1},
}


def tf1_reference(var0, grads, lr, rho=0.9, momentum=0.0, epsilon=1e-10, centered=False):
    """TF1's RMSProp in float64: ms starts at ones, mg and mom at zeros."""
    var = var0.astype("float64")
    ms = np.ones_like(var)
    mg = np.zeros_like(var)
    mom = np.zeros_like(var)
    for g in grads:
        g = g.astype("float64")
        ms = rho * ms + (1 - rho) * g * g
        if centered:
            mg = rho * mg + (1 - rho) * g
            mom = momentum * mom + lr * g / np.sqrt(ms - mg * mg + epsilon)
        else:
            mom = momentum * mom + lr * g / np.sqrt(ms + epsilon)
        var = var - mom
    return var, ms, mg, mom


def problem(seed):
    """Variables of several shapes, STEPS gradients each (with one exactly zero element and
    gradients from tiny to large), and the float32 starting values."""
    rng = np.random.default_rng(seed)
    var0 = [rng.normal(size=s).astype("float32") for s in SHAPES]
    grads = []
    for _ in range(STEPS):
        step = [
            (rng.normal(size=s) * 10.0 ** rng.uniform(-4, 1, size=s)).astype("float32")
            for s in SHAPES
        ]
        step[0][0] = 0.0
        grads.append(step)
    return var0, grads


def assert_same_steps(got, want, var):
    """The displacement var - var0 itself (var ~ 1 would hide an error in a 1e-4 step), up to
    float32 storage of var: half an ulp of var rounded away at each of the STEPS steps."""
    slack = 1e-5 * np.abs(want) + STEPS * np.spacing(np.abs(var).astype("float32"))
    assert np.all(np.abs(got - want) <= slack), np.max(np.abs(got - want) - slack)


def run_keras(opt, var0, grads):
    variables = [keras.Variable(v) for v in var0]
    for step in grads:
        opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in step], variables))
    return [keras.ops.convert_to_numpy(v) for v in variables]


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_update_matches_float64_tf1_formula(seed, setting):
    lr = 0.01
    hp = SETTINGS[setting]
    var0, grads = problem(seed)
    opt = TF1RMSprop(learning_rate=lr, **hp)
    got = run_keras(opt, var0, grads)
    for i, v0 in enumerate(var0):
        want, ms, mg, mom = tf1_reference(v0, [step[i] for step in grads], lr, **hp)
        np.testing.assert_allclose(got[i], want, rtol=1e-6, atol=1e-7)
        assert_same_steps(got[i] - v0, want - v0, want)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(opt._rms[i]), ms, rtol=1e-6)
        if hp.get("centered"):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(opt._mean_grads[i]), mg, rtol=1e-5, atol=1e-9
            )
        if hp.get("momentum"):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(opt._momentums[i]), mom, rtol=1e-5, atol=1e-9
            )


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.compat.v1.train.RMSPropOptimizer needs the TensorFlow backend",
)
@pytest.mark.parametrize("setting", SETTINGS)
def test_update_matches_tensorflow1_rmsprop_optimizer(setting):
    import tensorflow as tf

    lr = 0.01
    hp = SETTINGS[setting]
    var0, grads = problem(7)
    got = run_keras(TF1RMSprop(learning_rate=lr, **hp), var0, grads)

    tf_hp = {("decay" if k == "rho" else k): v for k, v in hp.items()}
    tf1 = tf.compat.v1.train.RMSPropOptimizer(learning_rate=lr, **tf_hp)
    tf_vars = [tf.Variable(v) for v in var0]
    for step in grads:
        tf1.apply_gradients(zip([tf.constant(g) for g in step], tf_vars))
    for g, t, v0 in zip(got, tf_vars, var0):
        np.testing.assert_allclose(g, t.numpy(), rtol=1e-6, atol=1e-7)
        assert_same_steps(g - v0, t.numpy() - v0, t.numpy())


def test_first_step_differs_from_keras_rmsprop():
    lr = 1e-4
    g = np.array([1e-3, -1e-2, 0.1, -1.0, 3.0], dtype="float32")
    v0 = np.zeros_like(g)

    (ours,) = run_keras(TF1RMSprop(learning_rate=lr), [v0], [[g]])
    (theirs,) = run_keras(keras.optimizers.RMSprop(learning_rate=lr), [v0], [[g]])
    (theirs_eps,) = run_keras(
        keras.optimizers.RMSprop(learning_rate=lr, epsilon=1e-10), [v0], [[g]]
    )
    g64 = g.astype("float64")

    # TF1: ms starts at 1, the first step is lr * g / sqrt(0.9 + 0.1 g^2), ~ lr * g for small g
    np.testing.assert_allclose(-ours, lr * g64 / np.sqrt(0.9 + 0.1 * g64**2 + 1e-10), rtol=1e-6)
    # Keras: ms starts at 0, the first step is lr * g / sqrt(0.1 g^2 + 1e-7),
    # ~ lr * sign(g) * sqrt(10) for |g| >> 1e-3
    np.testing.assert_allclose(-theirs, lr * g64 / np.sqrt(0.1 * g64**2 + 1e-7), rtol=1e-5)
    np.testing.assert_allclose(-theirs_eps[1:], lr * np.sign(g64[1:]) * np.sqrt(10.0), rtol=1e-5)
    # far apart for small gradients, whatever Keras' epsilon: the initial mean square differs
    ratio = np.abs(theirs_eps / ours)
    assert ratio[0] > 2000 and ratio[1] > 200 and ratio[2] > 20
    assert np.all(np.abs(theirs - ours) > 1e-5)


def test_get_config_round_trip():
    opt = TF1RMSprop(
        learning_rate=3e-4, rho=0.8, momentum=0.5, epsilon=1e-8, centered=True, clipnorm=1.0
    )
    config = opt.get_config()
    assert {k: config[k] for k in ("rho", "momentum", "epsilon", "centered", "clipnorm")} == {
        "rho": 0.8,
        "momentum": 0.5,
        "epsilon": 1e-8,
        "centered": True,
        "clipnorm": 1.0,
    }
    assert np.isclose(config["learning_rate"], 3e-4)
    assert TF1RMSprop.from_config(config).get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(restored) is TF1RMSprop and restored.get_config() == config

    defaults = TF1RMSprop().get_config()
    hyper = {k: defaults[k] for k in ("rho", "momentum", "epsilon", "centered")}
    assert hyper == {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-10, "centered": False}
    assert np.isclose(defaults["learning_rate"], 1e-4) and defaults["name"] == "tf1_rmsprop"


@pytest.mark.parametrize(
    "hp", [{}, {"momentum": 0.5, "centered": True}], ids=["default", "momentum_centered"]
)
def test_saved_model_keeps_optimizer_and_slots(tmp_path, hp):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=TF1RMSprop(learning_rate=1e-2, **hp), loss="mse")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 2

    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)

    assert type(loaded.optimizer) is TF1RMSprop
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    # iterations, learning rate, then the slots of kernel and bias (layer names differ)
    saved, restored = model.optimizer.variables, loaded.optimizer.variables
    assert (
        len(saved)
        == len(restored)
        == 2 + 2 * (1 + bool(hp.get("momentum")) + bool(hp.get("centered")))
    )
    for a, b in zip(saved, restored):
        assert a.name.split("_")[-2:] == b.name.split("_")[-2:]  # e.g. kernel_rms
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(b), keras.ops.convert_to_numpy(a), err_msg=a.path
        )
    rms = [keras.ops.convert_to_numpy(v) for v in loaded.optimizer._rms]
    # two steps from ones (not zeros): ms >= rho**2 everywhere, and it has moved
    assert all(np.all(r >= 0.9**2 - 1e-6) and np.all(r != 1.0) for r in rms)
