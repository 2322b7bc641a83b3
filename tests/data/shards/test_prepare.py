"""prepare: the sample to shards and manifest, the record layout read back with numpy, bad patches,
output folders it must not touch, interruption and parallel workers."""

import json
import shutil

import numpy as np
import pytest

from helpers import (
    SAMPLE_SNOW,
    SAMPLE_TRAIN,
    one_line_error,
    rasterio_groups,
    reference_labels,
    replicate_patches,
)
from keras_mlrs import data
from keras_mlrs.bigearthnet import GROUPS
from keras_mlrs.data.shards.format import sha256, shard_files
from keras_mlrs.errors import MlrsError

pytestmark = pytest.mark.backend_free


def test_sample_prepare_official_splits_and_manifest(sample, tmp_path):
    manifest = data.prepare(sample, tmp_path / "out", workers=1)
    assert manifest["split_scheme"] == "official BigEarthNet-19 lists"
    assert set(manifest["splits"]) == {"train", "test"}
    assert manifest["splits"]["train"]["records"] == 4
    assert manifest["splits"]["test"]["records"] == 1
    assert "seasonal snow" in manifest["skipped"][SAMPLE_SNOW]
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk == manifest
    for entry in manifest["splits"].values():
        for s in entry["shards"]:
            assert sha256(tmp_path / "out" / s["file"]) == s["sha256"]
    expected_counts = sum(reference_labels(sample / n) for n in SAMPLE_TRAIN)
    assert list(manifest["splits"]["train"]["class_counts"].values()) == expected_counts.astype(int).tolist()
    with pytest.raises(MlrsError, match="no 'validation' split"):
        data.load(tmp_path / "out", "validation")


def test_shards_are_plain_tfrecords_of_fixed_length_records(sample, tmp_path):
    """Any TFRecord reader (CRCs checked) reads our shards; each record, decoded here with
    numpy from the documented layout, holds the patch's pixels, labels and name."""
    import tensorflow as tf

    data.prepare(sample, tmp_path / "out", workers=1)
    files = [file for file, _ in shard_files(tmp_path / "out", "train")]
    records = [r.numpy() for r in tf.data.TFRecordDataset(files)]
    assert len(records) == 4 and {len(r) for r in records} == {52 + 160000 + 128}
    names = []
    for record in records:
        labels = np.frombuffer(record[:52], "<u2")
        at, groups = 52, {}
        for g, (size, count) in {"b10m": (120, 4), "b20m": (60, 6), "b60m": (20, 2)}.items():
            n = size * size * count * 2
            groups[g] = np.frombuffer(record[at : at + n], "<u2").reshape(size, size, count)
            at += n
        name = record[at:].rstrip(b"\0").decode()
        names.append(name)
        expected = rasterio_groups(sample / name)
        for g in GROUPS:
            np.testing.assert_array_equal(groups[g], expected[g])
        np.testing.assert_array_equal(labels[:19], reference_labels(sample / name))
        assert not labels[19:].any()
    assert set(names) == SAMPLE_TRAIN
    assert data.patch_names(tmp_path / "out", "train") == names


@pytest.fixture
def damaged(sample, tmp_path):
    """A copy of the sample with one defect per patch."""
    root = tmp_path / "damaged"
    shutil.copytree(sample, root)
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    defects = {}
    p = root / names[0]
    tif = p / f"{names[0]}_B02.tif"
    tif.write_bytes(tif.read_bytes()[:5000])
    defects[names[0]] = "truncated"
    p = root / names[1]
    (p / f"{names[1]}_B11.tif").unlink()
    defects[names[1]] = "missing band file"
    p = root / names[2]
    shutil.copy(p / f"{names[2]}_B01.tif", p / f"{names[2]}_B05.tif")
    defects[names[2]] = "has shape (20, 20), expected (60, 60)"
    p = root / names[3]
    (p / f"{names[3]}_labels_metadata.json").write_text("{not json")
    defects[names[3]] = "unreadable labels JSON"
    p = root / names[4]
    meta = p / f"{names[4]}_labels_metadata.json"
    meta.write_text(json.dumps({"labels": ["Pastures", "Moon craters"]}))
    defects[names[4]] = "label 'Moon craters'"
    return root, defects


def test_bad_patches_are_skipped_and_listed(damaged, tmp_path):
    root, defects = damaged
    with pytest.raises(MlrsError, match=r"every patch of .* was skipped \(\d+ in all, e.g. "):
        data.prepare(root, tmp_path / "none", split="random", workers=1)  # every usable patch is damaged
    assert not (tmp_path / "none").exists()  # and nothing that looks like a start is left
    good = next(p for p in sorted(data.sample_path().iterdir()) if p.is_dir() and p.name in SAMPLE_TRAIN)
    copy = root / f"{good.name}_copy"
    copy.mkdir()
    for f in good.iterdir():
        shutil.copy(f, copy / f.name.replace(good.name, copy.name))
    m = data.prepare(root, tmp_path / "out", split="random", workers=1)
    for name, reason in defects.items():
        assert reason in m["skipped"][name], (name, m["skipped"].get(name))
    assert sum(e["records"] for e in m["splits"].values()) == 1  # the one intact patch
    with pytest.raises(MlrsError, match="`strict=True` stops at the first bad patch"):
        data.prepare(root, tmp_path / "strict", split="random", workers=1, strict=True)


