"""Train/validation/test splits of BigEarthNet patches.

Two schemes:

* ``"official"``: the BigEarthNet-19 split lists published by the BigEarthNet authors
  (vendored in ``keras_mlrs/data/lists``, see its NOTICE), after removing the patches
  covered by seasonal snow, cloud or cloud shadow and those without a 19-class label;
* ``"random"``: a seeded random partition of whatever patches are present, in the given
  fractions, for subsets whose official splits come out empty (the bundled 6-patch sample
  has no validation patch).
"""

import bz2
import functools
from importlib import resources

import numpy as np

from keras_mlrs.errors import InvalidParameterError, MlrsError

SPLITS = ("train", "validation", "test")
_LISTS = {"train": "train", "validation": "val", "test": "test"}
_EXCLUSIONS = {
    "seasonal snow": "patches_with_seasonal_snow",
    "cloud or cloud shadow": "patches_with_cloud_and_shadow",
    "no BigEarthNet-19 label": "patches_with_no_19_class_targets",
}


def _read_list(stem: str) -> list[str]:
    data = resources.files(__package__).joinpath("lists", f"{stem}.csv.bz2").read_bytes()
    return [line.strip().split(",")[0] for line in bz2.decompress(data).decode().splitlines() if line.strip()]


@functools.cache
def official_splits() -> dict[str, str]:
    """Patch name -> official split (``train``, ``validation`` or ``test``)."""
    return {name: split for split, stem in _LISTS.items() for name in _read_list(stem)}


@functools.cache
def excluded_patches() -> dict[str, str]:
    """Patch name -> why the official BigEarthNet-19 setup removes it."""
    return {name: reason for reason, stem in _EXCLUSIONS.items() for name in _read_list(stem)}


def parse_fractions(text) -> tuple[float, float, float]:
    """``"0.6,0.2,0.2"`` -> fractions of train, validation and test (summing to 1)."""
    try:
        values = tuple(float(x) for x in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1.0) > 1e-6:
        raise InvalidParameterError(
            f"fractions must be three non-negative numbers summing to 1 (train,validation,test), "
            f"got {text!r}; e.g. --fractions 0.6,0.2,0.2."
        )
    return values


def assign_splits(names, scheme="official", seed=0, fractions=(0.6, 0.2, 0.2), exclude=True):
    """Assign each patch name a split.

    Returns ``(assignment, skipped)``: name -> split for the patches kept, and name ->
    reason for those left out (excluded by the official lists, or absent from them).
    ``exclude=False`` keeps, in the random scheme, the patches that the official lists
    exclude for snow, cloud or shadow.
    """
    names = sorted(set(names))
    if scheme == "official":
        splits, excluded = official_splits(), excluded_patches()
        assignment, skipped = {}, {}
        for name in names:
            if name in excluded:
                skipped[name] = f"excluded by the official lists: {excluded[name]}"
            elif name in splits:
                assignment[name] = splits[name]
            else:
                skipped[name] = "not in the official BigEarthNet-19 split lists"
        return assignment, skipped
    if scheme == "random":
        fractions = parse_fractions(fractions)
        excluded = excluded_patches()
        skipped = {n: f"excluded by the official lists: {excluded[n]}" for n in names if exclude and n in excluded}
        kept = [n for n in names if n not in skipped]
        order = np.random.default_rng(seed).permutation(len(kept))
        bounds = np.round(np.cumsum(fractions) * len(kept)).astype(int)
        assignment = {}
        for rank, idx in enumerate(order):
            split = SPLITS[int(np.searchsorted(bounds, rank, side="right"))]
            assignment[kept[idx]] = split
        return assignment, skipped
    raise MlrsError(f"unknown split scheme '{scheme}'; use 'official' or 'random'.")
