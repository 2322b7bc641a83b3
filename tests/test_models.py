"""Models: shapes, a few training steps on the real sample, and a safe-mode round trip."""

import keras
import numpy as np

from keras_mlrs import data, losses, metrics, models


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


def test_kbranch_trains_on_the_sample_and_round_trips_in_safe_mode(tmp_path):
    keras.utils.set_random_seed(0)
    prepared = tmp_path / "prep"
    data.prepare(data.sample_path(), prepared, split="random", fractions=(1.0, 0.0, 0.0), workers=1)
    ds = data.load(prepared, "train", batch_size=5, shuffle=False).cache()
    model = models.kbranch_cnn(branch_units=16, fc_units=32, width=0.25, dropout=0.0)
    loss = losses.get("sparsemax")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=metrics.standard(loss.decision))
    history = model.fit(ds, epochs=15, verbose=0).history["loss"]
    assert history[-1] < history[0]  # training-mode loss (BatchNorm moving stats barely move in 15 steps)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    x, _ = next(iter(ds))
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert isinstance(again.loss, losses.SparsemaxLoss)
