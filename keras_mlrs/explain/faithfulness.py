"""How faithful a heatmap is: region perturbation ("pixel flipping", Samek et al. 2017), for
multi-label models.

A heatmap is faithful when the values it calls relevant are the ones the model relies on.
Region perturbation measures it: the patch is cut into square regions of the 10 m grid,
ranked by their relevance, and replaced by a baseline one after the other; the class's logit
is read after each step. Removing the most relevant regions first (MoRF) should make the
logit fall fast; the least relevant first (LeRF) slowly, if at all; a random order falls in
between. The area over the perturbation curve,

    AOPC = 1 / (L + 1) · Σ_{k=0..L} (f(x_0) - f(x_k)),

summarises a curve of ``L`` steps (Samek et al., "Evaluating the visualization of what a
deep neural network has learned", IEEE TNNLS 2017): the higher for MoRF, the more faithful.

Multi-label: each explained class is followed through its own logit, the model's output for
that class alone (no softmax, no other class).

**Regions.** Squares of ``region`` 10 m pixels (default 4: 30 × 30 = 900 regions on the
120 × 120 grid); ``region`` must divide 120, so every region covers the same area. A
region's relevance is the sum of the 10 m-grid relevance (:func:`~keras_mlrs.explain.heatmaps.to_10m_grid`)
over its pixels and all 12 bands. Regions are numbered row by row; ties in relevance keep
that order (a stable sort), for MoRF and LeRF alike.

**Perturbation.** A perturbed region is replaced in all bands. In the ``stacked`` layout
every band lies on the 10 m grid and its pixels take the baseline's values. In the
``groups`` layout the 10 m group does the same; a 20 m (60 m) pixel covers 2 × 2 (6 × 6)
10 m pixels, its *footprint*, and becomes ``(1 - f) · original + f · baseline``, ``f`` being
the share of its footprint perturbed so far. The change is linear in the perturbed area, so
regions that do not tile the coarse pixels (4 × 4 regions on 6 × 6 60 m pixels) still act in
exact proportion to their area, and a coarse pixel is fully replaced once its footprint
is. Models take uint16 digital numbers: every perturbed value is rounded to the nearest
integer (half to even) and clipped to [0, 65535].

**Baselines.** ``"mean"`` (default): each band's mean, zero after the model's band
normalisation (the means of the model's ``BandNormalization`` layers, else BigEarthNet's
:data:`~keras_mlrs.bigearthnet.BAND_MEAN`); ``"blur"``: the patch itself blurred per band by
a Gaussian of ``blur_sigma`` pixels of each group's own grid (truncated at 4 σ, mirrored at
the edges); ``"noise"``: uniform noise in mean ± 2 std per band, drawn from
``(noise_seed, patch index)``.

**Steps.** A curve has ``steps + 1`` points; point ``k`` has ``ceil(k · n / steps)`` of the
``n`` regions perturbed: point 0 is the patch itself, point ``steps`` the whole patch
replaced by the baseline (the same input for every order).

**Cost.** A random order does not depend on the class, so one perturbation sequence per seed
serves every class of a patch; the original and the fully perturbed patch are evaluated once
per patch. A patch explained for ``C`` classes costs ``2 + (2 C + seeds) · (steps - 1)``
forward passes, run in batches of ``batch_size`` across patches.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable

import keras
import numpy as np

from keras_mlrs.bigearthnet import (
    BAND_MEAN,
    BAND_STD,
    CLASS_NAMES,
    GROUP_SIZES,
    GROUPS,
    STACKED_BANDS,
)
from keras_mlrs.core.layers import BandNormalization
from keras_mlrs.errors import InvalidParameterError, ShapeMismatchError, choose
from keras_mlrs.explain.engine import class_indices
from keras_mlrs.explain.heatmaps import to_10m_grid
from keras_mlrs.models import input_layout

#: The baselines a perturbed region takes (see the module docstring).
BASELINES = ("mean", "blur", "noise")
#: The orders regions are perturbed in: most relevant first, least relevant first, random.
ORDERS = ("morf", "lerf", "random")
#: Side of the 10 m grid, in pixels.
GRID = GROUP_SIZES["b10m"]
#: The region sizes that tile the 10 m grid.
REGION_SIZES = tuple(d for d in range(1, GRID + 1) if GRID % d == 0)
_UINT16_MAX = 65535


# -- regions and orders ------------------------------------------------------------------------
def check_region(region) -> int:
    """``region`` as an int, when it is a valid region size (a divisor of 120)."""
    if isinstance(region, bool) or not isinstance(region, (int, np.integer)) or int(region) not in REGION_SIZES:
        raise InvalidParameterError(
            f"region must be a whole number of 10 m pixels that divides {GRID}, one of "
            f"{', '.join(map(str, REGION_SIZES))}; got {region!r}."
        )
    return int(region)


def region_map(region: int = 4) -> np.ndarray:
    """``int [120, 120]``: the index of the region each 10 m pixel belongs to (row by row)."""
    region = check_region(region)
    per_side = GRID // region
    cells = np.arange(GRID) // region
    return cells[:, None] * per_side + cells[None, :]


def region_relevance(relevance, region: int = 4) -> np.ndarray:
    """``float64 [..., n_regions]``: relevance on the 10 m grid (``[..., 120, 120, bands]``)
    summed over each region's pixels and all bands."""
    region = check_region(region)
    r = np.asarray(relevance, "float64")
    if r.ndim < 3 or r.shape[-3:-1] != (GRID, GRID):
        raise ShapeMismatchError(f"relevance must be [..., {GRID}, {GRID}, bands] on the 10 m grid; got {r.shape}.")
    per_side = GRID // region
    lead = r.shape[:-3]
    r = r.reshape(*lead, per_side, region, per_side, region, r.shape[-1])
    return r.sum(axis=(-1, -2, -4)).reshape(*lead, per_side * per_side)


