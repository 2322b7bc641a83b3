"""The BigEarthNet-19 nomenclature, in the order of the paper that defined it.

Class ``i`` of every multi-hot vector in keras-mlrs is ``CLASS_NAMES[i]``:
Urban fabric is 0 and Marine waters is 18. This is *not* alphabetical order;
code that sorts the names gets every label wrong.
"""

import json
from importlib import resources

_SPEC = json.loads(resources.files(__package__).joinpath("bigearthnet19.json").read_text())

#: The 19 class names, Urban fabric = 0 ... Marine waters = 18.
CLASS_NAMES: tuple[str, ...] = tuple(_SPEC["classes"])
#: Number of BigEarthNet-19 classes.
NUM_CLASSES: int = len(CLASS_NAMES)
#: Patches per class in the official BigEarthNet-19 training split (same order as CLASS_NAMES).
TRAIN_CLASS_COUNTS: tuple[int, ...] = tuple(_SPEC["train_counts"])
#: Patches per official split.
SPLIT_SIZES: dict[str, int] = dict(_SPEC["split_sizes"])
#: Where these facts come from.
SOURCE: str = _SPEC["source"]

assert len(TRAIN_CLASS_COUNTS) == NUM_CLASSES
