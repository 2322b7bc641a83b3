"""Heatmaps of single patches: relevance on the 10 m grid, with the model's scores.

:func:`explain_patch` runs LRP (either engine) on one :class:`keras_mlrs.data.Patch` for
chosen classes and returns an :class:`Explanation` (:mod:`~keras_mlrs.explain.render` draws
and writes it). Relevance of a 20 m (60 m) pixel is spread evenly over the 2 × 2 (6 × 6)
10 m pixels it covers, so relevance summed over all bands still sums to the total.

A heatmap is the relevance summed over a band set (:data:`BAND_SETS`): the study applied
LRP "to RGB spectral bands" (paper §3), so figures default to ``rgb`` (B04, B03, B02);
``10m`` adds B08, ``all`` takes the 12 bands. The relevance of every band is kept either way.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_mlrs.bigearthnet import CLASS_NAMES, GROUP_SIZES, GROUPS, STACKED_BANDS
from keras_mlrs.core.decision import rule_of
from keras_mlrs.data import read_patch, sample_path
from keras_mlrs.errors import InvalidParameterError, choose, printable
from keras_mlrs.explain.bridge import innvestigate_lrp
from keras_mlrs.explain.engine import class_indices, lrp
from keras_mlrs.models import input_layout, patch_inputs

#: The LRP engines: the native one, and iNNvestigate as the reference.
ENGINES = ("native", "innvestigate")
#: The band sets a heatmap sums relevance over; ``rgb`` is the study's.
BAND_SETS = {"rgb": ("B04", "B03", "B02"), "10m": GROUPS["b10m"], "all": STACKED_BANDS}


def band_indices(bands: str) -> list[int]:
    """Positions in :data:`~keras_mlrs.bigearthnet.STACKED_BANDS` of the band set ``bands``."""
    choose("band set", bands, tuple(BAND_SETS))
    return [STACKED_BANDS.index(b) for b in BAND_SETS[bands]]


@dataclasses.dataclass
class Explanation:
    """LRP of one patch by one model.

    ``relevance`` is ``float32 [classes, 120, 120, 12]`` (10 m grid, stacked band order);
    ``scores`` and ``predicted`` are the model's confidence and decision per explained
    class; ``in_truth`` says whether each class is in the patch's labels (None: unknown);
    ``bands`` is the band set of :attr:`heatmaps` (a key of :data:`BAND_SETS`).
    """

    patch: str
    model: str
    preset: str
    engine: str
    classes: list[int]
    relevance: np.ndarray
    scores: list[float]
    predicted: list[bool]
    in_truth: list[bool] | None
    rgb: np.ndarray
    geo: object = None
    bands: str = "rgb"

    @property
    def heatmaps(self) -> np.ndarray:
        """``float32 [classes, 120, 120]``: relevance summed over the bands of :attr:`bands`."""
        return self.relevance[..., band_indices(self.bands)].sum(axis=-1)

    @property
    def bands_label(self) -> str:
        """The band set as figures name it, e.g. ``RGB bands (B04, B03, B02)``."""
        names = BAND_SETS[self.bands]
        return "all 12 bands" if self.bands == "all" else f"{self.bands.upper()} bands ({', '.join(names)})"

    @property
    def class_names(self) -> list[str]:
        return [CLASS_NAMES[c] for c in self.classes]

    def title(self, i: int) -> str:
        """The heading of class ``i``'s heatmap: name, ground truth, score and decision."""
        truth = "" if self.in_truth is None else (" · in labels" if self.in_truth[i] else " · not in labels")
        decision = "predicted" if self.predicted[i] else "not predicted"
        return f"{self.class_names[i]}{truth}\nscore {self.scores[i]:.3f} · {decision}"


def to_10m_grid(relevance, layout: str) -> np.ndarray:
    """Relevance of one patch as ``[classes, 120, 120, 12]`` (stacked band order) from the
    model's input structure (``groups``: a dict of ``[classes, size, size, bands]``)."""
    if layout == "stacked":
        return np.asarray(relevance, "float32")
    parts = []
    for group in GROUPS:
        r = np.asarray(relevance[group], "float32")
        factor = GROUP_SIZES["b10m"] // GROUP_SIZES[group]
        if factor > 1:
            r = np.repeat(np.repeat(r, factor, axis=1), factor, axis=2) / (factor * factor)
        parts.append(r)
    return np.concatenate(parts, axis=-1)


