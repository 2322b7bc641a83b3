"""Reading prepared shards: :class:`ShardReader` reads records by key, straight into the
arrays of a batch, and :class:`PreparedShards` is the source that turns a prepared folder
into batches.

The ``tf.data`` pipeline carries record keys (``shard << KEY_SHIFT | record``), 8 bytes each,
so each pass over a split is shuffled exactly (a uniform permutation of the whole split) with
a buffer of keys, not of records; each batch of keys is read by one ``tf.numpy_function``.
"""

import os
import sys
import threading
from pathlib import Path

import numpy as np

from keras_mlrs.bigearthnet import CLASS_NAMES, GROUP_SIZES, GROUPS, NUM_CLASSES, split_name
from keras_mlrs.data.patch import Patch
from keras_mlrs.data.shards.format import (
    FRAMED_BYTES,
    HEAD_BYTES,
    KEY_SHIFT,
    NAME_BYTES,
    NAME_OFFSET,
    PAYLOAD_OFFSET,
    TAIL_BYTES,
    read_manifest,
    shard_files,
)
from keras_mlrs.data.sources import Source
from keras_mlrs.errors import MlrsError


def _aligned_uint16(shape) -> np.ndarray:
    """An uninitialised uint16 array whose data starts on a 64-byte boundary, which lets
    TensorFlow wrap it as a tensor without copying it."""
    nbytes = int(np.prod(shape)) * 2
    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start : start + nbytes].view("<u2").reshape(shape)


class _Batch:
    """The arrays of one batch and, for each of its records, the byte views that a read
    of the framed record fills, in record order."""

    def __init__(self, size: int):
        self.head = np.empty((size, HEAD_BYTES), np.uint8)
        self.tail = np.empty((size, TAIL_BYTES), np.uint8)
        self.groups = [_aligned_uint16((size, s, s, len(GROUPS[g]))) for g, s in GROUP_SIZES.items()]
        arrays = (self.head, *self.groups, self.tail)
        self.parts = [[memoryview(a[i]).cast("B") for a in arrays] for i in range(size)]
        self.claimed = False

    def free(self) -> bool:
        """Not being filled, and no group array referenced from outside (a tensor that
        wraps an array holds a reference to it until the tensor is freed)."""
        # references counted below: self.groups, the loop variable, getrefcount's argument
        return not self.claimed and all(sys.getrefcount(a) <= 3 for a in self.groups)


class _BatchPool:
    """Batches of arrays kept for reuse, at most ``size`` of them, shared by every reader
    of the process: TensorFlow keeps the Python function of a dataset alive for the
    life of the process, so a pool per reader would never be freed."""

    def __init__(self, size: int):
        self.size = size
        self.batches: list[_Batch] = []
        self.lock = threading.Lock()

    def claim(self, records: int) -> _Batch:
        with self.lock:
            batch = next((b for b in self.batches if len(b.parts) == records and b.free()), None)
            if batch is None:
                batch = _Batch(records)
                if len(self.batches) >= self.size:  # make room by dropping a free batch of another size
                    idle = next((b for b in self.batches if b.free()), None)
                    if idle is not None:
                        self.batches.remove(idle)
                if len(self.batches) < self.size:
                    self.batches.append(batch)
            batch.claimed = True
            return batch


#: six batches cover the reads in flight, the prefetched batches and the one in use
_POOL = _BatchPool(6)


class ShardReader:
    """Reads records of shard files, by key, straight into the arrays of a batch.

    Each record is one positional vectored read (``preadv``) into the batch's band-group
    arrays, so its bytes are copied once, from the page cache, and never again: the
    arrays become tensors without a copy. The arrays of a batch are reused once nothing
    references them any more, so a steady training loop allocates (and page-faults)
    nothing. Within a batch, records are read in file order, which keeps disk reads
    sequential where the keys allow.

    Keys are ``shard << KEY_SHIFT | record``, ``shard`` indexing ``files``. Safe to call
    from several threads at once.
    """

    def __init__(self, files):
        self.files = [str(f) for f in files]

    def read(self, keys, pooled: bool = True) -> tuple:
        """``(b10m, b20m, b60m, labels)`` of the records ``keys``: uint16 band groups
        ``[B, s, s, bands]`` and float32 multi-hot labels ``[B, 19]``. ``pooled`` arrays are
        reused once nothing references them (TensorFlow's tensors do reference them); give
        ``pooled=False`` to a consumer that may keep their memory without a reference (a
        backend that wraps host memory), for arrays of their own."""
        keys = np.asarray(keys, np.int64)
        batch = _POOL.claim(len(keys)) if pooled else _Batch(len(keys))
        try:
            order = np.argsort(keys, kind="stable")
            shards = keys[order] >> KEY_SHIFT
            for shard in np.unique(shards):
                slots = order[shards == shard]
                offsets = (keys[slots] & ((1 << KEY_SHIFT) - 1)) * FRAMED_BYTES
                self._fill(self.files[shard], offsets.tolist(), [batch.parts[i] for i in slots])
            at = PAYLOAD_OFFSET
            labels = batch.head[:, at : at + 2 * NUM_CLASSES].view("<u2").astype(np.float32)
            return (*batch.groups, labels)
        finally:  # the returned tuple now references the arrays, which keeps the batch taken
            batch.claimed = False

    @staticmethod
    def _fill(path: str, offsets: list, parts: list):
        if hasattr(os, "preadv"):
            fd = os.open(path, os.O_RDONLY)
            try:
                done = [os.preadv(fd, views, offset) for offset, views in zip(offsets, parts)]
            finally:
                os.close(fd)
        else:  # no vectored reads (Windows): read each part
            with open(path, "rb", buffering=0) as f:
                done = []
                for offset, views in zip(offsets, parts):
                    f.seek(offset)
                    done.append(sum(f.readinto(view) for view in views))
        if any(n != FRAMED_BYTES for n in done):
            raise MlrsError(f"shard {path} is shorter than its manifest says; prepare the data again (`keras_mlrs.data.prepare()`).")