def test_a_patch_whose_name_is_not_utf8_is_skipped_not_fatal(sample, tmp_path):
    import os

    root = tmp_path / "archive"
    shutil.copytree(sample, root)
    victim = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name in SAMPLE_TRAIN)[0]
    odd = os.fsdecode(b"S2A_\xff\xfe_" + victim.encode()[-8:])  # bytes a file system keeps, not UTF-8
    os.rename(root / victim, root / odd)
    for f in (root / odd).iterdir():
        os.rename(f, root / odd / f.name.replace(victim, odd))
    m = data.prepare(root, tmp_path / "out", split="random", workers=1)
    assert "not valid UTF-8" in m["skipped"]["S2A_\\xff\\xfe_" + victim[-8:]]
    assert sum(e["records"] for e in m["splits"].values()) == 4  # the other usable patches


def test_output_folder_holding_another_dataset_is_refused(sample, tmp_path):
    data.prepare(sample, tmp_path / "out", workers=1)
    with pytest.raises(MlrsError, match="already holds a different dataset"):
        data.prepare(sample, tmp_path / "out", split="random", workers=1)
    again = data.prepare(sample, tmp_path / "out", workers=1)  # same arguments: fine, nothing rewritten
    assert again["splits"]["train"]["records"] == 4
    m = data.prepare(sample, tmp_path / "out", split="random", workers=1, overwrite=True)
    assert "random" in m["split_scheme"]


def test_overwrite_never_deletes_a_folder_keras_mlrs_did_not_write(sample, tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    with pytest.raises(MlrsError, match="already holds other files"):
        data.prepare(sample, precious, workers=1, overwrite=True)
    assert (precious / "chapter1.tex").exists()




def test_verify_catches_a_same_size_corruption_and_a_rerun_rewrites_it(sample, tmp_path, capsys):
    """A shard with one byte changed keeps its size, so only the manifest's SHA-256 shows it:
    `mlrs data verify` names it (exit 1), and rerunning prepare rewrites it (and a truncated
    one) to the original bytes instead of keeping them."""
    from helpers import run_mlrs_here

    out = tmp_path / "out"
    args = dict(split="random", seed=0, shard_size=2, workers=1)
    manifest = data.prepare(sample, out, **args)
    shards = [s for entry in manifest["splits"].values() for s in entry["shards"]]
    assert data.verify(out) == {"shards": len(shards), "records": 5, "bad": []}
    ok = run_mlrs_here(capsys, "data", "verify", out)
    assert ok.returncode == 0 and f"all {len(shards)} shard(s) match" in ok.stdout
    first, second = out / shards[0]["file"], out / shards[1]["file"]
    original = first.read_bytes(), second.read_bytes()
    flipped = bytearray(original[0])
    flipped[len(flipped) // 2] ^= 0xFF
    first.write_bytes(bytes(flipped))
    second.write_bytes(original[1][:-100])  # truncated
    report = data.verify(out)
    assert [(b["file"], "SHA-256" in b["problem"]) for b in report["bad"]] == [(first.name, True), (second.name, False)]
    bad = run_mlrs_here(capsys, "data", "verify", out)
    one_line_error(bad, "2 of", "failed verification; rerun mlrs data prepare")
    assert f"bad shard {first}" in bad.stdout and f"bad shard {second}" in bad.stdout
    data.prepare(sample, out, **args)
    assert (first.read_bytes(), second.read_bytes()) == original
    assert data.verify(out)["bad"] == []


def test_a_second_prepare_into_a_folder_being_written_is_refused(sample, tmp_path):
    """While one prepare writes `out` (it holds the folder's lock, as here), a second one
    into the same folder refuses in one line instead of removing the first one's shards."""
    from keras_mlrs.files import folder_lock

    out = tmp_path / "out"
    data.prepare(sample, out, split="random", workers=1)
    (out / "manifest.json").unlink()  # as while the first one is still writing
    theirs = out / ".train-00000.tfrecord.tmp-99999"  # the first one's shard in progress
    theirs.write_bytes(b"half")
    with folder_lock(out, "prepare"):
        with pytest.raises(MlrsError, match=r"is in use by process \d+ \(prepare\)"):
            data.prepare(sample, out, split="random", workers=1)
        with pytest.raises(MlrsError, match="is in use by process"):
            data.prepare(sample, out, split="random", seed=5, workers=1, overwrite=True)
    assert theirs.read_bytes() == b"half" and (out / "plan.json").is_file()


def test_parallel_workers_write_the_same_shards_as_one(sample, tmp_path):
    archive = replicate_patches(sample, tmp_path / "mid", copies=4)  # 20 patches
    one = data.prepare(archive, tmp_path / "one", split="random", shard_size=5, workers=1)
    two = data.prepare(archive, tmp_path / "two", split="random", shard_size=5, workers=2)
    for split, entry in one["splits"].items():
        assert two["splits"][split]["shards"] == entry["shards"]
