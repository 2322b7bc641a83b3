"""The BigEarthNet-19 nomenclature, in the order of the paper that defined it.

Class ``i`` of every multi-hot vector in keras-mlrs is ``CLASS_NAMES[i]``:
Urban fabric is 0 and Marine waters is 18. This is *not* alphabetical order;
code that sorts the names gets every label wrong.

BigEarthNet v1.0 patches carry the 43 CORINE Land Cover level-3 labels;
:data:`CORINE_TO_19` maps each to its BigEarthNet-19 class (or None for the
11 labels the 19-class nomenclature drops).
"""

import json
from importlib import resources

import numpy as np

from keras_mlrs.errors import UnknownLabelError, did_you_mean

_SPEC = json.loads(resources.files(__package__).joinpath("bigearthnet19.json").read_text())

#: The 19 class names, Urban fabric = 0 ... Marine waters = 18.
CLASS_NAMES: tuple[str, ...] = tuple(_SPEC["classes"])
#: Number of BigEarthNet-19 classes.
NUM_CLASSES: int = len(CLASS_NAMES)
#: Patches per class in the official BigEarthNet-19 training split (same order as CLASS_NAMES).
TRAIN_CLASS_COUNTS: tuple[int, ...] = tuple(_SPEC["train_counts"])
#: Patches per official split.
SPLIT_SIZES: dict[str, int] = dict(_SPEC["split_sizes"])
#: The 43 CORINE labels of BigEarthNet v1.0, in their original order.
CORINE_LABELS: tuple[str, ...] = tuple(name for name, _ in _SPEC["corine_labels"])
#: CORINE label -> BigEarthNet-19 class name (None: not part of BigEarthNet-19).
CORINE_TO_19: dict[str, str | None] = dict(_SPEC["corine_labels"])
#: Where these facts come from.
SOURCE: str = _SPEC["source"] + " " + _SPEC["corine_source"]

_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}

assert len(TRAIN_CLASS_COUNTS) == NUM_CLASSES and len(CORINE_LABELS) == 43


def to_multi_hot(labels) -> np.ndarray:
    """A float32 multi-hot vector of the 19 classes from label names.

    Accepts BigEarthNet-19 class names and the 43 CORINE labels of BigEarthNet v1.0
    (mapped to their class; the 11 labels without one are dropped). Any other name
    raises :class:`UnknownLabelError`.
    """
    out = np.zeros(NUM_CLASSES, dtype="float32")
    for label in labels:
        if label in _INDEX:
            out[_INDEX[label]] = 1.0
        elif label in CORINE_TO_19:
            target = CORINE_TO_19[label]
            if target is not None:
                out[_INDEX[target]] = 1.0
        else:
            raise UnknownLabelError(
                f"label '{label}' is neither a BigEarthNet-19 class nor a CORINE label of BigEarthNet."
                + did_you_mean(label, (*CLASS_NAMES, *CORINE_LABELS))
            )
    return out


def class_index(name_or_index) -> int:
    """The index of a class given by name (case-insensitive) or by index."""
    if isinstance(name_or_index, (int, np.integer)) or str(name_or_index).lstrip("-").isdigit():
        index = int(name_or_index)
        if not 0 <= index < NUM_CLASSES:
            raise UnknownLabelError(f"class index {index} is out of range; use 0 to {NUM_CLASSES - 1}.")
        return index
    lowered = {name.lower(): i for i, name in enumerate(CLASS_NAMES)}
    key = str(name_or_index).strip().lower()
    if key not in lowered:
        partial = [name for name in CLASS_NAMES if key and key in name.lower()]
        hint = (" Did you mean " + " or ".join(f"'{name}'" for name in partial[:5]) + "?" if partial
                else did_you_mean(name_or_index, CLASS_NAMES))
        raise UnknownLabelError(
            f"unknown class '{name_or_index}'." + hint + " The 19 names: `keras_mlrs.bigearthnet.CLASS_NAMES`."
        )
    return lowered[key]
