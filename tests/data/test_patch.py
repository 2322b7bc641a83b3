"""Reading one patch (folder, band file, multi-band GeoTIFF) against rasterio, and the stacked layout."""

import numpy as np
import pytest
import rasterio

from helpers import header_only_tiff, rasterio_groups, reference_labels
from keras_mlrs import data
from keras_mlrs.bigearthnet import GROUPS, STACKED_BANDS
from keras_mlrs.errors import PatchError

pytestmark = pytest.mark.backend_free


def test_read_patch_equals_rasterio_and_the_json_labels(sample):
    for folder in sorted(p for p in sample.iterdir() if p.is_dir()):
        patch = data.read_patch(folder)
        expected = rasterio_groups(folder)
        for g in GROUPS:
            np.testing.assert_array_equal(patch.groups[g], expected[g])
            assert patch.groups[g].dtype == np.uint16
        np.testing.assert_array_equal(patch.labels, reference_labels(folder))
        with rasterio.open(folder / f"{folder.name}_B02.tif") as src:
            assert patch.geo.epsg == src.crs.to_epsg()
            assert np.allclose(patch.geo.transform, src.transform.to_gdal())


def test_read_patch_from_one_band_file_finds_its_siblings(sample):
    folder = sample / "S2A_MSIL2A_20170613T101031_87_48"
    a = data.read_patch(folder / f"{folder.name}_B8A.tif")
    b = data.read_patch(folder)
    for g in GROUPS:
        np.testing.assert_array_equal(a.groups[g], b.groups[g])


def test_read_multiband_geotiff_with_documented_band_order(sample, tmp_path):
    folder = sample / "S2A_MSIL2A_20170613T101031_87_48"
    patch = data.read_patch(folder)
    stacked = patch.stacked("nearest")
    path = tmp_path / "patch.tif"
    with rasterio.open(folder / f"{folder.name}_B02.tif") as src:
        profile = dict(src.profile, count=12)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(stacked, -1, 0))
    read = data.read_patch(path)
    for g in GROUPS:  # nearest-upsampled then block-averaged: the original pixels come back
        np.testing.assert_array_equal(read.groups[g], patch.groups[g])
    assert read.geo == patch.geo
    assert read.labels is None


def test_stacked_layout_is_pixel_repetition_in_stacked_band_order(sample):
    patch = data.read_patch(sample / "S2A_MSIL2A_20170613T101031_87_48")
    stacked = patch.stacked("nearest")
    assert stacked.shape == (120, 120, 12) and stacked.dtype == np.uint16
    np.testing.assert_array_equal(stacked[..., :4], patch.groups["b10m"])
    np.testing.assert_array_equal(stacked[..., 4:10], patch.groups["b20m"].repeat(2, 0).repeat(2, 1))
    np.testing.assert_array_equal(stacked[..., 10:], patch.groups["b60m"].repeat(6, 0).repeat(6, 1))
    assert STACKED_BANDS[4] == "B05" and STACKED_BANDS[-1] == "B09"
    bilinear = patch.stacked("bilinear")
    assert bilinear.shape == (120, 120, 12) and bilinear.dtype == np.uint16
    np.testing.assert_array_equal(bilinear[..., :4], patch.groups["b10m"])
    assert abs(float(bilinear[..., 4].mean()) - float(patch.groups["b20m"][..., 0].mean())) < 5.0


def test_bilinear_upsampling_matches_tensorflow_to_the_rounding(sample):
    """The stacked layout's bilinear upsampling (NumPy, for one patch and for batches alike)
    against tf.image.resize (half-pixel centres), on the real 20 m and 60 m bands."""
    import tensorflow as tf

    patches = [data.read_patch(p) for p in sorted(sample.iterdir()) if p.is_dir()]
    groups = {g: np.stack([p.groups[g] for p in patches]) for g in GROUPS}
    ours = data.stack_groups(groups, "bilinear")
    at = 0
    for group, bands in GROUPS.items():
        expected = tf.image.resize(tf.cast(groups[group], tf.float32), (120, 120), method="bilinear")
        expected = np.clip(np.rint(expected.numpy()), 0, 65535).astype(np.uint16)
        got = ours[..., at : at + len(bands)]
        at += len(bands)
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1, group  # a half rounded either way
        assert (got == expected).mean() > 0.999, group
    np.testing.assert_array_equal(ours[0], patches[0].stacked("bilinear"))


def test_a_header_claiming_a_huge_raster_is_refused_before_allocating(tmp_path):
    """The reader checks the header against what a BigEarthNet band or 12-band patch can be
    before it allocates anything (tifffile would allocate the claimed raster first)."""
    import tracemalloc

    cases = [("huge.tif", dict(width=30000, height=30000), "claims 30000 × 30000 pixels"),
             ("bands.tif", dict(width=120, height=120, samples=500), "claims 500 bands"),
             ("tiles.tif", dict(width=120, height=120, tile=60000), "claims 60000 × 60000 pixel tiles")]
    for name, claims, message in cases:
        path = header_only_tiff(tmp_path / name, **claims)
        assert path.stat().st_size < 300
        tracemalloc.start()
        with pytest.raises(PatchError, match=message):
            data.read_patch(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 10 * 2**20, peak  # well under the claimed raster (1.8 GB for the first)


def test_float_geotiffs_are_read_only_when_nothing_is_lost(sample, tmp_path):
    """Whole-number floats are digital numbers (one warning); reflectances in 0-1 or NaN would
    change the prediction silently if rounded, so they are refused with the fix."""
    import tifffile

    folder = sorted(p for p in sample.iterdir() if p.is_dir())[0]
    stacked = data.read_patch(folder).stacked()
    reference = tmp_path / "dn.tif"
    tifffile.imwrite(reference, stacked, photometric="minisblack", planarconfig="contig")
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, stacked.astype("float32"), photometric="minisblack", planarconfig="contig")
    with pytest.warns(UserWarning, match="values are whole numbers, read as uint16 digital numbers"):
        patch = data.read_patch(whole)
    expected = data.read_patch(reference)
    assert all(np.array_equal(patch.groups[g], expected.groups[g]) for g in GROUPS)
    for name, values, message in (("reflectance.tif", stacked / 10000.0, "not Sentinel-2 L2A digital numbers"),
                                  ("nan.tif", np.where(stacked > 500, np.nan, stacked).astype("float32"), "NaN"),
                                  ("negative.tif", stacked.astype("float32") - 1e4, "not Sentinel-2 L2A")):
        tifffile.imwrite(tmp_path / name, values.astype("float32"), photometric="minisblack", planarconfig="contig")
        with pytest.raises(PatchError, match=message):
            data.read_patch(tmp_path / name)
