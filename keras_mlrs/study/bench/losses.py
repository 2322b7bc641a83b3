"""``mlrs bench losses``: each loss's training-step time relative to ``bce``."""

import statistics
import time

import keras
import numpy as np

from keras_mlrs.bigearthnet import SPLIT_SIZES, TRAIN_CLASS_COUNTS
from keras_mlrs.core import losses
from keras_mlrs.study.bench.common import interleave


def _step_model(features, hidden, classes, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,))
    x = keras.layers.Dense(hidden, activation="relu")(inputs)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


def bench_losses(names=None, batch_size: int = 1024, features: int = 1024, hidden: int = 1024, classes: int = 19,
                 rounds: int = 15, steps_per_round: int = 3, jit_compile="auto", seed: int = 0,
                 clock=time.perf_counter) -> list[dict]:
    """Training-step time of each loss relative to ``bce``, on the same model and batch.

    Each loss trains its own copy of one model (same initial weights, RMSprop) with
    ``model.train_on_batch`` on one fixed batch whose labels follow the BigEarthNet-19
    class frequencies. After a warm-up step each, the losses take turns: ``rounds``
    rounds of ``steps_per_round`` timed steps each (see
    :func:`~keras_mlrs.study.bench.common.interleave`). Returns one dict per loss with the
    median step time in milliseconds and its ratio to ``bce``.
    """
    names = list(names or losses.names())
    if "bce" not in names:
        names.insert(0, "bce")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch_size, features)).astype("float32")
    freq = np.resize(np.asarray(TRAIN_CLASS_COUNTS, "float64") / SPLIT_SIZES["train"], classes)
    y = (rng.random((batch_size, classes)) < freq).astype("float32")

    template = _step_model(features, hidden, classes, seed)
    steps = {}
    for name in names:
        model = keras.models.clone_model(template)
        model.set_weights(template.get_weights())
        model.compile(optimizer=keras.optimizers.RMSprop(1e-4), loss=losses.get(name), jit_compile=jit_compile)
        model.train_on_batch(x, y)  # warm-up: trace and compile
        steps[name] = lambda model=model: model.train_on_batch(x, y)
    return relative_to(interleave(steps, rounds, steps_per_round, clock), "bce")


def relative_to(times: dict[str, list[float]], reference: str) -> list[dict]:
    """``{"loss", "step_ms", "ratio"}`` per contender: its median time and the ratio of
    that median to the ``reference``'s."""
    base = statistics.median(times[reference])
    return [{"loss": name, "step_ms": 1e3 * statistics.median(t), "ratio": statistics.median(t) / base}
            for name, t in times.items()]
