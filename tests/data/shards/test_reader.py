"""Reading prepared shards: exact shuffling, pooled batch arrays, the portable path, and shards that
no longer match their manifest."""

import json

import numpy as np
import pytest

from helpers import collect, rasterio_groups, reference_labels, which_patch
from keras_mlrs import data
from keras_mlrs.bigearthnet import GROUPS
from keras_mlrs.data.shards import reader as reader_module
from keras_mlrs.data.shards.format import FRAMED_BYTES, KEY_SHIFT, shard_files
from keras_mlrs.data.shards.reader import ShardReader
from keras_mlrs.errors import MlrsError

pytestmark = pytest.mark.backend_free


@pytest.fixture
def five(sample, tmp_path):
    """The 5 usable sample patches in one training split of 3 shards, and each patch's
    pixels and labels read with rasterio and from its JSON, in shard order."""
    out = tmp_path / "five"
    data.prepare(sample, out, split="random", fractions=(1.0, 0.0, 0.0), shard_size=2, workers=1)
    names = data.patch_names(out, "train")
    return out, [(rasterio_groups(sample / n), reference_labels(sample / n)) for n in names]


def test_each_pass_is_an_exact_shuffle_and_held_batches_stay_intact(five):
    """Every pass over the split is a permutation of all its patches (no shuffle buffer),
    a new one each pass, and batches kept by the caller keep their content while later
    batches are read (batch arrays are only reused once released)."""
    out, reference = five
    held = list(data.load(out, "train", batch_size=1, shuffle=True, seed=5, repeat=True).take(40))
    order = [which_patch(x, y, 0, reference) for x, y in held]  # checked after all 40 were read
    passes = [order[i : i + 5] for i in range(0, 40, 5)]
    assert all(sorted(p) == [0, 1, 2, 3, 4] for p in passes)
    assert len({tuple(p) for p in passes}) > 1
    again = [which_patch(x, y, 0, reference) for x, y in data.load(out, "train", batch_size=1, shuffle=True, seed=5, repeat=True).take(40)]
    assert again == order
    unshuffled = [which_patch(x, y, i, reference) for x, y in data.load(out, "train", batch_size=2, shuffle=False)
                  for i in range(len(y))]
    assert unshuffled == [0, 1, 2, 3, 4]  # shard order, as patch_names lists it


def test_cached_and_portable_reads_give_the_same_batches(five, monkeypatch):
    out, reference = five
    cached = [which_patch(x, y, i, reference) for x, y in data.load(out, "train", batch_size=2, shuffle=False, cache=True)
              for i in range(len(y))]
    assert cached == [0, 1, 2, 3, 4]
    ds = data.load(out, "train", batch_size=1, shuffle=True, seed=1, cache=True, repeat=True).take(10)
    order = [which_patch(x, y, 0, reference) for x, y in ds]
    assert sorted(order[:5]) == sorted(order[5:]) == [0, 1, 2, 3, 4]
    monkeypatch.delattr(reader_module.os, "preadv")  # platforms without vectored reads
    portable = [which_patch(x, y, i, reference) for x, y in data.load(out, "train", batch_size=3, shuffle=False)
                for i in range(len(y))]
    assert portable == [0, 1, 2, 3, 4]


def test_shard_reader_reuses_arrays_only_once_released(five):
    out, reference = five
    files = [f for f, _ in shard_files(out, "train")]
    reader = ShardReader(files)
    key = lambda shard, record: (shard << KEY_SHIFT) | record  # noqa: E731
    first = reader.read([key(2, 0), key(0, 1)])
    second = reader.read([key(0, 0), key(1, 1)])
    assert not any(np.shares_memory(a, b) for a, b in zip(first, second))
    assert [which_patch(dict(zip(GROUPS, first[:3])), first[3], i, reference) for i in range(2)] == [4, 1]
    assert [which_patch(dict(zip(GROUPS, second[:3])), second[3], i, reference) for i in range(2)] == [0, 3]
    address = first[0].ctypes.data
    del first
    third = reader.read([key(1, 0), key(2, 0)])
    assert third[0].ctypes.data == address  # the released batch was reused
    assert [which_patch(dict(zip(GROUPS, third[:3])), third[3], i, reference) for i in range(2)] == [2, 4]
    with open(files[1], "r+b") as f:  # shortened after load() checked its size
        f.truncate(FRAMED_BYTES + 100)
    with pytest.raises(MlrsError, match="shorter than its manifest says; prepare the data again"):
        reader.read([key(1, 1)])


def test_truncated_shard_older_format_or_other_class_order_is_refused_in_one_line(sample, tmp_path):
    out = tmp_path / "out"
    data.prepare(sample, out, workers=1)
    shard = next(out.glob("train-*.tfrecord"))
    content = shard.read_bytes()
    shard.write_bytes(content[:-1000])
    with pytest.raises(MlrsError, match=r"has \d+ bytes, not \d+; prepare the data again") as err:
        data.load(out, "train")
    assert "\n" not in str(err.value)
    shard.write_bytes(content)
    assert len(collect(data.load(out, "train", batch_size=2))[1]) == 4
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "version": 1}))
    with pytest.raises(MlrsError, match="format version 1; this keras-mlrs reads version 2. Prepare it again"):
        data.load(out, "train")
    alphabetical = {**manifest, "nomenclature": {"name": "BigEarthNet-19", "classes": sorted(data.CLASS_NAMES)}}
    (out / "manifest.json").write_text(json.dumps(alphabetical))
    with pytest.raises(MlrsError, match="another nomenclature or band layout than BigEarthNet-19"):
        data.load(out, "train")
