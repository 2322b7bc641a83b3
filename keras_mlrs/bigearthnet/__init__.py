"""BigEarthNet-19 as data: the nomenclature in the paper's class order, the 43 -> 19 CORINE
mapping, class counts, the Sentinel-2 bands by resolution group with their statistics, and
the official split lists.

Everything here is plain data (JSON, NumPy): the layers above read it, none of it reads
files of the user's.
"""

from keras_mlrs.bigearthnet.bands import (
    BAND_GROUP,
    BAND_MEAN,
    BAND_STD,
    GROUP_SIZES,
    GROUPS,
    STACKED_BANDS,
    STATS_SOURCE,
)
from keras_mlrs.bigearthnet.nomenclature import (
    CLASS_NAMES,
    CORINE_LABELS,
    CORINE_TO_19,
    NUM_CLASSES,
    SPLIT_SIZES,
    TRAIN_CLASS_COUNTS,
    class_index,
    to_multi_hot,
)
from keras_mlrs.bigearthnet.splits import (
    SHORT_NAMES,
    SPLITS,
    excluded_patches,
    official_splits,
    split_name,
)

__all__ = [
    "BAND_GROUP", "BAND_MEAN", "BAND_STD", "CLASS_NAMES", "CORINE_LABELS", "CORINE_TO_19", "GROUPS", "GROUP_SIZES",
    "NUM_CLASSES", "SHORT_NAMES", "SPLITS", "SPLIT_SIZES", "STACKED_BANDS", "STATS_SOURCE", "TRAIN_CLASS_COUNTS",
    "class_index", "excluded_patches", "official_splits", "split_name", "to_multi_hot",
]
