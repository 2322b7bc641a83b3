"""The demo behind ``mlrs demo``: every loss of the registry trained on the same data and
scored with the study's metrics.

Until the BigEarthNet loader lands, the data are synthetic multi-label features whose
19 class frequencies follow the BigEarthNet-19 training split (Arable land on 37 % of
the patches, Coastal wetlands on 0.4 %). They demonstrate the losses, decision rules
and metrics end to end; they say nothing about accuracy on real imagery.
"""

import json
from pathlib import Path
from statistics import NormalDist

import keras
import numpy as np

from keras_mlrs import losses, metrics
from keras_mlrs.data import CLASS_NAMES, SPLIT_SIZES, TRAIN_CLASS_COUNTS
from keras_mlrs.files import atomic_write_text


def synthetic_bigearthnet19(n: int, features: int = 64, seed: int = 0):
    """Features and multi-hot labels with BigEarthNet-19's class frequencies.

    Each class is a noisy linear function of the features, thresholded at the
    quantile that gives the class its training-split frequency.
    """
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng(1234).normal(size=(features, len(CLASS_NAMES)))
    x = rng.normal(size=(n, features))
    signal = x @ directions / np.sqrt(features) + 0.5 * rng.normal(size=(n, len(CLASS_NAMES)))
    # Signal and noise are Gaussian, so each column is N(0, σ_c²) with
    # σ_c² = |d_c|²/features + 0.25: threshold it at its (1 - frequency) quantile.
    freq = np.asarray(TRAIN_CLASS_COUNTS) / SPLIT_SIZES["train"]
    sigma = np.sqrt((directions**2).sum(axis=0) / features + 0.25)
    thresholds = sigma * np.array([NormalDist().inv_cdf(1.0 - f) for f in freq])
    y = (signal > thresholds).astype("float32")
    return x.astype("float32"), y


def run_demo(
    loss_names=None, epochs: int = 12, n_train: int = 8192, n_test: int = 4096, seed: int = 0, out_dir=None
) -> dict:
    """Train one small model per loss on the same synthetic data; return test metrics per loss.

    When ``out_dir`` is given, also writes ``results.json`` there (atomically).
    """
    x_train, y_train = synthetic_bigearthnet19(n_train, seed=seed)
    x_test, y_test = synthetic_bigearthnet19(n_test, seed=seed + 1)
    results = {}
    for name in loss_names or losses.names():
        keras.utils.set_random_seed(seed)
        loss = losses.get(name)
        model = keras.Sequential(
            [keras.Input((x_train.shape[1],)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(19)]
        )
        model.compile(
            optimizer=keras.optimizers.RMSprop(1e-3),
            loss=loss,
            metrics=metrics.standard(loss.decision)
            + [metrics.AveragePrecision("macro", decision=loss.decision, max_samples=n_test)],
        )
        model.fit(x_train, y_train, batch_size=256, epochs=epochs, verbose=0)
        scores = model.evaluate(x_test, y_test, batch_size=1024, verbose=0, return_dict=True)
        results[name] = {
            "rule": loss.decision.name,
            "decision": loss.decision.describe(),
            **{k: float(v) for k, v in scores.items()},
        }
    if out_dir is not None:
        atomic_write_text(Path(out_dir) / "results.json", json.dumps(results, indent=2))
    return results
