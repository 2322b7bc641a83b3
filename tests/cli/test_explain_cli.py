"""``mlrs explain`` on the bundled sample: patch folder, band file, georeferenced multi-band
GeoTIFF, several models in one figure, the iNNvestigate engine; bad input as one-line
errors that write nothing. TensorFlow backend (the CLI's)."""

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import figure_title, one_line_error, run_mlrs_here
from keras_mlrs import data
from keras_mlrs.bigearthnet import STACKED_BANDS
from keras_mlrs.cli.main import app
from keras_mlrs.core import losses
from keras_mlrs.core.layers import BandNormalization
from keras_mlrs.data.tiff import write_geotiff
from keras_mlrs.explain import lrp
from keras_mlrs.explain.heatmaps import to_10m_grid
from keras_mlrs.models import kbranch_cnn

runner = CliRunner()


def sample_folders():
    return [p for p in sorted(data.sample_path().iterdir()) if p.is_dir()]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two narrow K-Branch CNNs with random weights, saved compiled (bce and sparsemax), so
    each carries its decision rule. Fresh batch normalisation (variance 1) is where
    iNNvestigate's sqrt(var^2 + eps) equals the correct sqrt(var + eps)."""
    folder = tmp_path_factory.mktemp("models")
    paths = []
    for seed, loss in ((0, "bce"), (1, "sparsemax")):
        keras.utils.set_random_seed(seed)
        model = kbranch_cnn(width=0.25, units=16)
        model.compile(loss=losses.get(loss))
        model.save(folder / f"{loss}.keras")
        paths.append(folder / f"{loss}.keras")
    return paths


