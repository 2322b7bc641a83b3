"""One BigEarthNet patch: its bands and labels, read from the forms users have on disk.

:func:`read_patch` accepts

* a patch folder of BigEarthNet-S2 v1.0 or v2.0 (``<patch>_B01.tif`` ... ``<patch>_B12.tif``,
  ``<patch>_B8A.tif``, and for v1.0 ``<patch>_labels_metadata.json``);
* one band file of such a folder (its sibling bands are found);
* a multi-band GeoTIFF with the 12 bands in stacked order (B04, B03, B02, B08, B05, B06,
  B07, B8A, B11, B12, B01, B09) on one grid of 120 × 120 pixels; the 20 m and 60 m
  groups are then averaged over 2 × 2 and 6 × 6 blocks.

:func:`stack_groups` puts the band groups on the 10 m grid (the *stacked* layout): for one
patch (:meth:`Patch.stacked`) and, through the loader, for batches.
"""

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_mlrs.bigearthnet import BAND_GROUP, GROUP_SIZES, GROUPS, STACKED_BANDS, to_multi_hot
from keras_mlrs.data.tiff import GeoInfo, read_tiff
from keras_mlrs.errors import PatchError, TiffError, choose

BAND_FILE = re.compile(r"^(?P<patch>.+)_(?P<band>B0[1-9]|B1[0-2]|B8A)\.tiff?$", re.IGNORECASE)
#: How the 20 m and 60 m groups reach the 10 m grid in the stacked layout.
UPSAMPLING = ("nearest", "bilinear")


@dataclass
class Patch:
    """The bands of one patch by resolution group (uint16 ``[size, size, bands]``), its
    multi-hot labels (None when unknown), the georeferencing of its 10 m grid and the
    label names it was read with (CORINE names for BigEarthNet v1.0)."""

    name: str
    groups: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    geo: GeoInfo | None = None
    label_names: list[str] = field(default_factory=list)

    def stacked(self, method: str = "nearest") -> np.ndarray:
        """All 12 bands on the 120 × 120 grid (``uint16[120, 120, 12]``, stacked order);
        see :func:`stack_groups`."""
        return stack_groups({g: a[None] for g, a in self.groups.items()}, method)[0]


def stack_groups(groups: dict, method: str = "nearest") -> np.ndarray:
    """Batched band groups (``uint16[B, s, s, c]``) as one ``uint16[B, 120, 120, 12]`` array in
    stacked band order, the 20 m and 60 m groups upsampled by pixel repetition
    (``"nearest"``) or ``"bilinear"`` interpolation (half-pixel centres, as
    ``tf.image.resize``; rounded back to uint16)."""
    choose("upsampling", method, UPSAMPLING)
    size = GROUP_SIZES["b10m"]
    parts = []
    for group in GROUPS:
        x = np.asarray(groups[group])
        factor = size // GROUP_SIZES[group]
        if factor > 1 and method == "nearest":
            x = np.repeat(np.repeat(x, factor, axis=1), factor, axis=2)
        elif factor > 1:
            x = _bilinear(x, size)
        parts.append(x.astype(np.uint16, copy=False))
    return np.concatenate(parts, axis=-1)


