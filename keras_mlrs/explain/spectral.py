"""Spectral relevance profiles: which Sentinel-2 bands an explanation draws on, per class.

For each class, the *positive profile* is the share of the class's positive relevance
(evidence for it) that lies in each band: the positive relevance summed over a band's pixels
divided by the positive relevance of all 12 bands; the *negative profile* is the same for
the negative relevance (evidence against it), taken as magnitudes, so both profiles are
non-negative and each sums to 1. Per resolution group (``b10m``: B04, B03, B02, B08;
``b20m``: B05, B06, B07, B8A, B11, B12; ``b60m``: B01, B09) a share is the sum of its bands'.

**Aggregation over heatmaps** (``weighting``):

* ``"relevance"`` (default): the relevance of every heatmap of a class is summed per band
  first, the shares taken of the sums. Each heatmap weighs by its amount of relevance (in
  logit units, so confident decisions weigh more); the profile is that of the class's
  relevance taken together, and it does not depend on how the heatmaps are split in batches.
* ``"heatmap"``: the mean of each heatmap's own shares; every heatmap weighs the same
  (heatmaps without positive, or negative, relevance are left out of that profile's mean).

Relevance is read on the 10 m grid (``[classes, 120, 120, 12]``, stacked band order, as
:func:`~keras_mlrs.explain.heatmaps.to_10m_grid` gives it) or in the K-Branch input
structure (a dict of the band groups at their own resolution): spreading a 20 m or 60 m
pixel's relevance evenly over the 10 m pixels it covers changes no band's sums, so both give
the same profile. :class:`SpectralProfile` accumulates heatmap by heatmap, so a split can be
profiled without holding its heatmaps; :func:`spectral_profile` is the one-shot form.
:func:`profile_figure` draws a result. Shares are ``None`` for a class without any positive
(negative) relevance.
"""

from __future__ import annotations

import textwrap

import numpy as np

from keras_mlrs.bigearthnet import BAND_GROUP, CLASS_NAMES, GROUPS, NUM_CLASSES, STACKED_BANDS
from keras_mlrs.errors import InvalidParameterError, ShapeMismatchError, choose
from keras_mlrs.explain.engine import class_indices
from keras_mlrs.files import FigureFiles, pyplot, save_figure

#: How heatmaps of one class are combined (see the module docstring).
WEIGHTINGS = ("relevance", "heatmap")
#: The resolution groups as figures name them.
GROUP_LABELS = {"b10m": "10 m", "b20m": "20 m", "b60m": "60 m"}


def band_sums(relevance) -> tuple[np.ndarray, np.ndarray]:
    """``float64 [classes, 12]`` twice: the positive relevance and the magnitude of the
    negative relevance of each band (stacked order), summed over the pixels of each of the
    ``classes`` heatmaps of one patch (``[classes, height, width, 12]`` on the 10 m grid,
    or a dict of the band groups ``[classes, size, size, bands]``)."""
    if isinstance(relevance, dict):
        if set(relevance) != set(GROUPS):
            raise ShapeMismatchError(f"relevance by band group needs the groups {list(GROUPS)}; got {sorted(relevance)}.")
        parts = [np.asarray(relevance[g]) for g in GROUPS]
        for g, part in zip(GROUPS, parts):
            if part.ndim != 4 or part.shape[-1] != len(GROUPS[g]) or part.shape[0] != parts[0].shape[0]:
                raise ShapeMismatchError(
                    f"relevance of group '{g}' must be [classes, size, size, {len(GROUPS[g])}] with the classes of "
                    f"the other groups; got {part.shape}."
                )
    else:
        r = np.asarray(relevance)
        if r.ndim != 4 or r.shape[-1] != len(STACKED_BANDS):
            raise ShapeMismatchError(
                f"relevance of one patch must be [classes, height, width, {len(STACKED_BANDS)}] (10 m grid, stacked "
                f"bands); got {r.shape}."
            )
        parts = [r]
    positive = np.concatenate([np.maximum(p, 0).sum(axis=(1, 2), dtype="float64") for p in parts], axis=-1)
    negative = np.concatenate([-np.minimum(p, 0).sum(axis=(1, 2), dtype="float64") for p in parts], axis=-1)
    return positive, negative


