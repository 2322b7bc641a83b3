"""BigEarthNet's splits: their names, and the official BigEarthNet-19 split and exclusion
lists published by the BigEarthNet authors (vendored in ``lists/``, see its NOTICE)."""

import bz2
import functools
from importlib import resources

from keras_mlrs.errors import choose

#: The three splits, in this order everywhere.
SPLITS = ("train", "validation", "test")
#: The short name of each split in the official files: ``val.csv``, ``val*.tfrecord``.
SHORT_NAMES = {"train": "train", "validation": "val", "test": "test"}
_ALIASES = {"val": "validation", "valid": "validation"}
_EXCLUSIONS = {
    "seasonal snow": "patches_with_seasonal_snow",
    "cloud or cloud shadow": "patches_with_cloud_and_shadow",
    "no BigEarthNet-19 label": "patches_with_no_19_class_targets",
}


def split_name(name) -> str:
    """The split called ``name``: ``train``, ``validation`` (also ``val``, ``valid``) or ``test``,
    in any case."""
    key = str(name).strip().lower()
    return choose("split", _ALIASES.get(key, key), SPLITS)


def _read_list(stem: str) -> list[str]:
    data = resources.files(__package__).joinpath("lists", f"{stem}.csv.bz2").read_bytes()
    return [line.strip().split(",")[0] for line in bz2.decompress(data).decode().splitlines() if line.strip()]


@functools.cache
def official_splits() -> dict[str, str]:
    """Patch name -> official split (``train``, ``validation`` or ``test``)."""
    return {name: split for split, short in SHORT_NAMES.items() for name in _read_list(short)}


@functools.cache
def excluded_patches() -> dict[str, str]:
    """Patch name -> why the official BigEarthNet-19 setup removes it."""
    return {name: reason for reason, stem in _EXCLUSIONS.items() for name in _read_list(stem)}