#: The stretch of the RGB composite of every figure: linear between these percentiles of
#: the B04, B03 and B02 values taken together (one stretch for the three bands, so the
#: colour balance is kept), clipped outside.
RGB_STRETCH = (2, 98)
#: That stretch as figures and captions name it.
RGB_STRETCH_LABEL = f"B04, B03, B02; joint {RGB_STRETCH[0]}–{RGB_STRETCH[1]} % stretch"


def rgb_composite(patch, low: float = RGB_STRETCH[0], high: float = RGB_STRETCH[1]) -> np.ndarray:
    """``float [120, 120, 3]`` in [0, 1]: B04, B03, B02 stretched linearly between the
    ``low`` and ``high`` percentiles of the three bands' values taken together (one
    stretch for all three), clipped outside (:data:`RGB_STRETCH`)."""
    b10 = patch.groups["b10m"][..., :3].astype("float64")  # B04, B03, B02
    lo, hi = np.percentile(b10, [low, high])
    return np.clip((b10 - lo) / max(hi - lo, 1e-9), 0, 1)


def example_patch():
    """The bundled sample patch with the most labels: the default patch of the figures in
    model cards and comparison reports."""
    patches = [read_patch(p) for p in sorted(sample_path().iterdir()) if p.is_dir()]
    return max(patches, key=lambda p: (int(p.labels.sum()), p.name))


def true_classes(patch, most: int = 4) -> list[int]:
    """Indices of ``patch``'s labels, at most ``most`` of them (in nomenclature order)."""
    return [int(i) for i in np.flatnonzero(patch.labels)][:most]


def explain_patch(model, patch, classes=None, all_predicted: bool = False, preset: str = "lrp.epsilon",
                  engine: str = "native", decision=None, bands: str = "rgb", **rule_params) -> Explanation:
    """Explain ``patch`` (a :class:`keras_mlrs.data.Patch`) for ``classes`` (names or
    indices) and/or every class the model predicts (``all_predicted``).

    Args:
        model: a BigEarthNet-19 model (either input layout).
        engine: ``"native"`` (:func:`keras_mlrs.explain.lrp`) or ``"innvestigate"``
            (:func:`keras_mlrs.explain.bridge.innvestigate_lrp`).
        decision: a decision rule overriding the model's (see :mod:`keras_mlrs.core.decision`).
        bands: the band set of the heatmaps (:data:`BAND_SETS`; the study's: ``rgb``).
    """
    band_indices(bands)  # an unknown band set fails before any work
    layout = input_layout(model)
    rule = rule_of(model, decision)
    x = patch_inputs(patch, layout)
    logits = model.predict_on_batch(x)
    chosen = np.asarray(rule(logits))[0] > 0
    confidence = np.asarray(rule.confidence(logits))[0]
    wanted = class_indices(classes, len(CLASS_NAMES)) if classes else []
    if all_predicted:
        wanted += [int(i) for i in np.flatnonzero(chosen)]
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        raise InvalidParameterError(
            "no class to explain: give `classes` (names or indices)"
            + (", or drop `all_predicted=True`: the model predicts no class for this patch." if all_predicted else ".")
        )
    choose("LRP engine", engine, ENGINES)
    if engine == "native":
        relevance = lrp(model, x, wanted, preset=preset, **rule_params)
    else:
        relevance, _ = innvestigate_lrp(model, x, wanted, preset=preset, **rule_params)
    first = {k: v[0] for k, v in relevance.items()} if isinstance(relevance, dict) else relevance[0]
    truth = None if patch.labels is None else [bool(patch.labels[c]) for c in wanted]
    return Explanation(
        patch=printable(patch.name), model=model.name, preset=preset, engine=engine, classes=wanted,
        relevance=to_10m_grid(first, layout), scores=[float(confidence[c]) for c in wanted],
        predicted=[bool(chosen[c]) for c in wanted], in_truth=truth, rgb=rgb_composite(patch), geo=patch.geo,
        bands=bands,
    )


__all__ = ["BAND_SETS", "ENGINES", "RGB_STRETCH", "RGB_STRETCH_LABEL", "Explanation", "band_indices", "example_patch", "explain_patch", "rgb_composite", "to_10m_grid", "true_classes"]