class SpectralProfile:
    """Band profiles of heatmaps added one patch at a time (see the module docstring).

    Args:
        weighting: ``"relevance"`` or ``"heatmap"`` (:data:`WEIGHTINGS`).
        num_classes: the classes a class index may name (BigEarthNet-19: 19).
    """

    def __init__(self, weighting: str = "relevance", num_classes: int = NUM_CLASSES):
        self.weighting = choose("profile weighting", weighting, WEIGHTINGS)
        self.num_classes = num_classes
        bands = len(STACKED_BANDS)
        # per class index: [positive sums, negative sums, sums of positive shares, of negative shares]
        self._sums: dict[int, np.ndarray] = {}
        self._counts: dict[int, np.ndarray] = {}  # heatmaps, with positive, with negative relevance
        self._zero = lambda: np.zeros((4, bands))

    def add(self, relevance, class_ids) -> None:
        """Add the heatmaps of one patch: ``relevance`` ``[classes, 120, 120, 12]`` on the
        10 m grid (or a dict of the band groups), slice ``k`` explaining class ``class_ids[k]``
        (indices, or BigEarthNet-19 names)."""
        ids = class_indices(class_ids, self.num_classes) if np.size(class_ids) else []
        positive, negative = band_sums(relevance)
        if len(ids) != positive.shape[0]:
            raise ShapeMismatchError(
                f"relevance holds {positive.shape[0]} heatmap(s) but {len(ids)} class(es) were given; give one class per heatmap."
            )
        for k, c in enumerate(ids):
            sums = self._sums.setdefault(c, self._zero())
            counts = self._counts.setdefault(c, np.zeros(3, "int64"))
            sums[0] += positive[k]
            sums[1] += negative[k]
            counts[0] += 1
            for row, part in ((2, positive[k]), (3, negative[k])):
                total = part.sum()
                if total > 0:
                    sums[row] += part / total
                    counts[row - 1] += 1

    @property
    def heatmaps(self) -> int:
        """The number of heatmaps added."""
        return int(sum(c[0] for c in self._counts.values()))

    def result(self, class_names=None) -> dict:
        """The profiles, as plain JSON-serialisable data.

        Args:
            class_names: names of the class indices (a sequence by index, or a dict);
                default: the BigEarthNet-19 names.

        Returns:
            ``{"bands": [the 12 bands], "groups": {group: [its bands]}, "weighting",
            "heatmaps", "per_class": {class name: {"index", "heatmaps", "positive": {band:
            share}, "negative": {band: share}, "positive_groups": {group: share},
            "negative_groups": {group: share}, "positive_total", "negative_total"}}}``, the
            classes in index order; ``*_total`` are the summed positive relevance and
            negative magnitude.
        """
        per_class = {}
        for c in sorted(self._sums):
            sums, counts = self._sums[c], self._counts[c]
            entry = {"index": c, "heatmaps": int(counts[0])}
            for k, sign in enumerate(("positive", "negative")):
                if self.weighting == "relevance":
                    total = sums[k].sum()
                    shares = sums[k] / total if total > 0 else None
                else:
                    shares = sums[2 + k] / counts[1 + k] if counts[1 + k] else None
                entry[sign] = {b: None if shares is None else float(shares[i]) for i, b in enumerate(STACKED_BANDS)}
                entry[f"{sign}_groups"] = {
                    g: None if shares is None else float(sum(shares[STACKED_BANDS.index(b)] for b in bands))
                    for g, bands in GROUPS.items()
                }
                entry[f"{sign}_total"] = float(sums[k].sum())
            per_class[_name(c, class_names)] = entry
        return {"bands": list(STACKED_BANDS), "groups": {g: list(b) for g, b in GROUPS.items()},
                "weighting": self.weighting, "heatmaps": self.heatmaps, "per_class": per_class}


def _name(index: int, class_names) -> str:
    if class_names is None:
        return CLASS_NAMES[index] if index < len(CLASS_NAMES) else f"class {index}"
    try:
        return str(class_names[index])
    except (IndexError, KeyError):
        raise InvalidParameterError(f"class_names names no class {index}; give a name for every class index.") from None


def spectral_profile(relevance, classes, selected=None, weighting: str = "relevance", class_names=None,
                     num_classes: int = NUM_CLASSES) -> dict:
    """Band profiles (:meth:`SpectralProfile.result`) of heatmaps held in memory.

    Args:
        relevance: ``[patches, classes, 120, 120, 12]`` on the 10 m grid, or a list with one
            ``[classes, 120, 120, 12]`` array (or band-group dict) per patch.
        classes: the class of each heatmap slice: one list for every patch, or (with a list
            of patches) one list per patch.
        selected: which heatmaps count: booleans ``[patches, classes]`` (default: all), e.g.
            the classes in each patch's labels.
        weighting: as :class:`SpectralProfile` takes it.
        class_names: as :class:`SpectralProfile` takes it.
        num_classes: as :class:`SpectralProfile` takes it.
    """
    per_patch = list(relevance) if isinstance(relevance, (list, tuple)) else None
    if per_patch is None:
        array = np.asarray(relevance)
        if array.ndim != 5:
            raise ShapeMismatchError(
                f"relevance must be [patches, classes, height, width, {len(STACKED_BANDS)}] or a list of patches; "
                f"got shape {array.shape}."
            )
        per_patch = list(array)
    nested = isinstance(classes, (list, tuple)) and len(classes) > 0 and all(
        isinstance(c, (list, tuple, np.ndarray)) for c in classes)
    if nested and len(classes) != len(per_patch):
        raise ShapeMismatchError(f"classes has {len(classes)} lists for {len(per_patch)} patches; give one per patch.")
    profile = SpectralProfile(weighting, num_classes)
    if selected is not None and len(selected) != len(per_patch):
        raise ShapeMismatchError(f"selected has {len(selected)} rows for {len(per_patch)} patches; give one per patch.")
    for i, r in enumerate(per_patch):
        ids = list(classes[i] if nested else classes)
        if selected is not None:
            keep = np.asarray(selected[i], bool).ravel()
            if keep.size != len(ids):
                raise ShapeMismatchError(
                    f"selected row {i} has {keep.size} values for {len(ids)} classes; give one per class."
                )
            r = {g: np.asarray(a)[keep] for g, a in r.items()} if isinstance(r, dict) else np.asarray(r)[keep]
            ids = [c for c, k in zip(ids, keep) if k]
        profile.add(r, ids)
    return profile.result(class_names)