def patch_names(path, split: str) -> list[str]:
    """The names of the patches in ``split`` of a prepared folder, in shard order (the
    order of ``load(..., shuffle=False)``)."""
    names = []
    for file, records in shard_files(path, split):
        with open(file, "rb") as f:
            for i in range(records):
                f.seek(i * FRAMED_BYTES + NAME_OFFSET)
                names.append(f.read(NAME_BYTES).rstrip(b"\0").decode())
    return names


class PreparedShards(Source):
    """A folder written by :func:`keras_mlrs.data.prepare` (shards and ``manifest.json``),
    whose manifest is checked when it is opened."""

    format = "prepared"

    def __init__(self, path):
        super().__init__(path)
        self.manifest = read_manifest(self.path)

    @staticmethod
    def recognises(path: Path) -> bool:
        return path.is_dir() and (path / "manifest.json").exists()

    @property
    def split_scheme(self) -> str:
        return self.manifest["split_scheme"]

    def count(self, split: str) -> int:
        entry = self.manifest["splits"].get(split_name(split))
        return entry["records"] if entry else 0

    def names(self, split: str) -> list[str]:
        return patch_names(self.path, split_name(split))

    def patch(self, split: str, name: str) -> Patch | None:
        names = self.names(split)
        if name not in names:
            return None
        *groups, labels = self.reader(split).read(self.keys(split)[[names.index(name)]], pooled=False)
        return Patch(name, {g: a[0] for g, a in zip(GROUPS, groups)}, labels[0])

    def class_counts(self, split: str) -> list[int]:
        """Patches per class in ``split``, as the manifest counted them when writing."""
        entry = self.manifest["splits"].get(split_name(split))
        return [int(entry["class_counts"][c]) for c in CLASS_NAMES] if entry else [0] * NUM_CLASSES

    def reader(self, split) -> ShardReader:
        """The reader of ``split``'s shards, whose keys are :meth:`keys`."""
        return ShardReader([file for file, _ in shard_files(self.path, split_name(split))])

    def keys(self, split) -> np.ndarray:
        """The keys of ``split``'s records (``shard << KEY_SHIFT | record``), in shard order."""
        counts = [records for _, records in shard_files(self.path, split_name(split))]
        return np.concatenate([(shard << KEY_SHIFT) + np.arange(n, dtype=np.int64) for shard, n in enumerate(counts)]
                              or [np.zeros(0, np.int64)])

    def batches(self, split, batch_size, shuffle=False, seed=None, shuffle_buffer=4096, cache=False, repeat=False,
                drop_remainder=False, shard=None, reshuffle=True):
        """Batches of record keys, shuffled exactly (the buffer holds every key of the split;
        anew on each pass with ``reshuffle``),
        read by a :class:`ShardReader`; ``shuffle_buffer`` does not apply. With ``cache``,
        records are read once in file order and kept in memory."""
        import tensorflow as tf  # only tf.data pipelines need TensorFlow

        files, counts = zip(*shard_files(self.path, split_name(split)))
        reader = ShardReader(files)

        def read(keys):
            *groups, labels = tf.numpy_function(reader.read, [keys], [tf.uint16] * len(GROUPS) + [tf.float32],
                                                stateful=False)
            inputs = {}
            for (g, bands), x in zip(GROUPS.items(), groups):
                x.set_shape([None, GROUP_SIZES[g], GROUP_SIZES[g], len(bands)])
                inputs[g] = x
            labels.set_shape([None, NUM_CLASSES])
            return inputs, labels

        ds = tf.data.Dataset.from_tensor_slices((list(files), np.arange(len(files)), np.array(counts)))
        if shard is not None:
            ds = ds.shard(*shard)
        ds = ds.flat_map(_record_keys).unbatch()
        if cache:
            ds = ds.batch(256).map(read, num_parallel_calls=tf.data.AUTOTUNE).unbatch().cache()
        if shuffle:
            ds = ds.shuffle(sum(counts), seed=seed, reshuffle_each_iteration=reshuffle)
        if repeat:
            ds = ds.repeat()
        ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
        return ds if cache else ds.map(read, num_parallel_calls=tf.data.AUTOTUNE)


def _record_keys(file, shard, records):
    """The keys of one shard's records, as one vector (unbatched by the caller)."""
    import tensorflow as tf  # only tf.data pipelines need TensorFlow

    shard, records = tf.cast(shard, tf.int64), tf.cast(records, tf.int64)
    keys = tf.data.Dataset.from_tensors(shard * (1 << KEY_SHIFT) + tf.range(records))
    # Under tf.distribute, FILE auto-sharding splits a pipeline at the file names that a
    # file reader takes; this reader reads nothing (take(0)) but marks `file` as one.
    marker = tf.data.FixedLengthRecordDataset(file, FRAMED_BYTES).take(0).map(lambda _: tf.zeros([0], tf.int64))
    return keys.concatenate(marker)
