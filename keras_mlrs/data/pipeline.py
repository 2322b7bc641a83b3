"""The loader: BigEarthNet data of any source in, ``(inputs, multi_hot)`` batches out, as a
``tf.data.Dataset``, or, for prepared shards, as NumPy batches that need no TensorFlow
(:class:`~keras_mlrs.data.shards.batches.ShardBatches`).

Bands stay uint16 all the way to the model, whose first layer
(:class:`keras_mlrs.core.layers.BandNormalization`) standardises them: the pipeline only
reads, decodes and batches, so it stays cheap.
"""

from pathlib import Path

from keras_mlrs.bigearthnet import GROUP_SIZES, GROUPS, STACKED_BANDS, split_name
from keras_mlrs.data.patch import UPSAMPLING, stack_groups
from keras_mlrs.data.shards.reader import PreparedShards
from keras_mlrs.data.sources import (
    OfficialTFRecords,
    RawArchive,
    Source,
    V1Archive,
    V2Archive,
    describe_missing,
    first_recognising,
    unpack_if_tar,
)
from keras_mlrs.errors import InvalidParameterError, choose

#: The input layouts of the models (see :func:`load`).
LAYOUTS = ("groups", "stacked")
#: The input pipelines of :func:`load`.
PIPELINES = ("auto", "tf.data", "numpy")
#: Every source, in the order they are recognised.
SOURCES: tuple[type[Source], ...] = (PreparedShards, V2Archive, OfficialTFRecords, V1Archive)


def detect_format(path) -> str:
    """The format of the data at ``path``: ``prepared``, ``v2``, ``official-tfrecord`` or
    ``v1`` (see :mod:`keras_mlrs.data.sources`)."""
    path = Path(path)
    cls = first_recognising(path, SOURCES)
    if cls is None:
        raise describe_missing(path)
    return cls.format


def open_source(path, split_scheme: str = "official", split_seed: int = 0, fractions=(0.6, 0.2, 0.2)) -> Source:
    """The data at ``path`` as a :class:`~keras_mlrs.data.sources.Source` (a tar is unpacked
    first). Raw archives are split by ``split_scheme`` (``official`` or ``random``, seeded
    by ``split_seed``, in ``fractions``); the other sources carry their own split."""
    root = unpack_if_tar(Path(path))
    cls = first_recognising(root, SOURCES)
    if cls is None:
        raise describe_missing(root)
    if issubclass(cls, RawArchive):
        return cls(root, scheme=split_scheme, seed=split_seed, fractions=fractions)
    return cls(root)


