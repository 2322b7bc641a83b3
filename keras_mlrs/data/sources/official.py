"""The TFRecord format of the BigEarthNet authors' tools: one ``tf.train.Example`` per patch
with each band as an int64 list at its native size (``B01`` ... ``B12``, ``B8A``), the
multi-hot ``BigEarthNet-19_labels_multi_hot``, the label names ``BigEarthNet-19_labels``,
the CORINE ``original_labels`` and ``patch_name``; a split per file (``train*``, ``val*``,
``test*``). :func:`write_official_tfrecord` writes it, for comparisons and tests."""

from pathlib import Path

import numpy as np

from keras_mlrs.bigearthnet import (
    BAND_GROUP,
    CLASS_NAMES,
    GROUP_SIZES,
    GROUPS,
    NUM_CLASSES,
    SHORT_NAMES,
    split_name,
)
from keras_mlrs.data.patch import is_patch_folder
from keras_mlrs.data.sources.base import Source, batch_records, tfrecord_files
from keras_mlrs.errors import MlrsError

#: The bands of an official record, in the authors' order.
BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
LABELS = "BigEarthNet-19_labels_multi_hot"


class OfficialTFRecords(Source):
    """A TFRecord file, or a folder of ``train*/val*/test*.tfrecord`` files, in the authors'
    format (see the module docstring)."""

    format = "official-tfrecord"

    @staticmethod
    def recognises(path: Path) -> bool:
        return bool(tfrecord_files(path)) and (path.is_file() or not any(is_patch_folder(p) for p in path.iterdir()))

    @property
    def split_scheme(self) -> str:
        return "official TFRecord files (one per split)" if self.path.is_dir() else f"the file {self.path.name}"

    def files(self, split: str) -> list[str]:
        """The files of ``split`` (a single file serves every split)."""
        files = tfrecord_files(self.path)
        if self.path.is_dir():
            prefix = SHORT_NAMES[split_name(split)]
            files = [f for f in files if f.name.lower().startswith(prefix)]
            if not files:
                raise MlrsError(f"{self.path} has no TFRecord file for split '{split}' (expected {prefix}*.tfrecord).")
        return [str(f) for f in files]

    def batches(self, split, batch_size, shuffle=False, seed=None, shuffle_buffer=4096, cache=False, repeat=False,
                drop_remainder=False, shard=None, reshuffle=True):
        import tensorflow as tf  # only tf.data pipelines need TensorFlow

        files = self.files(split)
        ds = tf.data.Dataset.from_tensor_slices(files)
        if shard is not None:
            ds = ds.shard(*shard)
        if shuffle:
            ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=reshuffle)
        ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, buffer_size=1 << 18), cycle_length=min(len(files), 8),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None or not shuffle)
        return batch_records(ds, batch_size, shuffle, seed, shuffle_buffer, cache, repeat, drop_remainder, _parse,
                             reshuffle)


def _parse(serialized):
    """A batch of serialized official records as ``(band groups, multi-hot)``."""
    import tensorflow as tf  # only tf.data pipelines need TensorFlow

    spec = {band: tf.io.FixedLenFeature([GROUP_SIZES[BAND_GROUP[band]] ** 2], tf.int64) for band in BANDS}
    spec[LABELS] = tf.io.FixedLenFeature([NUM_CLASSES], tf.int64)
    parsed = tf.io.parse_example(serialized, spec)
    inputs = {}
    for group, bands in GROUPS.items():
        s = GROUP_SIZES[group]
        stacked = tf.stack([tf.reshape(parsed[b], [-1, s, s]) for b in bands], axis=-1)
        inputs[group] = tf.cast(tf.clip_by_value(stacked, 0, 65535), tf.uint16)
    return inputs, tf.cast(parsed[LABELS], tf.float32)


def write_official_tfrecord(path, patches) -> Path:
    """Write :class:`~keras_mlrs.data.patch.Patch` objects (with labels) as one TFRecord
    file in the authors' format."""
    import tensorflow as tf  # only the TFRecord writer needs TensorFlow

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values, "int64").ravel()))

    def strings(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))

    path = Path(path)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for patch in patches:
            feature = {band: ints(patch.groups[BAND_GROUP[band]][..., GROUPS[BAND_GROUP[band]].index(band)])
                       for band in BANDS}
            feature[LABELS] = ints(patch.labels)
            feature["BigEarthNet-19_labels"] = strings([CLASS_NAMES[i] for i in np.flatnonzero(patch.labels)])
            feature["original_labels"] = strings(patch.label_names)
            feature["patch_name"] = strings([patch.name])
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return path
