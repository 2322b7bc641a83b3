"""Assigning BigEarthNet patches to splits.

Two schemes:

* ``"official"``: the BigEarthNet-19 split lists published by the BigEarthNet authors
  (:func:`keras_mlrs.bigearthnet.official_splits`), after removing the patches covered by
  seasonal snow, cloud or cloud shadow and those without a 19-class label;
* ``"random"``: a seeded random partition of whatever patches are present, in the given
  fractions, for subsets whose official splits come out empty (the bundled 6-patch sample
  has no validation patch).
"""

import numpy as np

from keras_mlrs.bigearthnet import SPLITS, excluded_patches, official_splits
from keras_mlrs.errors import InvalidParameterError, choose

SCHEMES = ("official", "random")


def parse_fractions(text) -> tuple[float, float, float]:
    """``"0.6,0.2,0.2"`` (or three numbers) -> fractions of train, validation and test, summing to 1."""
    try:
        values = tuple(float(x) for x in (text.split(",") if isinstance(text, str) else text))
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1.0) > 1e-6:
        raise InvalidParameterError(
            f"fractions must be three non-negative numbers summing to 1 (train, validation, test), "
            f"got {text!r}; e.g. `fractions=(0.6, 0.2, 0.2)`."
        )
    return values


def describe(scheme: str, seed: int = 0, fractions=(0.6, 0.2, 0.2)) -> str:
    """How a split scheme is named in manifests and reports."""
    if scheme == "official":
        return "official BigEarthNet-19 lists"
    return f"random (seed {seed}, fractions {tuple(fractions)})"


def assign_splits(names, scheme="official", seed=0, fractions=(0.6, 0.2, 0.2), exclude=True):
    """Assign each patch name a split.

    Returns ``(assignment, skipped)``: name -> split for the patches kept, and name ->
    reason for those left out (excluded by the official lists, or absent from them).
    ``exclude=False`` keeps, in the random scheme, the patches that the official lists
    exclude for snow, cloud or shadow.
    """
    choose("split scheme", scheme, SCHEMES)
    names = sorted(set(names))
    excluded = excluded_patches()
    if scheme == "official":
        splits = official_splits()
        assignment, skipped = {}, {}
        for name in names:
            if name in excluded:
                skipped[name] = f"excluded by the official lists: {excluded[name]}"
            elif name in splits:
                assignment[name] = splits[name]
            else:
                skipped[name] = "not in the official BigEarthNet-19 split lists"
        return assignment, skipped
    fractions = parse_fractions(fractions)
    skipped = {n: f"excluded by the official lists: {excluded[n]}" for n in names if exclude and n in excluded}
    kept = [n for n in names if n not in skipped]
    order = np.random.default_rng(seed).permutation(len(kept))
    bounds = np.round(np.cumsum(fractions) * len(kept)).astype(int)
    assignment = {kept[idx]: SPLITS[int(np.searchsorted(bounds, rank, side="right"))] for rank, idx in enumerate(order)}
    return assignment, skipped