def region_order(scores, order: str, seed: int | None = None) -> np.ndarray:
    """``int [n]``: the regions in the order they are perturbed. ``"morf"``: by ``scores``
    (``[n]``) descending, ``"lerf"``: ascending, ties in region order either way;
    ``"random"``: a permutation drawn from ``seed`` alone (``scores`` may then be the number
    of regions), the same for every class and patch."""
    choose("perturbation order", order, ORDERS)
    if order == "random":
        n = int(scores) if np.ndim(scores) == 0 else len(scores)
        return np.random.default_rng(_check_seed(seed, "seed")).permutation(n)
    s = np.asarray(scores, "float64")
    return np.argsort(-s if order == "morf" else s, kind="stable")


def step_counts(n_regions: int, steps: int) -> np.ndarray:
    """``int [steps + 1]``: regions perturbed at each point, ``ceil(k · n / steps)``."""
    return np.array([-((-k * n_regions) // steps) for k in range(steps + 1)], "int64")


def order_masks(order, counts, region: int = 4) -> np.ndarray:
    """``bool [len(counts), 120, 120]``: the 10 m pixels perturbed once the first
    ``counts[k]`` regions of ``order`` are."""
    rank = np.empty(len(order), "int64")
    rank[np.asarray(order)] = np.arange(len(order))
    ranks = rank[region_map(region)]
    return ranks[None] < np.asarray(counts, "int64")[:, None, None]


# -- baselines and perturbation ----------------------------------------------------------------
def band_statistics(model=None) -> tuple[dict[str, float], dict[str, float]]:
    """Band name -> mean and -> std: those of ``model``'s ``BandNormalization`` layers where
    it has them, BigEarthNet's (:data:`~keras_mlrs.bigearthnet.BAND_MEAN`, ``BAND_STD``) for
    the other bands."""
    mean, std = dict(BAND_MEAN), dict(BAND_STD)
    stack = list(getattr(model, "layers", []) or [])
    while stack:
        layer = stack.pop()
        if isinstance(layer, BandNormalization):
            for band, m, s in zip(layer.bands, layer.mean, layer.std):
                mean[band], std[band] = float(m), float(s)
        elif isinstance(layer, keras.Model):
            stack.extend(layer.layers)
    return mean, std


def _bands(layout: str) -> dict[str, tuple[str, ...]]:
    return dict(GROUPS) if layout == "groups" else {"stacked": STACKED_BANDS}


def _split(patch, layout: str) -> dict[str, np.ndarray]:
    return dict(patch) if layout == "groups" else {"stacked": patch}


def _join(parts: dict, layout: str):
    return parts if layout == "groups" else parts["stacked"]


def gaussian_blur(image, sigma: float) -> np.ndarray:
    """``float64``: ``image`` (``[height, width, bands]``) blurred per band by a Gaussian of
    ``sigma`` pixels, truncated at 4 σ, the edges mirrored (``d c b a | a b c d``)."""
    sigma = _check_sigma(sigma)
    radius = max(1, int(math.ceil(4.0 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = np.asarray(image, "float64")
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        size = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(t, t + size), axis=axis) for t, w in enumerate(taps))
    return out


def baseline_inputs(patch, layout: str, baseline: str = "mean", *, stats=None, blur_sigma: float = 2.0,
                    noise_seed=0):
    """``float64`` values a perturbed pixel takes, in ``patch``'s structure (one patch without
    a batch axis: a dict of the band groups, or ``[120, 120, 12]``).

    Args:
        layout: ``"groups"`` or ``"stacked"``.
        baseline: ``"mean"``, ``"blur"`` or ``"noise"`` (see the module docstring).
        stats: ``(mean, std)`` dicts by band name (default: :func:`band_statistics` ``()``).
        blur_sigma: the Gaussian's σ, in pixels of each group's own grid.
        noise_seed: seeds the noise (an int or a sequence of ints).
    """
    choose("baseline", baseline, BASELINES)
    mean, std = stats if stats is not None else band_statistics()
    parts = _split(patch, layout)
    rng = np.random.default_rng(noise_seed) if baseline == "noise" else None
    out = {}
    for group, bands in _bands(layout).items():
        x = np.asarray(parts[group])
        m = np.array([mean[b] for b in bands], "float64")
        if baseline == "mean":
            out[group] = np.broadcast_to(m, x.shape).astype("float64")
        elif baseline == "blur":
            out[group] = gaussian_blur(x, blur_sigma)
        else:
            s = np.array([std[b] for b in bands], "float64")
            out[group] = rng.uniform(m - 2 * s, m + 2 * s, x.shape)
    return _join(out, layout)


def perturb(patch, masks, baseline, layout: str):
    """``uint16`` perturbed copies of ``patch`` (one patch, no batch axis), one per mask of
    ``masks`` (``bool [K, 120, 120]``, the perturbed 10 m pixels), in the model-input
    structure with a batch axis of ``K``.

    Each pixel becomes ``(1 - f) · original + f · baseline`` (``baseline`` in ``patch``'s
    structure), ``f`` the share of its footprint's 10 m pixels in the mask (0 or 1 on the
    10 m grid); rounded to the nearest integer and clipped to [0, 65535]."""
    masks = np.asarray(masks, bool)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.shape[1:] != (GRID, GRID):
        raise ShapeMismatchError(f"masks must be [K, {GRID}, {GRID}] on the 10 m grid; got {masks.shape}.")
    parts, bases = _split(patch, layout), _split(baseline, layout)
    out = {}
    for group in _bands(layout):
        x = np.asarray(parts[group], "float64")[None]
        size = x.shape[1]
        factor = GRID // size
        f = masks.reshape(len(masks), size, factor, size, factor).mean(axis=(2, 4))[..., None]
        blended = (1.0 - f) * x + f * np.asarray(bases[group], "float64")[None]
        out[group] = np.clip(np.rint(blended), 0, _UINT16_MAX).astype("uint16")
    return _join(out, layout)


# -- the measurement ---------------------------------------------------------------------------
@dataclasses.dataclass
class RegionPerturbation:
    """Region-perturbation curves of a set of patches, one item per explained (patch, class).

    ``items[i]`` holds ``patch`` (its index in the inputs), ``class`` (its index),
    ``logit`` (``f(x_0)``), the curves ``morf``, ``lerf`` (``steps + 1`` logits each) and
    ``random`` (one such curve per seed of ``random_seeds``), and their AOPC: ``aopc_morf``,
    ``aopc_lerf``, ``aopc_random`` (the mean over seeds; None without seeds) and
    ``aopc_random_seeds``. ``fractions[k]`` is the share of the patch perturbed at point
    ``k``. ``timing``: ``forward_passes`` (model inputs evaluated), ``forward_seconds`` (in
    the model), ``passes_per_second`` (the two divided), ``seconds`` (the whole call) and
    ``batch_size``. Every value is a plain float, int, str or list (:meth:`to_dict` is JSON).
    """

    region: int
    steps: int
    baseline: str
    random_seeds: list[int]
    n_regions: int
    fractions: list[float]
    items: list[dict]
    timing: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_seed(seed, name: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidParameterError(f"{name} must be a whole number >= 0; got {seed!r}.")
    return int(seed)


def _check_sigma(sigma) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.number)) or not (0 < sigma < math.inf):
        raise InvalidParameterError(f"blur_sigma must be a number of pixels > 0; got {sigma!r}.")
    return float(sigma)


def _check_whole(value, name: str, low: int, high: int | None = None, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"from {low} to {high}{why}"
        raise InvalidParameterError(f"{name} must be a whole number {bound}; got {value!r}.")
    return int(value)


def _patches(inputs, layout: str) -> list:
    """``inputs`` (the model's input structure, batched, or one patch) as a list of patches."""
    if layout == "groups":
        if not isinstance(inputs, dict) or set(inputs) != set(GROUPS):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ShapeMismatchError(f"the model takes a dict of the band groups {sorted(GROUPS)}; got {got}.")
        arrays = {}
        for group, bands in GROUPS.items():
            x = np.asarray(inputs[group])
            shape = (GROUP_SIZES[group], GROUP_SIZES[group], len(bands))
            x = x[None] if x.ndim == 3 else x
            if x.shape[1:] != shape:
                raise ShapeMismatchError(f"input '{group}' has shape {x.shape[1:]} per patch; the model expects {shape}.")
            arrays[group] = x
        sizes = {x.shape[0] for x in arrays.values()}
        if len(sizes) != 1:
            raise ShapeMismatchError("every band group needs the same number of patches.")
        return [{g: x[i] for g, x in arrays.items()} for i in range(sizes.pop())]
    if isinstance(inputs, dict) and len(inputs) == 1:
        inputs = next(iter(inputs.values()))
    x = np.asarray(inputs)
    x = x[None] if x.ndim == 3 else x
    shape = (GRID, GRID, len(STACKED_BANDS))
    if x.ndim != 4 or x.shape[1:] != shape:
        raise ShapeMismatchError(f"the model takes stacked bands of shape {shape} per patch; got {x.shape[1:]}.")
    return list(x)


def _class_lists(classes, n: int) -> list[list[int]]:
    """One list of class indices per patch: ``classes`` per patch, or one class (or list of
    classes) for every patch."""
    if isinstance(classes, (int, np.integer, str)):
        classes = [classes]
    classes = list(classes)
    if classes and all(isinstance(c, (int, np.integer, str)) for c in classes):
        return [class_indices(classes, len(CLASS_NAMES))] * n
    if len(classes) != n:
        raise ShapeMismatchError(f"classes needs one list of classes per patch: {n} patches, {len(classes)} lists.")
    return [class_indices(c, len(CLASS_NAMES)) for c in classes]


def _relevance_list(relevance, layout: str, class_lists: list[list[int]]) -> list[np.ndarray]:
    """The relevance of each patch, ``float64 [classes, 120, 120, 12]``, checked."""
    n = len(class_lists)
    if isinstance(relevance, dict):  # what `lrp` returns for a groups model: 10 m grid per patch
        sizes = {np.shape(v)[0] for v in relevance.values()}
        if len(sizes) != 1 or sizes.pop() != n:
            raise ShapeMismatchError(f"relevance needs {n} patches in every band group.")
        relevance = [to_10m_grid({g: v[i] for g, v in relevance.items()}, "groups") for i in range(n)]
    per_patch = list(relevance) if not isinstance(relevance, np.ndarray) or relevance.ndim == 5 else [relevance]
    if len(per_patch) != n:
        raise ShapeMismatchError(f"relevance is given for {len(per_patch)} patches; the inputs have {n}.")
    out = []
    for i, (r, cls) in enumerate(zip(per_patch, class_lists)):
        r = np.asarray(r, "float64")
        want = (len(cls), GRID, GRID, len(STACKED_BANDS))
        if r.shape != want:
            raise ShapeMismatchError(
                f"relevance of patch {i} has shape {r.shape}; expected {want} "
                "(its classes on the 10 m grid, as `to_10m_grid` gives)."
            )
        if not np.isfinite(r).all():
            raise InvalidParameterError(f"relevance of patch {i} is not finite (NaN or infinity); recompute it.")
        out.append(r)
    return out


class _Batches:
    """Model inputs queued and evaluated in batches of ``size``; the last, shorter batch is
    padded to a power of two (at most ``size``), so few shapes are ever compiled."""

    def __init__(self, model, size: int):
        self.model, self.size = model, size
        self.queue: list[dict] = []
        self.queued = 0
        self.logits: list[np.ndarray] = []
        self.passes, self.seconds = 0, 0.0

    def add(self, parts: dict) -> int:
        """Queue a batch of inputs (a dict of arrays); returns the index of its first."""
        start = self.passes + self.queued
        self.queue.append(parts)
        self.queued += len(next(iter(parts.values())))
        while self.queued >= self.size:
            self._run(self.size)
        return start

    def finish(self) -> np.ndarray:
        if self.queued:
            self._run(self.queued)
        return np.concatenate(self.logits) if self.logits else np.zeros((0, len(CLASS_NAMES)))

    def _run(self, n: int):
        joined = {k: np.concatenate([p[k] for p in self.queue]) for k in self.queue[0]}
        batch = {k: v[:n] for k, v in joined.items()}
        rest = {k: v[n:] for k, v in joined.items()}
        self.queue = [rest] if len(next(iter(rest.values()))) else []
        self.queued -= n
        padded = min(self.size, 1 << (n - 1).bit_length())
        if padded > n:
            batch = {k: np.concatenate([v, np.repeat(v[-1:], padded - n, axis=0)]) for k, v in batch.items()}
        x = batch if set(batch) != {"stacked"} else batch["stacked"]
        start = time.perf_counter()
        logits = np.asarray(self.model.predict_on_batch(x), "float64")
        self.seconds += time.perf_counter() - start
        self.logits.append(logits[:n])
        self.passes += n


def aopc(curve) -> float:
    """The area over a perturbation curve: ``mean_k (curve[0] - curve[k])`` over its points."""
    c = np.asarray(curve, "float64")
    return float(np.mean(c[0] - c))


def region_perturbation(model, inputs, relevance, classes, *, region: int = 4, steps: int = 25,
                        baseline: str = "mean", random_seeds: Iterable[int] | int = (0, 1, 2),
                        batch_size: int = 128, blur_sigma: float = 2.0, noise_seed: int = 0) -> RegionPerturbation:
    """Region-perturbation curves and AOPC of heatmaps (see the module docstring).

    Args:
        model: a BigEarthNet-19 model returning logits, either input layout.
        inputs: the patches in the model's input structure (a dict of the band groups, or
            stacked bands), with a batch axis of ``N`` (or one patch without).
        relevance: each patch's relevance on the 10 m grid, ``[N, C, 120, 120, 12]`` or a
            list of ``N`` arrays ``[C_i, 120, 120, 12]`` (what
            :func:`~keras_mlrs.explain.heatmaps.to_10m_grid` gives per patch); also what
            :func:`~keras_mlrs.explain.lrp` returns for the inputs.
        classes: the classes each heatmap explains, one list per patch (indices or names),
            or one list for every patch; ``relevance[i][j]`` explains ``classes[i][j]``.
        region: the side of a region, in 10 m pixels; divides 120.
        steps: ``L``, the perturbation steps of a curve (``L + 1`` points), 1 to the number
            of regions.
        baseline: ``"mean"``, ``"blur"`` or ``"noise"``.
        random_seeds: one random order per seed (empty: no random curves).
        batch_size: model inputs per forward pass.
        blur_sigma: the ``"blur"`` baseline's σ, in pixels of each group's own grid.
        noise_seed: the ``"noise"`` baseline's seed (patch ``i`` draws from ``(noise_seed, i)``).

    Returns:
        A :class:`RegionPerturbation`.
    """
    began = time.perf_counter()
    layout = input_layout(model)
    region = check_region(region)
    n_regions = (GRID // region) ** 2
    steps = _check_whole(steps, "steps", 1, n_regions, f" (the number of {region} × {region} regions)")
    choose("baseline", baseline, BASELINES)
    batch_size = _check_whole(batch_size, "batch_size", 1)
    blur_sigma = _check_sigma(blur_sigma)
    noise_seed = _check_seed(noise_seed, "noise_seed")
    seeds = [random_seeds] if isinstance(random_seeds, (int, np.integer)) else list(random_seeds)
    seeds = [_check_seed(s, "every random seed") for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise InvalidParameterError(f"random_seeds repeats a seed ({seeds}); give distinct seeds.")
    patches = _patches(inputs, layout)
    class_lists = _class_lists(classes, len(patches))
    relevances = _relevance_list(relevance, layout, class_lists)
    stats = band_statistics(model)

    counts = step_counts(n_regions, steps)
    inner = counts[1:-1]
    nothing, everything = np.zeros((1, GRID, GRID), bool), np.ones((1, GRID, GRID), bool)
    random_orders = [region_order(n_regions, "random", seed=s) for s in seeds]
    batches = _Batches(model, batch_size)
    plans = []
    for i, (patch, cls, rel) in enumerate(zip(patches, class_lists, relevances)):
        base = baseline_inputs(patch, layout, baseline, stats=stats, blur_sigma=blur_sigma, noise_seed=(noise_seed, i))

        def queue(masks, patch=patch, base=base):
            return batches.add(_split(perturb(patch, masks, base, layout), layout)) if len(masks) else 0

        scores = region_relevance(rel, region)
        plan = {"original": queue(nothing), "full": queue(everything), "morf": [], "lerf": [], "random": []}
        for j in range(len(cls)):
            for order in ("morf", "lerf"):
                plan[order].append(queue(order_masks(region_order(scores[j], order), inner, region)))
        plan["random"] = [queue(order_masks(o, inner, region)) for o in random_orders]
        plans.append(plan)
    logits = batches.finish()

    def curve(plan, start, c):
        return [float(logits[plan["original"], c]), *map(float, logits[start : start + len(inner), c]),
                float(logits[plan["full"], c])]

    items = []
    for i, (plan, cls) in enumerate(zip(plans, class_lists)):
        for j, c in enumerate(cls):
            morf, lerf = curve(plan, plan["morf"][j], c), curve(plan, plan["lerf"][j], c)
            random = [curve(plan, start, c) for start in plan["random"]]
            per_seed = [aopc(r) for r in random]
            items.append({
                "patch": i, "class": int(c), "logit": morf[0], "morf": morf, "lerf": lerf, "random": random,
                "aopc_morf": aopc(morf), "aopc_lerf": aopc(lerf),
                "aopc_random": float(np.mean(per_seed)) if per_seed else None, "aopc_random_seeds": per_seed,
            })
    seconds = time.perf_counter() - began
    timing = {
        "forward_passes": int(batches.passes), "forward_seconds": float(batches.seconds),
        "passes_per_second": float(batches.passes / batches.seconds) if batches.seconds > 0 else 0.0,
        "seconds": float(seconds), "batch_size": batch_size,
    }
    return RegionPerturbation(
        region=region, steps=steps, baseline=baseline, random_seeds=seeds, n_regions=n_regions,
        fractions=[float(k / n_regions) for k in counts], items=items, timing=timing,
    )


# -- summaries ---------------------------------------------------------------------------------
def _items(result) -> list[dict]:
    return result.items if isinstance(result, RegionPerturbation) else result["items"]


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def mean_curves(result) -> dict[str, list[float]]:
    """The mean logit drop ``f(x_0) - f(x_k)`` at each point, per order, over every
    (patch, class) pair (``random``: over the seeds too); plot it against
    ``result.fractions``. Each curve's mean is that order's mean AOPC."""
    items = _items(result)
    out = {}
    for order in ORDERS:
        drops = []
        for item in items:
            curves = item[order] if order == "random" else [item[order]]
            drops += [np.asarray(c, "float64")[0] - np.asarray(c, "float64") for c in curves]
        if drops:
            out[order] = [float(v) for v in np.mean(drops, axis=0)]
    return out


def summarise(result, class_names=CLASS_NAMES) -> dict:
    """Mean AOPC per class and overall.

    ``per_class[name]``: ``aopc_lrp`` (MoRF), ``aopc_random``, ``aopc_lerf``, means over the
    patches that class was explained for (their number: ``patches``), classes in index
    order. ``mean``: the same over every (patch, class) pair (``pairs``; ``patches`` counts
    the distinct patches). Also ``curves`` (:func:`mean_curves`) and ``fractions``.
    """
    items = _items(result)

    def block(chosen):
        return {"aopc_lrp": _mean(i["aopc_morf"] for i in chosen), "aopc_random": _mean(i["aopc_random"] for i in chosen),
                "aopc_lerf": _mean(i["aopc_lerf"] for i in chosen)}

    per_class = {}
    for c in sorted({i["class"] for i in items}):
        chosen = [i for i in items if i["class"] == c]
        per_class[str(class_names[c])] = {**block(chosen), "patches": len(chosen)}
    fractions = result.fractions if isinstance(result, RegionPerturbation) else result["fractions"]
    return {
        "per_class": per_class,
        "mean": {**block(items), "patches": len({i["patch"] for i in items}), "pairs": len(items)},
        "curves": mean_curves(result), "fractions": list(fractions),
    }


__all__ = [
    "BASELINES", "ORDERS", "REGION_SIZES", "RegionPerturbation", "aopc", "band_statistics", "baseline_inputs",
    "check_region", "gaussian_blur", "mean_curves", "order_masks", "perturb", "region_map", "region_order",
    "region_perturbation", "region_relevance", "step_counts", "summarise",
]
