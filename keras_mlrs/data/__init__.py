"""BigEarthNet data: reading patches, the sources on disk, our shards and the loader.

The most used names are importable from here: :func:`load`, :func:`prepare`,
:func:`read_patch`, :func:`sample_path`, and the BigEarthNet-19 facts of
:mod:`keras_mlrs.bigearthnet` (:data:`CLASS_NAMES`...). Reading patches and shards needs
NumPy only; the ``tf.data`` loader and the TFRecord writers import TensorFlow when used.
"""

from keras_mlrs.bigearthnet import (
    BAND_MEAN,
    BAND_STD,
    CLASS_NAMES,
    CORINE_LABELS,
    CORINE_TO_19,
    GROUP_SIZES,
    GROUPS,
    NUM_CLASSES,
    SPLIT_SIZES,
    STACKED_BANDS,
    TRAIN_CLASS_COUNTS,
    class_index,
    excluded_patches,
    official_splits,
    to_multi_hot,
)
from keras_mlrs.data.patch import Patch, read_patch, stack_groups
from keras_mlrs.data.pipeline import detect_format, load, open_source, tensorflow_available
from keras_mlrs.data.shards import patch_names, prepare, read_manifest, verify
from keras_mlrs.data.sources import sample_path
from keras_mlrs.data.splits import assign_splits

__all__ = [
    "BAND_MEAN", "BAND_STD", "CLASS_NAMES", "CORINE_LABELS", "CORINE_TO_19", "GROUPS", "GROUP_SIZES",
    "NUM_CLASSES", "Patch", "SPLIT_SIZES", "STACKED_BANDS", "TRAIN_CLASS_COUNTS", "assign_splits", "class_index",
    "detect_format", "excluded_patches", "load", "official_splits", "open_source", "patch_names", "prepare",
    "read_manifest", "read_patch", "sample_path", "stack_groups", "tensorflow_available", "to_multi_hot", "verify",
]
