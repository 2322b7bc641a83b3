"""BigEarthNet data: the BigEarthNet-19 nomenclature and its statistics."""

from keras_mlrs.data.nomenclature import (
    CLASS_NAMES,
    NUM_CLASSES,
    SPLIT_SIZES,
    TRAIN_CLASS_COUNTS,
)

__all__ = ["CLASS_NAMES", "NUM_CLASSES", "SPLIT_SIZES", "TRAIN_CLASS_COUNTS"]
