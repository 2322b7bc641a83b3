"""Models: the registry, the K-Branch CNN's shapes, training steps on the real sample with a
safe-mode round trip, and the ResNet-50 backbone on the stacked layout."""

import keras
import numpy as np
import pytest

from helpers import TINY
from keras_mlrs import data, models
from keras_mlrs.core import layers, losses
from keras_mlrs.errors import MlrsError


def test_kbranch_cnn_official_and_study_widths():
    official = models.kbranch_cnn(branch_units=128, fc_units=128)
    study = models.kbranch_cnn()
    assert study.get_layer("fusion_fc").units == 1024
    assert official.get_layer("fusion_fc").units == 128
    assert official.count_params() < study.count_params()
    assert [i.name for i in study.inputs] == ["b10m", "b20m", "b60m"]
    assert study.output.shape == (None, 19)
    assert study.get_layer("b10m_normalization").bands == ("B04", "B03", "B02", "B08")
    # 10 m branch: two 2x2 poolings take 120 -> 30 before the last conv block
    assert study.get_layer("b10m_block3_conv").output.shape[1:3] == (30, 30)
    assert study.get_layer("b20m_block3_conv").output.shape[1:3] == (30, 30)
    assert study.get_layer("b60m_block3_conv").output.shape[1:3] == (20, 20)
    assert models.input_layout(study) == "groups"


def test_the_registry_builds_by_name_and_checks_parameters():
    assert models.names() == ["kbranch", "resnet50"]
    assert models.parameters("kbranch") == {"branch_units": 128, "fc_units": 1024, "dropout": 0.5, "width": 1.0}
    assert models.get("kbranch", **TINY).get_layer("fusion_fc").units == TINY["fc_units"]
    with pytest.raises(MlrsError, match="unknown model 'resnet5'.*Did you mean 'resnet50'"):
        models.get("resnet5")
    with pytest.raises(MlrsError, match="model 'kbranch' has no parameter 'units'; its parameters: branch_units"):
        models.get("kbranch", units=3)


def test_kbranch_trains_on_the_sample_and_round_trips_in_safe_mode(prepared, tmp_path):
    keras.utils.set_random_seed(0)
    x, y = next(iter(data.load(prepared, "train", batch_size=5, shuffle=False)))
    model = models.kbranch_cnn(branch_units=16, fc_units=32, width=0.25, dropout=0.0)
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
