"""The sources on disk: official TFRecords and BigEarthNet v2.0 built here in their exact layouts,
raw archives read on the fly, tars, and what is not BigEarthNet data."""

import json
import os
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
from keras_mlrs.errors import ArchiveError, MlrsError

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


def _tar(tmp_path, name, members):
    """A tar.gz at ``tmp_path/name`` of ``members``: (arcname, bytes) pairs."""
    import io
    import tarfile

    path = tmp_path / name
    with tarfile.open(path, "w:gz") as tar:
        for arcname, content in members:
            info = tarfile.TarInfo(arcname)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def test_a_tar_is_extracted_once_per_process_and_removed_when_it_exits(sample, tmp_path):
    """Opening one tar twice in one process (as prepare then load do) shares one extraction;
    when the process ends (here: a subprocess with its own TMPDIR) nothing of it is left.
    (prepare of a tar: the next test.)"""
    import subprocess
    import sys
    import tarfile

    tar_path = tmp_path / "s.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(sample, arcname="BigEarthNet-S2-Example")
    root = unpack_if_tar(tar_path)
    assert data.detect_format(root) == "v1" and unpack_if_tar(tar_path) == root  # reused
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    code = ("import os, sys; from keras_mlrs.data.sources import open_archive, unpack_if_tar; "
            "archive = open_archive(sys.argv[1], scheme='random'); root = unpack_if_tar(sys.argv[1]); "
            "print(len(os.listdir(sys.argv[2])), len(archive.refs('train')) > 0, root == archive.path)")
    out = subprocess.run([sys.executable, "-c", code, str(tar_path), str(scratch)],
                         capture_output=True, text=True, env={**os.environ, "TMPDIR": str(scratch)}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "True", "True"]  # one extraction while it ran, shared by both calls
    assert list(scratch.iterdir()) == []  # and gone when it exited


def test_unsafe_damaged_or_too_large_tars_are_one_line_errors_that_leave_nothing(tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    escape = _tar(tmp_path, "escape.tar.gz", [("ok/a.txt", b"x"), ("../outside.txt", b"evil")])
    with pytest.raises(ArchiveError, match=r"member '../outside.txt' is refused as unsafe"):
        unpack_if_tar(escape)
    import io
    import tarfile

    link = tmp_path / "link.tar.gz"  # a link to outside the extraction
    with tarfile.open(link, "w:gz") as tar:
        info = tarfile.TarInfo("p/passwd")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info, io.BytesIO())
    with pytest.raises(ArchiveError, match="member 'p/passwd' is refused as unsafe"):
        unpack_if_tar(link)
    big = _tar(tmp_path, "big.tar.gz", [(f"p/{i}.bin", bytes(400_000)) for i in range(5)])  # 2 MB, compresses well
    with pytest.raises(ArchiveError, match=r"expands to more than 0.001 GB"):
        unpack_if_tar(big, max_extract_gb=0.001)
    noisy = _tar(tmp_path, "noisy.tar.gz", [(f"p/{i}.bin", np.random.default_rng(i).bytes(100_000)) for i in range(3)])
    damaged = tmp_path / "damaged.tar.gz"  # cut in its second member
    damaged.write_bytes(noisy.read_bytes()[:150_000])
    with pytest.raises(ArchiveError, match="is a damaged tar archive"):
        unpack_if_tar(damaged)
    header_only = tmp_path / "cut.tar.gz"  # cut within its gzip header: tarfile.is_tarfile raises EOFError
    header_only.write_bytes(escape.read_bytes()[:20])
    with pytest.raises(ArchiveError, match="is a damaged tar archive"):
        unpack_if_tar(header_only)
    assert list(scratch.iterdir()) == [] and not (tmp_path / "outside.txt").exists()
    with pytest.raises(ArchiveError, match="expands to more than"):  # the same through prepare
        data.prepare(big, tmp_path / "out", max_extract_gb=0.001)
    assert list(scratch.iterdir()) == []


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