def load(
    path,
    split: str = "train",
    batch_size: int = 32,
    layout: str = "groups",
    upsampling: str = "nearest",
    shuffle: bool | None = None,
    reshuffle: bool = True,
    shuffle_buffer: int = 4096,
    seed: int | None = None,
    cache: bool = False,
    repeat: bool = False,
    drop_remainder: bool = False,
    split_scheme: str = "official",
    fractions=(0.6, 0.2, 0.2),
    shard: tuple[int, int] | None = None,
    split_seed: int | None = None,
    pipeline: str = "auto",
    process: tuple[int, int] | None = None,
    multiple: int = 1,
):
    """A ``tf.data.Dataset`` (or, for prepared shards, a ``keras.utils.PyDataset``) of
    ``(inputs, multi_hot)`` batches from BigEarthNet data.

    Args:
        path: a folder written by ``prepare`` (fast), official BigEarthNet TFRecord files (a
            file or a folder of ``train*/val*/test*.tfrecord``), or a raw v1/v2 archive
            (slow: every band file is read on the fly; for small subsets); or a
            :class:`~keras_mlrs.data.sources.Source`.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        batch_size: patches per batch.
        layout: ``"groups"`` gives ``inputs`` as ``{"b10m": uint16[B,120,120,4],
            "b20m": uint16[B,60,60,6], "b60m": uint16[B,20,20,2]}``; ``"stacked"`` gives one
            ``uint16[B,120,120,12]`` tensor (20 m and 60 m bands upsampled).
        upsampling: ``"nearest"`` or ``"bilinear"``, for the stacked layout.
        shuffle: shuffle records (default: only for the training split), anew on each pass.
            Prepared shards are shuffled exactly: each pass is a uniform permutation of the
            whole split.
        reshuffle: with ``shuffle``, a new order on each pass over the dataset (default);
            False: every pass gives the first pass's order, for callers that load each
            epoch anew (``mlrs train`` seeds each epoch's order by its number), so that an
            extra pass, such as the batch Keras reads under JAX to build a loaded model's
            metrics before its first epoch, changes nothing. The ``numpy`` pipeline's order
            depends on its seed alone.
        shuffle_buffer: records in the shuffle buffer of official TFRecords and raw
            archives (prepared shards need none).
        seed: makes shuffling and file order deterministic; None for a fresh order each run.
        cache: keep records in memory after their first read.
        repeat: repeat indefinitely.
        drop_remainder: drop the last, smaller batch.
        split_scheme: for raw archives, the ``"official"`` split or a ``"random"`` one.
        fractions: train, validation and test fractions of the random split.
        split_seed: seed of the random split (default: ``seed``, or 0), so that shuffling
            can change from epoch to epoch while the split stays put.
        shard: ``(num_workers, worker_index)`` to read a disjoint part of the files by hand;
            under ``tf.distribute`` the dataset is auto-sharded by file instead.
        pipeline: ``"tf.data"``; ``"numpy"`` (prepared shards only: NumPy batches through
            Keras' backend-neutral ``PyDataset``, no TensorFlow needed; ``shuffle_buffer``,
            ``cache`` and ``shard`` do not apply, ``repeat`` is refused); ``"auto"`` (default,
            :func:`resolve_pipeline`) is ``tf.data`` when TensorFlow can be imported, else
            ``numpy``; for prepared shards under PyTorch, ``numpy`` unless ``repeat``.
        process: for the ``numpy`` pipeline, ``(count, index)``: this process's equal part of
            every global batch of ``batch_size`` (multi-process data parallelism; see
            :mod:`keras_mlrs.data.shards.batches`).
        multiple: for the ``numpy`` pipeline, cut the last batch to a multiple of this many
            patches (the devices a batch is spread over).
    """
    split = split_name(split)
    choose("layout", layout, LAYOUTS)
    choose("upsampling", upsampling, UPSAMPLING)
    choose("pipeline", pipeline, PIPELINES)
    if int(batch_size) < 1:
        raise InvalidParameterError(f"batch_size must be >= 1, got {batch_size}.")
    if isinstance(path, Source):
        source = path
    else:
        split_seed = (0 if seed is None else seed) if split_seed is None else split_seed
        source = open_source(path, split_scheme, split_seed, fractions)
    shuffle = split == "train" if shuffle is None else shuffle
    pipeline = resolve_pipeline(pipeline, source, repeat)
    if pipeline == "numpy" or process is not None or multiple > 1:
        return _numpy_batches(source, split, int(batch_size), shuffle, seed, drop_remainder, layout, upsampling,
                              repeat, process, multiple)
    import tensorflow as tf  # only tf.data pipelines need TensorFlow

    ds = source.batches(split, int(batch_size), shuffle=shuffle, seed=seed, shuffle_buffer=shuffle_buffer, cache=cache,
                        repeat=repeat, drop_remainder=drop_remainder, shard=shard, reshuffle=reshuffle)
    if layout == "stacked":
        ds = ds.map(lambda x, y: (_stacked(x, upsampling), y), num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
    options.deterministic = seed is not None or not shuffle
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def resolve_pipeline(pipeline: str, source: Source, repeat: bool = False) -> str:
    """The pipeline ``auto`` stands for: ``tf.data`` when TensorFlow can be imported, except for
    prepared shards under PyTorch read once per call (not ``repeat``), which get ``numpy`` (a
    PyTorch process then loads no TensorFlow); ``numpy`` when TensorFlow is missing."""
    choose("pipeline", pipeline, PIPELINES)
    if pipeline != "auto":
        return pipeline
    if isinstance(source, PreparedShards) and not repeat:
        import keras  # the backend decides; either pipeline feeds Keras (PyDataset or tf.data) anyway

        if keras.backend.backend() == "torch":
            return "numpy"
    return "tf.data" if tensorflow_available() else "numpy"


def tensorflow_available() -> bool:
    """Whether TensorFlow can be imported (it is imported, once, to find out)."""
    try:
        import tensorflow  # noqa: F401 - the tf.data pipeline's engine, when it is installed and works
    except ImportError:
        return False
    return True


def _numpy_batches(source, split, batch_size, shuffle, seed, drop_remainder, layout, upsampling, repeat, process,
                   multiple):
    """The ``numpy`` pipeline of :func:`load`."""
    if not isinstance(source, PreparedShards):
        raise InvalidParameterError(
            f"{source.path} is {source.format} data, which only the tf.data pipeline reads (TensorFlow is "
            "needed); prepare it first (`keras_mlrs.data.prepare()`): prepared shards load without TensorFlow.")
    if repeat:
        raise InvalidParameterError("`repeat=True` needs the tf.data pipeline; the numpy pipeline gives one pass "
                                    "per call.")
    from keras_mlrs.data.shards.batches import ShardBatches  # imports Keras, for this pipeline

    return ShardBatches(source, split, batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
                        layout=layout, upsampling=upsampling, process=process, multiple=multiple)


def _stacked(groups, method):
    """:func:`~keras_mlrs.data.patch.stack_groups` of a batch of tensors, in the pipeline."""
    import tensorflow as tf  # only tf.data pipelines need TensorFlow

    def stack(*arrays):
        return stack_groups(dict(zip(GROUPS, arrays)), method)

    out = tf.numpy_function(stack, [groups[g] for g in GROUPS], tf.uint16, stateful=False)
    size = GROUP_SIZES["b10m"]
    out.set_shape([None, size, size, len(STACKED_BANDS)])
    return out


__all__ = ["LAYOUTS", "PIPELINES", "SOURCES", "detect_format", "load", "open_source", "resolve_pipeline",
           "tensorflow_available"]
