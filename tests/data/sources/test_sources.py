"""The sources on disk: official TFRecords and BigEarthNet v2.0 built here in their exact layouts,
raw archives read on the fly, tars, and what is not BigEarthNet data."""

import json
import shutil

import numpy as np
import pytest

from helpers import (
    SAMPLE_SNOW,
    SAMPLE_TEST,
    SAMPLE_TRAIN,
    collect,
    rasterio_groups,
    reference_labels,
    sort_by_labels_and_pixels,
)
from keras_mlrs import data
from keras_mlrs.bigearthnet import GROUPS, STACKED_BANDS
from keras_mlrs.data.patch import Patch
from keras_mlrs.data.sources import unpack_if_tar, write_official_tfrecord
from keras_mlrs.errors import MlrsError

pytestmark = pytest.mark.backend_free


def reference_patch(folder) -> Patch:
    """A patch as rasterio and the JSON read it, independent of the package's readers."""
    labels = json.loads((folder / f"{folder.name}_labels_metadata.json").read_text())["labels"]
    return Patch(folder.name, rasterio_groups(folder), reference_labels(folder), label_names=labels)


def test_official_tfrecord_format_written_and_loaded(sample, tmp_path):
    """The writer's records hold every field of the authors' format (read back as plain
    tf.train.Example protos), and the loader reads them to the raw archive's tensors."""
    import tensorflow as tf

    official = tmp_path / "official"
    official.mkdir()
    write_official_tfrecord(official / "train.tfrecord", [reference_patch(sample / n) for n in sorted(SAMPLE_TRAIN)])
    write_official_tfrecord(official / "test.tfrecord", [reference_patch(sample / n) for n in sorted(SAMPLE_TEST)])
    for record, name in zip(tf.data.TFRecordDataset(str(official / "train.tfrecord")), sorted(SAMPLE_TRAIN)):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        folder = sample / name
        for group, bands in GROUPS.items():
            for i, band in enumerate(bands):
                np.testing.assert_array_equal(feature[band].int64_list.value, rasterio_groups(folder)[group][..., i].ravel())
        y = reference_labels(folder)
        assert list(feature["BigEarthNet-19_labels_multi_hot"].int64_list.value) == y.astype(int).tolist()
        assert [v.decode() for v in feature["BigEarthNet-19_labels"].bytes_list.value] == [
            data.CLASS_NAMES[i] for i in np.flatnonzero(y)]
        assert feature["patch_name"].bytes_list.value == [name.encode()]
        assert len(feature["original_labels"].bytes_list.value) >= 1
    assert data.detect_format(official) == "official-tfrecord"
    a = sort_by_labels_and_pixels(*collect(data.load(official, "train", batch_size=3, shuffle=False)))
    b = sort_by_labels_and_pixels(*collect(data.load(sample, "train", batch_size=3, shuffle=False)))
    for g in GROUPS:
        np.testing.assert_array_equal(a[0][g], b[0][g])
    np.testing.assert_array_equal(a[1], b[1])


def _make_v2(sample, root):
    """The exact BigEarthNet v2.0 layout: <tile>/<patch_id>/<patch_id>_<band>.tif + parquet metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, snow = [], []
    splits = ["train", "validation", "test", "train", "validation"]
    for i, folder in enumerate(sorted(p for p in sample.iterdir() if p.is_dir())):
        patch_id = f"S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_{i:02d}_{i:02d}"
        tile = root / "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
        dst = tile / patch_id
        dst.mkdir(parents=True)
        for band in STACKED_BANDS:
            shutil.copy(folder / f"{folder.name}_{band}.tif", dst / f"{patch_id}_{band}.tif")
        labels = [data.CLASS_NAMES[k] for k in np.flatnonzero(reference_labels(folder))]
        if folder.name == SAMPLE_SNOW:
            snow.append(patch_id)
        rows.append({"patch_id": patch_id, "labels": labels, "split": splits[i % 5], "source": folder.name})
    pq.write_table(pa.Table.from_pylist(rows), root / "metadata.parquet")
    pq.write_table(pa.Table.from_pylist([{"patch_id": p} for p in snow]),
                   root / "metadata_for_patches_with_snow_cloud_or_shadow.parquet")
    return rows


def test_v2_layout_with_parquet_metadata(sample, tmp_path):
    root = tmp_path / "reben"
    rows = _make_v2(sample, root)
    assert data.detect_format(root) == "v2"
    m = data.prepare(root, tmp_path / "out", workers=1)
    assert m["source_format"] == "v2"
    assert "snow" in next(v for k, v in m["skipped"].items())
    kept = [r for r in rows if r["source"] != SAMPLE_SNOW]
    for split in ("train", "validation", "test"):
        expected = [r for r in kept if r["split"] == split]
        assert m["splits"].get(split, {"records": 0})["records"] == len(expected)
    got = sort_by_labels_and_pixels(*collect(data.load(tmp_path / "out", "train", batch_size=2, shuffle=False)))
    train_sources = [r["source"] for r in kept if r["split"] == "train"]
    ref = [rasterio_groups(sample / s) for s in train_sources]
    want = sort_by_labels_and_pixels(
        {g: np.stack([r[g] for r in ref]) for g in GROUPS},
        np.stack([reference_labels(sample / s) for s in train_sources]),
    )
    for g in GROUPS:
        np.testing.assert_array_equal(got[0][g], want[0][g])
    np.testing.assert_array_equal(got[1], want[1])


def test_raw_archive_loads_the_same_as_shards(sample, tmp_path):
    data.prepare(sample, tmp_path / "out", workers=1)
    a = sort_by_labels_and_pixels(*collect(data.load(tmp_path / "out", "train", batch_size=4, shuffle=False)))
    b = sort_by_labels_and_pixels(*collect(data.load(sample, "train", batch_size=4, shuffle=False)))
    for g in GROUPS:
        np.testing.assert_array_equal(a[0][g], b[0][g])
    np.testing.assert_array_equal(a[1], b[1])


def test_archives_module_unpacks_tar(sample, tmp_path):
    import tarfile

    tar_path = tmp_path / "s.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(sample, arcname="BigEarthNet-S2-Example")
    root = unpack_if_tar(tar_path)
    assert data.detect_format(root) == "v1"


def test_empty_folder_and_non_archives_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MlrsError, match="empty"):
        data.prepare(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("hello")
    with pytest.raises(MlrsError, match="not a BigEarthNet archive"):
        data.prepare(tmp_path / "docs", tmp_path / "out")
    with pytest.raises(MlrsError, match="does not exist"):
        data.load(tmp_path / "nowhere", "train")
    not_tiff = tmp_path / "x.tif"
    not_tiff.write_text("plain text")
    with pytest.raises(MlrsError, match="not a TIFF"):
        data.read_patch(not_tiff)
