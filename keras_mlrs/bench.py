"""Benchmarks: commands that print numbers, run on demand (``mlrs bench ...``).

Timings are measured side by side in one process and interleaved (round-robin over
the contenders, many rounds, median per contender), so that the machine's noise
hits every contender alike; report the ratios, not the absolute times.
"""

import statistics
import time

import keras
import numpy as np

from keras_mlrs import losses


def _step_model(features, hidden, classes, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,))
    x = keras.layers.Dense(hidden, activation="relu")(inputs)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


def bench_losses(
    names=None,
    batch_size: int = 1024,
    features: int = 1024,
    hidden: int = 1024,
    classes: int = 19,
    rounds: int = 15,
    steps_per_round: int = 3,
    jit_compile="auto",
    seed: int = 0,
) -> list[dict]:
    """Training-step time of each loss relative to ``bce``, on the same model and batch.

    Each loss trains its own copy of one model (same initial weights, RMSprop) with
    ``model.train_on_batch`` on one fixed batch whose labels follow the BigEarthNet-19
    class frequencies. After a warm-up step each, the losses take turns: ``rounds``
    rounds of ``steps_per_round`` timed steps each. Returns one dict per loss with the
    median step time in milliseconds and its ratio to ``bce``.
    """
    from keras_mlrs.data import SPLIT_SIZES, TRAIN_CLASS_COUNTS

    names = list(names or losses.names())
    if "bce" not in names:
        names.insert(0, "bce")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch_size, features)).astype("float32")
    freq = np.resize(np.asarray(TRAIN_CLASS_COUNTS, "float64") / SPLIT_SIZES["train"], classes)
    y = (rng.random((batch_size, classes)) < freq).astype("float32")

    template = _step_model(features, hidden, classes, seed)
    models = {}
    for name in names:
        model = keras.models.clone_model(template)
        model.set_weights(template.get_weights())
        model.compile(
            optimizer=keras.optimizers.RMSprop(1e-4), loss=losses.get(name), jit_compile=jit_compile
        )
        model.train_on_batch(x, y)  # warm-up: trace and compile
        models[name] = model

    times = {name: [] for name in names}
    for _ in range(rounds):
        for name, model in models.items():
            start = time.perf_counter()
            for _ in range(steps_per_round):
                model.train_on_batch(x, y)
            times[name].append((time.perf_counter() - start) / steps_per_round)

    base = statistics.median(times["bce"])
    return [
        {
            "loss": name,
            "step_ms": 1e3 * statistics.median(t),
            "ratio": statistics.median(t) / base,
        }
        for name, t in times.items()
    ]
