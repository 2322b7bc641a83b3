"""Models: the registry, the K-Branch CNN's shapes, training steps on the real sample with a
safe-mode round trip, and the ResNet-50 backbone on the stacked layout."""

import keras
import numpy as np
import pytest

from helpers import TINY
from keras_mlrs import data, models
from keras_mlrs.core import layers, losses
from keras_mlrs.errors import MlrsError

#: The authors' K-Branch CNN, transcribed independently from their TF1 code
#: (bigearthnet-models-tf, models/K-BranchCNN.py): per branch, (input size, bands,
#: [(filters, kernel, pooled)]); every conv and hidden FC block is layer -> BN -> ReLU.
OFFICIAL = {
    "b10m": (120, 4, [(32, 5, True), (32, 5, True), (64, 3, False)]),
    "b20m": (60, 6, [(32, 3, True), (32, 3, False), (64, 3, False)]),
    "b60m": (20, 2, [(32, 2, False), (32, 2, False), (32, 2, False)]),
}
#: Dropout rates, branch by branch: 0.25 after each conv block, 0.5 after the branch's FC
#: block; then 0.5 before the classifier and 0.25 after the fusion FC block (layer names'
#: order: b10m_block1..3, b10m, ..., classifier, fusion).
OFFICIAL_DROPOUT = [0.25, 0.25, 0.25, 0.5] * 3 + [0.5, 0.25]


def _official_description(units):
    """Kernel shapes (convs, then dense) and the official parameter count, biases of the
    layers before batch normalisation included."""
    convs, dense, params, flat = [], [], 0, []
    for size, channels, blocks in OFFICIAL.values():
        for filters, kernel, pooled in blocks:
            convs.append((kernel, kernel, channels, filters))
            params += kernel * kernel * channels * filters + filters + 4 * filters  # kernel, bias, BN (4 per channel)
            channels = filters
            size //= 2 if pooled else 1
        flat.append(size * size * channels)
    for fan_in in (*flat, 3 * units):
        dense.append((fan_in, units))
        params += fan_in * units + units + 4 * units
    dense.append((units, 19))
    params += units * 19 + 19
    return convs, dense, params


@pytest.mark.parametrize("units", [1024, 128])
def test_kbranch_cnn_is_the_authors_architecture(units):
    model = models.kbranch_cnn() if units == 1024 else models.kbranch_cnn(units=units)
    convs, dense, official_params = _official_description(units)
    layers_ = sorted(model.layers, key=lambda layer: layer.name)  # branch by branch, block by block
    assert [tuple(layer.kernel.shape) for layer in layers_ if isinstance(layer, keras.layers.Conv2D)] == convs
    assert [tuple(layer.kernel.shape) for layer in layers_ if isinstance(layer, keras.layers.Dense)] == dense
    assert all(layer.padding == "same" for layer in layers_ if isinstance(layer, keras.layers.Conv2D))
    bns = [layer for layer in layers_ if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 9 + 4 and all((b.momentum, b.epsilon) == (0.99, 1e-3) for b in bns)  # tf.layers defaults
    assert [layer.rate for layer in layers_ if isinstance(layer, keras.layers.Dropout)] == OFFICIAL_DROPOUT
    regularised = [layer for layer in layers_ if getattr(layer, "kernel_regularizer", None) is not None]
    assert len(regularised) == 13 and model.get_layer("logits") not in regularised  # 9 conv + 4 hidden FC, not the classifier
    # tf.contrib.layers.l2_regularizer(2e-5) adds 2e-5 * sum(w**2) / 2 per kernel
    expected = sum(2e-5 * np.sum(np.square(layer.kernel.numpy(), dtype=np.float64)) / 2 for layer in regularised)
    np.testing.assert_allclose(sum(float(v) for v in model.losses), expected, rtol=1e-5)
    # the biases before batch normalisation are redundant (BN's beta absorbs them), and left out
    assert model.count_params() == official_params - 352 - 4 * units  # 9 conv biases (32·4 + 64·2 + 32·3), 4 FC
    assert [i.name for i in model.inputs] == ["b10m", "b20m", "b60m"]
    assert model.output.shape == (None, 19)
    assert model.get_layer("b10m_normalization").bands == ("B04", "B03", "B02", "B08")
    assert models.input_layout(model) == "groups"


def test_the_registry_builds_by_name_and_checks_parameters():
    assert models.names() == ["kbranch", "resnet50"]
    assert models.parameters("kbranch") == {
        "units": 1024, "width": 1.0, "l2": 2e-5, "conv_dropout": 0.25, "branch_dropout": 0.5, "fusion_dropout": 0.25,
        "classifier_dropout": 0.5}
    assert models.get("kbranch", **TINY).get_layer("fusion_fc").units == TINY["units"]
    with pytest.raises(MlrsError, match="unknown model 'resnet5'.*Did you mean 'resnet50'"):
        models.get("resnet5")
    with pytest.raises(MlrsError, match="model 'kbranch' has no parameter 'fc_units'; its parameters: units"):
        models.get("kbranch", fc_units=3)
    for params, message in (({"width": 0}, "at least one filter"), ({"width": 0.01}, "at least one filter"),
                            ({"units": 0}, "units must be a whole number"), ({"conv_dropout": 1.0}, r"in \[0, 1\)"),
                            ({"l2": -1}, "l2 must be >= 0"), ({"width": "wide"}, "width must be a number")):
        with pytest.raises(MlrsError, match=message):
            models.get("kbranch", **params)


def test_kbranch_trains_on_the_sample_and_round_trips_in_safe_mode(prepared, tmp_path):
    keras.utils.set_random_seed(0)
    x, y = next(iter(data.load(prepared, "train", batch_size=5, shuffle=False)))
    model = models.kbranch_cnn(units=16, width=0.25, conv_dropout=0, branch_dropout=0, fusion_dropout=0, classifier_dropout=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.get("sparsemax"))
    history = [model.train_on_batch(x, y, return_dict=True)["loss"] for _ in range(15)]
    assert history[-1] < history[0]  # training-mode loss (BatchNorm moving stats barely move in 15 steps)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert isinstance(again.loss, losses.SparsemaxLoss)


def test_resnet50_takes_the_stacked_layout(prepared):
    model = models.get("resnet50")
    assert models.input_layout(model) == "stacked"
    assert model.get_layer("normalization").bands == data.STACKED_BANDS
    x, _ = next(iter(data.load(prepared, "train", batch_size=2, layout="stacked", shuffle=False)))
    logits = np.asarray(model.predict_on_batch(x))
    assert logits.shape == (2, 19) and np.isfinite(logits).all()


def test_a_stacked_layout_model_trains_on_the_loader_and_round_trips(prepared, tmp_path):
    inputs = keras.Input((120, 120, 12), dtype="uint16", name="bands")
    x = layers.BandNormalization(data.STACKED_BANDS)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(x))
    model = keras.Model(inputs, keras.layers.Dense(19)(x))
    assert models.input_layout(model) == "stacked"
    model.compile(optimizer="rmsprop", loss=losses.get("bce"))
    x, y = next(iter(data.load(prepared, "train", batch_size=2, layout="stacked", shuffle=False)))
    assert np.isfinite(model.train_on_batch(x, y))
    model.save(tmp_path / "r.keras")
    again = keras.saving.load_model(tmp_path / "r.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-5, atol=1e-6)
