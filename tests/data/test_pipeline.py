"""The loader: prepared shards to the GeoTIFF pixels, seeded order, the stacked layout, sharding."""

import numpy as np
import pytest

from helpers import (
    SAMPLE_TEST,
    SAMPLE_TRAIN,
    collect,
    rasterio_groups,
    reference_labels,
    sort_by_labels_and_pixels,
)
from keras_mlrs import data
from keras_mlrs.bigearthnet import GROUPS

pytestmark = pytest.mark.backend_free


def test_prepared_shards_load_to_the_geotiff_pixels(sample, tmp_path):
    data.prepare(sample, tmp_path / "out", workers=1)
    groups, ys = collect(data.load(tmp_path / "out", "train", batch_size=3, shuffle=False))
    assert groups["b10m"].shape == (4, 120, 120, 4) and groups["b10m"].dtype == np.uint16
    expected = [rasterio_groups(sample / n) for n in sorted(SAMPLE_TRAIN)]
    exp_groups = {g: np.stack([e[g] for e in expected]) for g in GROUPS}
    exp_ys = np.stack([reference_labels(sample / n) for n in sorted(SAMPLE_TRAIN)])
    got, got_y = sort_by_labels_and_pixels(groups, ys)
    want, want_y = sort_by_labels_and_pixels(exp_groups, exp_ys)
    for g in GROUPS:
        np.testing.assert_array_equal(got[g], want[g])
    np.testing.assert_array_equal(got_y, want_y)


def test_random_split_and_seeded_order_is_deterministic(sample, tmp_path):
    m = data.prepare(sample, tmp_path / "r", split="random", seed=3, fractions=(0.6, 0.2, 0.2), workers=1)
    assert set(m["splits"]) == {"train", "validation", "test"}
    assert sum(e["records"] for e in m["splits"].values()) == 5
    assert m["split_scheme"].startswith("random (seed 3")

    def order():
        return [y.numpy().tolist() for _, y in data.load(tmp_path / "r", "train", batch_size=1, seed=7)]

    assert order() == order()


def test_stacked_layout_from_the_loader(sample, tmp_path):
    data.prepare(sample, tmp_path / "out", workers=1)
    for x, _ in data.load(tmp_path / "out", "test", batch_size=1, layout="stacked"):
        assert x.shape == (1, 120, 120, 12) and x.dtype.name == "uint16"
        patch = data.read_patch(sample / next(iter(SAMPLE_TEST)))
        np.testing.assert_array_equal(x.numpy()[0], patch.stacked())


def test_distributed_file_sharding_reads_disjoint_parts(sample, tmp_path):
    data.prepare(sample, tmp_path / "out", split="random", fractions=(1.0, 0.0, 0.0), shard_size=1, workers=1)
    whole = collect(data.load(tmp_path / "out", "train", batch_size=1, shuffle=False))[1]
    parts = [collect(data.load(tmp_path / "out", "train", batch_size=1, shuffle=False, shard=(2, i)))[1] for i in (0, 1)]
    assert len(parts[0]) + len(parts[1]) == len(whole) == 5
    assert len(parts[0]) and len(parts[1])
    rows = sorted(map(tuple, np.concatenate(parts).tolist()))
    assert rows == sorted(map(tuple, whole.tolist()))
    import tensorflow as tf

    ds = data.load(tmp_path / "out", "train", batch_size=1)
    assert ds.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.FILE
    # what tf.distribute applies to the dataset of each of 2 workers: a FILE auto-shard
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    auto = [collect(_AutoShardDataset(ds, 2, i))[1] for i in (0, 1)]
    assert len(auto[0]) + len(auto[1]) == 5 and len(auto[0]) and len(auto[1])
    assert sorted(map(tuple, np.concatenate(auto).tolist())) == sorted(map(tuple, whole.tolist()))


def test_reshuffle_false_gives_every_pass_the_first_passs_order(prepared):
    """`mlrs train` loads each epoch anew (seeded by its number) with ``reshuffle=False``: a
    second pass over one epoch's dataset (Keras under JAX reads a batch before a loaded
    model's first epoch) gives the first pass's order. By default each pass reshuffles."""
    def order(ds):
        return [int(np.asarray(x["b10m"], np.int64).sum()) for x, _ in ds]

    fixed = data.load(prepared, "train", batch_size=1, seed=3, reshuffle=False, pipeline="tf.data")
    first = order(fixed)
    assert len(first) == 3 and all(order(fixed) == first for _ in range(4))
    anew = data.load(prepared, "train", batch_size=1, seed=3, pipeline="tf.data")
    assert any(order(anew) != order(anew) for _ in range(4))