# -- the figure -------------------------------------------------------------------------------
def _matrix(result, sign) -> np.ndarray:
    rows = []
    for entry in result["per_class"].values():
        shares = entry[sign]
        rows.append([np.nan if shares[b] is None else shares[b] for b in result["bands"]])
    return np.asarray(rows, "float64").reshape(len(rows), len(result["bands"]))


def profile_figure(result, path, title: str | None = None) -> FigureFiles:
    """Band profiles (a result of :class:`SpectralProfile` or :func:`spectral_profile`) as
    two class × band heatmaps side by side: the share of positive relevance (reds) and of
    negative relevance (blues) per band, one row per class, the bands in stacked order
    grouped by resolution, each cell labelled with its share in percent, on one colour
    scale from 0 to the largest share of both panels. Written as PNG and PDF
    (:func:`keras_mlrs.files.save_figure`).

    ``info``: ``{"classes": [row labels], "bands", "vmax", "colour_bars": [their labels]}``.
    """
    classes = list(result["per_class"])
    if not classes:
        raise InvalidParameterError("the profile holds no heatmap; add relevance before drawing it.")
    plt = pyplot()
    bands = result["bands"]
    panels = [("positive", "Reds", "share of positive relevance (evidence for)"),
              ("negative", "Blues", "share of negative relevance (evidence against)")]
    matrices = [_matrix(result, sign) for sign, _, _ in panels]
    finite = [m[np.isfinite(m)] for m in matrices]
    vmax = max((float(f.max()) for f in finite if f.size), default=1.0) or 1.0
    rows = ["\n".join(textwrap.wrap(f"{textwrap.shorten(c, 70, placeholder='…')} (n={result['per_class'][c]['heatmaps']})",
                                     38, break_long_words=False)) for c in classes]
    height = 1.9 + 0.36 * len(classes)
    fig, axes = plt.subplots(1, 2, figsize=(15.5, height), layout="constrained", sharey=True)
    bars = []
    group_edges = [k - 0.5 for k in range(1, len(bands)) if BAND_GROUP[bands[k]] != BAND_GROUP[bands[k - 1]]]
    for ax, matrix, (_, cmap_name, label) in zip(axes, matrices, panels):
        cmap = plt.get_cmap(cmap_name).with_extremes(bad="0.85")
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=0, vmax=vmax, aspect="auto",
                          interpolation="nearest")
        for (i, j), v in np.ndenumerate(matrix):
            text = "–" if not np.isfinite(v) else f"{100 * v:.0f}"
            dark = np.isfinite(v) and v > 0.55 * vmax
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color="white" if dark else "0.15")
        for edge in group_edges:
            ax.axvline(edge, color="black", linewidth=1.2)
        ax.set_xticks(range(len(bands)), bands, fontsize=8.5)
        ax.set_xlabel("Sentinel-2 band", fontsize=9)
        top = ax.secondary_xaxis("top")
        centres, names = [], []
        for group in dict.fromkeys(BAND_GROUP[b] for b in bands):
            where = [k for k, b in enumerate(bands) if BAND_GROUP[b] == group]
            centres.append(float(np.mean(where)))
            names.append(f"{GROUP_LABELS.get(group, group)} bands")
        top.set_xticks(centres, names, fontsize=8.5)
        top.tick_params(length=0)
        ax.set_title(label, fontsize=10)
        bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        bar.set_label(f"{label.split(' (')[0]} (0–1)", fontsize=8.5)
        bar.ax.tick_params(labelsize=7.5)
        bars.append(bar.ax.get_ylabel())
    axes[0].set_yticks(range(len(classes)), rows, fontsize=8.5)
    heatmaps = result.get("heatmaps", sum(e["heatmaps"] for e in result["per_class"].values()))
    weighting = ("relevance summed over heatmaps, then shares" if result.get("weighting", "relevance") == "relevance"
                 else "mean of each heatmap's shares")
    fig.supxlabel(f"cells: share in percent (each row of a panel sums to 100 %); grey: no relevance of that sign; "
                  f"{heatmaps} heatmaps, {weighting}", fontsize=8, color="0.25")
    title = title or "Spectral relevance profiles: share of each class's LRP relevance per band"
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path, title=title, info={"classes": classes, "bands": list(bands), "vmax": vmax,
                                                     "colour_bars": bars})


__all__ = ["GROUP_LABELS", "WEIGHTINGS", "SpectralProfile", "band_sums", "profile_figure", "spectral_profile"]
