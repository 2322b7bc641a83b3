"""The numpy pipeline (``load(..., pipeline="numpy")``, Keras' PyDataset over prepared
shards): the tf.data pipeline's batches without TensorFlow, exact permutations per pass,
and per-process parts that add up to the single-process batches."""

import numpy as np
import pytest

from helpers import replicate_patches
from keras_mlrs import data
from keras_mlrs.errors import MlrsError


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """The 5 usable sample patches, each copied under 5 names, prepared in shards of 8 records."""
    source = replicate_patches(data.sample_path(), tmp_path_factory.mktemp("many") / "v1", 5)
    out = tmp_path_factory.mktemp("shards") / "all"
    data.prepare(source, out, split="random", fractions=(0.8, 0.1, 0.1), shard_size=8, workers=1)
    assert data.read_manifest(out)["splits"]["train"]["records"] == 20
    return out


def _names(batches):
    """Each batch's records, identified by their bands' first bytes and their labels."""
    return [[bytes(np.asarray(x["b10m"][i]).tobytes()[:64]) + np.asarray(y[i]).tobytes() for i in range(len(y))]
            for x, y in batches]


def test_unshuffled_batches_equal_the_tf_data_pipeline(shards):
    for layout in ("groups", "stacked"):
        ours = list(data.load(shards, "train", batch_size=5, shuffle=False, layout=layout, pipeline="numpy"))
        theirs = list(data.load(shards, "train", batch_size=5, shuffle=False, layout=layout, pipeline="tf.data"))
        assert [len(y) for _, y in ours] == [5, 5, 5, 5]
        for (x, y), (tx, ty) in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(y, ty.numpy())
            if layout == "stacked":
                np.testing.assert_array_equal(x, tx.numpy())
            else:
                assert all(x[g].dtype == np.uint16 and np.array_equal(x[g], tx[g].numpy()) for g in data.GROUPS)


def test_each_pass_is_a_seeded_permutation_of_every_record(shards):
    every = data.load(shards, "train", batch_size=20, shuffle=False, pipeline="numpy").keys
    passes = {seed: data.load(shards, "train", batch_size=7, seed=seed, pipeline="numpy") for seed in (0, 1)}
    for batches in passes.values():
        assert sorted(batches.keys.tolist()) == every.tolist()  # every record once
        assert sum(len(y) for _, y in batches) == 20
    again = data.load(shards, "train", batch_size=7, seed=0, pipeline="numpy")
    assert np.array_equal(again.keys, passes[0].keys) and not np.array_equal(passes[0].keys, passes[1].keys)
    assert _names(again) == _names(passes[0])
    dropped = data.load(shards, "train", batch_size=7, seed=0, drop_remainder=True, pipeline="numpy")
    assert len(dropped) == 2 and len(passes[0]) == 3


def test_process_parts_add_up_to_the_single_process_batches_and_tails_spread_evenly(shards):
    whole = _names(data.load(shards, "train", batch_size=8, seed=3, pipeline="numpy"))
    parts = [_names(data.load(shards, "train", batch_size=8, seed=3, process=(2, i))) for i in (0, 1)]
    assert [len(p) for p in parts] == [3, 3] and [len(b) for b in parts[0]] == [4, 4, 2]
    cut = data.load(shards, "train", batch_size=8, seed=3, process=(2, 1), multiple=4)  # 4 devices in all
    assert [len(y) for _, y in cut] == [4, 4, 2]
    odd = data.load(shards, "train", batch_size=6, seed=3, multiple=4, pipeline="numpy")  # 20 = 3 * 6 + 2
    assert [len(y) for _, y in odd] == [6, 6, 6]  # a tail of 2 cannot spread over 4 devices
    assert [a + b for a, b in zip(*parts)] == whole
    with pytest.raises(MlrsError, match="does not split evenly over 3 processes"):
        data.load(shards, "train", batch_size=8, process=(3, 0))
    with pytest.raises(MlrsError, match="0 <= index < count"):
        data.load(shards, "train", batch_size=8, process=(2, 2))


def test_what_only_tf_data_does_is_a_clear_error(shards):
    with pytest.raises(MlrsError, match="repeat=True"):
        data.load(shards, "train", batch_size=8, repeat=True, pipeline="numpy")
    with pytest.raises(MlrsError, match="prepare it first"):
        data.load(data.sample_path(), "train", batch_size=2, split_scheme="random", pipeline="numpy")
