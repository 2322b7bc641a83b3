"""``keras_mlrs.runs.evaluate`` on tf.data batches under each backend (JAX's models take no
tf.Tensor: the end-of-training evaluation of every JAX run crashed on them), against
scikit-learn."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import f1_score, precision_score

from keras_mlrs import runs
from keras_mlrs.bigearthnet import CLASS_NAMES

pytestmark = pytest.mark.backends


def test_evaluate_takes_tf_data_batches_and_equals_scikit_learn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 6)).astype("float32")
    y = (rng.uniform(size=(10, len(CLASS_NAMES))) < 0.3).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(len(CLASS_NAMES))])
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(5)  # two batches of one shape: one compile of each op
    report = runs.evaluate(model, dataset, decision="logit")
    predicted = (np.asarray(model.predict(x, verbose=0)) > 0).astype(int)
    assert report["patches"] == 10
    for average in ("micro", "macro", "samples"):
        assert report[average]["f1"] == pytest.approx(f1_score(y, predicted, average=average, zero_division=0),
                                                      abs=1e-6)
    assert report["micro"]["precision"] == pytest.approx(
        precision_score(y, predicted, average="micro", zero_division=0), abs=1e-6)