def _bilinear(x: np.ndarray, size: int) -> np.ndarray:
    """``x`` (``[B, s, s, c]``) resized to ``size`` × ``size`` by bilinear interpolation with
    half-pixel centres, in float32 as TensorFlow's kernel does, rounded to uint16."""

    def weights(n_in):
        scale = np.float32(n_in / size)
        at = (np.arange(size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
        floor = np.floor(at)
        low = np.maximum(floor, 0).astype(int)
        high = np.minimum(np.ceil(at), n_in - 1).astype(int)
        return low, high, (at - floor).astype(np.float32)

    (y0, y1, wy), (x0, x1, wx) = weights(x.shape[1]), weights(x.shape[2])
    x = x.astype(np.float32)
    wx = wx[None, None, :, None]
    top = x[:, y0][:, :, x0] + (x[:, y0][:, :, x1] - x[:, y0][:, :, x0]) * wx
    bottom = x[:, y1][:, :, x0] + (x[:, y1][:, :, x1] - x[:, y1][:, :, x0]) * wx
    out = top + (bottom - top) * wy[None, :, None, None]
    return np.clip(np.rint(out), 0, 65535).astype(np.uint16)


def _read_band(path: Path, band: str) -> tuple[np.ndarray, GeoInfo | None]:
    try:
        arr, geo = read_tiff(path, max_side=GROUP_SIZES["b10m"], max_bands=len(STACKED_BANDS))
    except TiffError as err:
        raise PatchError(str(err)) from None
    size = GROUP_SIZES[BAND_GROUP[band]]
    if arr.shape != (size, size):
        raise PatchError(f"{path.name}: band {band} has shape {arr.shape}, expected ({size}, {size}).")
    if arr.dtype != np.uint16:
        raise PatchError(f"{path.name}: band {band} has dtype {arr.dtype}, expected uint16.")
    return arr, geo


def band_files(folder: Path) -> tuple[str, dict[str, Path]]:
    """The patch name and its band files (band -> path) in a patch folder."""
    files = {}
    name = folder.name
    for path in folder.iterdir():
        m = BAND_FILE.match(path.name)
        if m:
            files[m["band"].upper()] = path
            name = m["patch"]
    return name, files


def is_patch_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding band files of a patch."""
    try:
        return path.is_dir() and any(BAND_FILE.match(p.name) for p in path.iterdir())
    except OSError:
        return False


def read_patch_folder(folder, labels=None) -> Patch:
    """Read a BigEarthNet patch folder (v1.0 or v2.0).

    Labels come from ``labels`` (names, for v2.0 whose labels live in metadata.parquet)
    or else from the v1.0 ``<patch>_labels_metadata.json`` when present.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PatchError(f"{folder} is not a patch folder.")
    name, files = band_files(folder)
    missing = [b for b in STACKED_BANDS if b not in files]
    if missing:
        raise PatchError(f"{folder.name}: missing band file(s) {', '.join(missing)}.")
    groups, geo = {}, None
    for group, bands in GROUPS.items():
        arrays = []
        for band in bands:
            arr, band_geo = _read_band(files[band], band)
            if group == "b10m" and geo is None:
                geo = band_geo
            arrays.append(arr)
        groups[group] = np.stack(arrays, axis=-1)
    label_names = list(labels) if labels is not None else read_v1_labels(folder, name)
    multi_hot = to_multi_hot(label_names) if label_names is not None else None
    return Patch(name, groups, multi_hot, geo, list(label_names or []))


def read_v1_labels(folder: Path, name: str) -> list[str] | None:
    """The label names of the v1.0 patch ``name`` in ``folder`` (its
    ``<patch>_labels_metadata.json``), or None when it has none."""
    path = folder / f"{name}_labels_metadata.json"
    if not path.exists():
        return None
    try:
        labels = json.loads(path.read_text())["labels"]
    except (OSError, ValueError, KeyError, TypeError):
        raise PatchError(f"{path.name}: unreadable labels JSON (no 'labels' list).") from None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise PatchError(f"{path.name}: 'labels' must be a list of label names.")
    return labels


def _as_digital_numbers(arr: np.ndarray, path: Path) -> np.ndarray:
    """``arr`` as uint16 Sentinel-2 digital numbers, converted only when that loses nothing:
    integer values of another type, or floats that are whole numbers (a one-line warning);
    anything else (reflectances in 0–1, NaN, negative or too large values) is refused."""
    if arr.dtype == np.uint16:
        return arr
    values = arr.astype("float64")
    if not np.isfinite(values).all():
        raise PatchError(f"{path.name} holds NaN or infinite values; give Sentinel-2 L2A digital numbers (uint16) "
                         "with no missing pixels.")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 65535 or not np.array_equal(values, np.rint(values)):
        raise PatchError(f"{path.name} holds {arr.dtype} values from {low:g} to {high:g}, not Sentinel-2 L2A digital "
                         "numbers (whole numbers 0-65535, reflectance × 10000); scale and convert it to uint16 first.")
    if arr.dtype.kind == "f":
        warnings.warn(f"{path.name}: its {arr.dtype} values are whole numbers, read as uint16 digital numbers.",
                      stacklevel=3)
    return values.astype(np.uint16)


def read_multiband_tiff(path) -> Patch:
    """Read a 12-band GeoTIFF in stacked band order on a 120 × 120 grid."""
    path = Path(path)
    try:
        arr, geo = read_tiff(path, max_side=GROUP_SIZES["b10m"], max_bands=len(STACKED_BANDS))
    except TiffError as err:
        raise PatchError(str(err)) from None
    if arr.ndim != 3 or arr.shape[-1] != len(STACKED_BANDS):
        bands = 1 if arr.ndim == 2 else arr.shape[-1]
        raise PatchError(
            f"{path.name} has {bands} band(s); a multi-band GeoTIFF needs the 12 bands "
            f"{', '.join(STACKED_BANDS)} in that order (or give a BigEarthNet patch folder)."
        )
    size = GROUP_SIZES["b10m"]
    if arr.shape[:2] != (size, size):
        raise PatchError(f"{path.name} is {arr.shape[0]} × {arr.shape[1]} pixels; expected {size} × {size}.")
    arr = _as_digital_numbers(arr, path)
    groups, start = {}, 0
    for group, bands in GROUPS.items():
        block = arr[..., start : start + len(bands)].astype("float64")
        start += len(bands)
        factor = size // GROUP_SIZES[group]
        if factor > 1:
            block = block.reshape(size // factor, factor, size // factor, factor, -1).mean(axis=(1, 3))
        groups[group] = np.rint(block).astype(np.uint16)
    return Patch(path.stem, groups, None, geo)


def read_patch(path) -> Patch:
    """Read one patch from a patch folder, one of its band files, or a multi-band GeoTIFF
    (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise PatchError(f"{path} does not exist.")
    if path.is_dir():
        return read_patch_folder(path)
    if BAND_FILE.match(path.name):
        return read_patch_folder(path.parent)
    if path.suffix.lower() not in (".tif", ".tiff"):
        raise PatchError(f"{path.name} is not a TIFF; give a patch folder, a band file or a GeoTIFF.")
    return read_multiband_tiff(path)