def explain(*args):
    result = runner.invoke(app, ["explain", *map(str, args)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def test_folder_band_file_and_geotiff_give_the_same_relevance(models, tmp_path):
    import rasterio

    folder = sample_folders()[0]
    patch = data.read_patch(folder)
    truth = [data.CLASS_NAMES[i] for i in np.flatnonzero(patch.labels)]
    output = explain(folder, "--model", models[0], "--class", truth[0].upper(), "--class", "18", "--out", tmp_path / "a")
    assert "in labels" in output and truth[0] in output
    png, npy, tif = (tmp_path / "a" / f"{folder.name}_lrp.{ext}" for ext in ("png", "npy", "tif"))
    assert f"of patch {folder.name} by {models[0].name}" in figure_title(png)  # and <name>_lrp.pdf
    relevance = np.load(npy)
    assert relevance.shape == (2, 120, 120, 12) and relevance.dtype == np.float32

    # the .npy is the engine's relevance, spread onto the 10 m grid (sums kept)
    model = keras.saving.load_model(models[0])
    direct = lrp(model, {k: v[None] for k, v in patch.groups.items()}, [data.CLASS_NAMES.index(truth[0]), 18])
    np.testing.assert_allclose(relevance, to_10m_grid({k: v[0] for k, v in direct.items()}, "groups"), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(relevance.sum(axis=(1, 2, 3)), sum(v[0].sum(axis=(1, 2, 3)) for v in direct.values()),
                               rtol=1e-4)

    # the GeoTIFF output: heatmaps per class on the study's RGB bands (B04, B03, B02: the first
    # three of the stacked order), in the band files' CRS and transform (read by rasterio)
    assert data.STACKED_BANDS[:3] == ("B04", "B03", "B02")
    with rasterio.open(tif) as out, rasterio.open(folder / f"{folder.name}_B02.tif") as band:
        assert out.count == 2 and (out.height, out.width) == (120, 120)
        assert out.crs == band.crs and out.transform == band.transform
        np.testing.assert_allclose(out.read(), relevance[..., 0] + relevance[..., 1] + relevance[..., 2], rtol=1e-6)

    # one band file of the patch finds its siblings: the same relevance; --bands all sums the 12
    explain(folder / f"{folder.name}_B8A.tif", "--model", models[0], "-c", truth[0], "-c", "18", "--bands", "all",
            "--out", tmp_path / "b")
    np.testing.assert_array_equal(np.load(tmp_path / "b" / f"{folder.name}_lrp.npy"), relevance)
    with rasterio.open(tmp_path / "b" / f"{folder.name}_lrp.tif") as out:
        np.testing.assert_allclose(out.read(), relevance.sum(axis=-1), rtol=1e-5, atol=1e-9)

    # a georeferenced 12-band GeoTIFF (stacked order): same bands, so the same relevance
    stacked = tmp_path / "stacked.tif"
    write_geotiff(stacked, patch.stacked(), patch.geo)
    output = explain(stacked, "--model", models[0], "-c", truth[0], "-c", "Marine waters", "--out", tmp_path / "c")
    np.testing.assert_allclose(np.load(tmp_path / "c" / "stacked_lrp.npy"), relevance, rtol=1e-5, atol=1e-9)
    with rasterio.open(tmp_path / "c" / "stacked_lrp.tif") as out, rasterio.open(folder / f"{folder.name}_B02.tif") as band:
        assert out.crs == band.crs and out.transform == band.transform


def test_all_predicted_and_several_models_in_one_figure(models, tmp_path):
    folder = sample_folders()[1]
    output = explain(folder, "--model", models[1], "--all-predicted", "--out", tmp_path / "p")
    predicted = np.load(tmp_path / "p" / f"{folder.name}_lrp.npy")
    assert predicted.shape[0] >= 1  # sparsemax always predicts a non-empty support
    output = explain(folder, "--compare", *models, "--class", "Arable land", "--preset", "lrp.alpha_1_beta_0",
                     "--per-panel-scale", "--out", tmp_path / "cmp")
    title = figure_title(tmp_path / "cmp" / f"{folder.name}_lrp_compare.png")  # and its PDF
    assert "lrp.alpha_1_beta_0" in title and "bce.keras" in title and "sparsemax.keras" in title
    assert "bce.keras" in output and "sparsemax.keras" in output


def test_the_innvestigate_engine_gives_the_native_relevance(tmp_path):
    # The CLI's wiring of --engine: a small stacked-layout CNN keeps iNNvestigate's graph
    # construction short (tests/explain/test_innvestigate.py compares the engines on K-Branch).
    keras.utils.set_random_seed(2)
    inputs = keras.Input((120, 120, 12), dtype="uint16", name="bands")
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(BandNormalization(STACKED_BANDS)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(19)(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "small.keras")
    folder = sample_folders()[2]
    for engine in ("native", "innvestigate"):
        explain(folder, "--model", tmp_path / "small.keras", "-c", "0", "-c", "11", "--engine", engine,
                "--out", tmp_path / engine)
    native, reference = (np.load(tmp_path / e / f"{folder.name}_lrp.npy") for e in ("native", "innvestigate"))
    for c in range(2):
        assert np.abs(reference[c]).max() > 0
        assert np.abs(native[c] - reference[c]).max() <= 1e-4 * np.abs(reference[c]).max()


def test_bad_explain_inputs_are_one_line_errors_that_write_nothing(models, tmp_path, capsys):
    folder, out = sample_folders()[0], tmp_path / "out"
    common = ["--model", models[0], "--out", out]
    one_line_error(run_mlrs_here(capsys, "explain", folder, "--class", "urban fabrik", *common),
                   "unknown class 'urban fabrik'", "Did you mean 'Urban fabric'?")
    one_line_error(run_mlrs_here(capsys, "explain", folder, "--class", "19", *common), "class index 19 is out of range", "0 to 18")
    one_line_error(run_mlrs_here(capsys, "explain", folder, "--class", "0", "--bands", "rgbn", *common),
                   "unknown band set 'rgbn'", "rgb, 10m, all")
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    one_line_error(run_mlrs_here(capsys, "explain", notes, "--class", "0", *common), "is not a TIFF")
    three = tmp_path / "three.tif"
    write_geotiff(three, np.zeros((120, 120, 3), "uint16"), None)
    one_line_error(run_mlrs_here(capsys, "explain", three, "--class", "0", *common), "has 3 band(s)", "12 bands")
    inputs = keras.Input((120, 120, 12), dtype="uint16")
    x = keras.layers.Conv2D(4, 3)(keras.layers.Rescaling(1 / 1000, name="scale")(inputs))
    odd = keras.Model(inputs, keras.layers.Dense(19)(keras.layers.GlobalAveragePooling2D()(x)))
    odd.save(tmp_path / "odd.keras")
    one_line_error(run_mlrs_here(capsys, "explain", folder, "--class", "0", "--model", tmp_path / "odd.keras", "--out", out),
                   "does not support layer 'scale' (Rescaling)")
    assert not out.exists()
