"""BigEarthNet data: nomenclature, bands, splits, readers, shards and the tf.data loader.

The most used names are importable from here: :func:`load`, :func:`prepare`,
:func:`read_patch`, :func:`sample_path`, :data:`CLASS_NAMES`. Reading and writing data
needs TensorFlow, imported when first used.
"""

from keras_mlrs.data.archives import detect_format, sample_path
from keras_mlrs.data.bands import BAND_MEAN, BAND_STD, GROUP_SIZES, GROUPS, STACKED_BANDS
from keras_mlrs.data.nomenclature import (
    CLASS_NAMES,
    CORINE_LABELS,
    CORINE_TO_19,
    NUM_CLASSES,
    SPLIT_SIZES,
    TRAIN_CLASS_COUNTS,
    class_index,
    to_multi_hot,
)
from keras_mlrs.data.patches import Patch, PatchError, read_patch
from keras_mlrs.data.pipeline import load, stack_groups
from keras_mlrs.data.shards import patch_names, prepare, read_manifest
from keras_mlrs.data.splits import assign_splits, excluded_patches, official_splits

__all__ = [
    "BAND_MEAN", "BAND_STD", "CLASS_NAMES", "CORINE_LABELS", "CORINE_TO_19", "GROUPS", "GROUP_SIZES",
    "NUM_CLASSES", "Patch", "PatchError", "SPLIT_SIZES", "STACKED_BANDS", "TRAIN_CLASS_COUNTS",
    "assign_splits", "class_index", "detect_format", "excluded_patches", "load", "official_splits",
    "patch_names", "prepare", "read_manifest", "read_patch", "sample_path", "stack_groups", "to_multi_hot",
]
