"""Sanity checks of explanations: model-parameter randomisation and conservation.

**Randomisation** (Adebayo et al., "Sanity checks for saliency maps", NeurIPS 2018): an
explanation that describes the model must change when the model's weights are destroyed.
:func:`randomisation_check` re-initialises the kernel layers (``Conv2D``, ``Dense``) of a
*copy* of the model top-down, from the logit layer towards the inputs, one more layer per
step (*cascading*; ``mode="independent"`` re-initialises one layer at a time instead),
recomputes the heatmaps of the same patches and classes with the same preset, and measures
how similar they still are to the trained model's:

* ``spearman_abs``: Spearman rank correlation of the absolute heatmaps (Adebayo's main
  measure, blind to sign flips);
* ``spearman``: Spearman rank correlation of the signed heatmaps;
* ``ssim``: the structural similarity index (:func:`ssim`) of the signed heatmaps, each
  divided by its largest absolute value.

A heatmap is the relevance summed over a band set on the 10 m grid
(:func:`~keras_mlrs.explain.heatmaps.to_10m_grid`; all 12 bands by default) for a
BigEarthNet model, and the relevance summed over the channels for any other model with one
image input (``[height, width, channels]`` or ``[height, width]``).

The choices, each a parameter:

* **Order.** Kernel layers are ordered by their depth below the output: the number of
  kernel layers on the longest path from the layer to the logit (the logit layer is 0),
  then, within one depth, the later layer in the graph first. For the K-Branch CNN: the
  logit layer, the fusion block, the three branch blocks, then the conv blocks from the
  third to the first.
* **Re-initialisation.** Every weight of the layer (kernel and bias) is drawn again from the
  layer's own initializer (``layer.kernel_initializer``, ``layer.bias_initializer``),
  rebuilt from its configuration with a seed of its own derived from ``seed`` and the
  layer's name (:func:`layer_seed`), so a layer gets the same random weights at every step,
  in either mode and in every run with that seed (on one backend: Keras' random streams
  differ between backends). An initializer without a seed (zeros, ones, constants) is
  deterministic.
* **Batch normalisation** (``batchnorm``). A ``BatchNormalization`` reading a re-initialised
  kernel layer is part of it: its trained scale, offset and statistics were fitted to the
  trained layer's outputs, and left alone they would carry learned information (a per-channel
  gain) into the random model. ``"reset"`` (default) gives it its own initial state
  (``gamma`` 1, ``beta`` 0, moving mean 0, moving variance 1: its initializers), so the pair
  is the fresh, untrained layer; ``"keep"`` leaves it trained.
* **Verdict.** The method is *flagged* (``passed`` False) when, after every layer is
  randomised, the mean of ``metric`` (default ``spearman_abs``) over the heatmaps is still
  above ``threshold`` (default 0.5): its heatmaps then say little about the weights. The
  absolute rank correlation is the default because a random model's logit may have the
  other sign, which flips a signed heatmap without making it any less alike. Means skip
  undefined values.

The caller's model is never changed: the check works on ``keras.models.clone_model`` of it
with its weights copied.

**Conservation.** LRP redistributes a class's logit over the input values; what reaches the
inputs sums to the logit minus what biases, stabilisers (ε) and rules that drop negative
evidence absorb on the way. :func:`conservation` compares, for every heatmap, the sum of its
relevance with the logit (the model's own, computed by the model); :func:`conservation_report`
summarises that per preset. The *bias share* ``1 - sum / logit`` is the part of the logit
not found at the inputs (0 when conserved: the Z rule on a network without any bias).

Undefined values (the rank correlation of a constant heatmap, a relative error of a zero
logit) are ``None`` in the results, which are plain JSON-serialisable dicts and lists.
"""

from __future__ import annotations

import math
import zlib

import keras
import numpy as np

from keras_mlrs.errors import (
    InvalidParameterError,
    MlrsError,
    ShapeMismatchError,
    UnsupportedModelError,
    choose,
)
from keras_mlrs.explain import composites
from keras_mlrs.explain.engine import LRP, class_indices, flatten_inputs, lrp
from keras_mlrs.explain.graph import KERNEL, trace
from keras_mlrs.explain.heatmaps import band_indices, to_10m_grid
from keras_mlrs.explain.kernels import kernel_apply
from keras_mlrs.models import input_layout

#: The similarity measures of :func:`randomisation_check`, in the order reported.
METRICS = ("spearman_abs", "spearman", "ssim")
#: How the check randomises: cumulatively from the top, or one layer at a time.
MODES = ("cascading", "independent")
#: What the check does with the batch normalisation of a randomised layer.
BATCHNORM = ("reset", "keep")
#: The default verdict: flagged when the mean ``spearman_abs`` of the fully randomised model
#: is above this.
DEFAULT_THRESHOLD = 0.5
#: SSIM's constants (Wang et al. 2004): Gaussian window of 11 pixels, sigma 1.5, K1, K2.
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


# -- similarity measures ---------------------------------------------------------------------
def rank(values) -> np.ndarray:
    """The ranks (1 to n, float64) of the values of ``values`` (flattened), ties getting the
    mean of the ranks they span."""
    a = np.asarray(values, "float64").ravel()
    order = np.argsort(a, kind="mergesort")
    ordered = a[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], a.size]  # one past each run of ties
    mean_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks start+1 .. end
    ranks = np.empty(a.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(a, b) -> float:
    """Spearman's rank correlation of ``a`` and ``b`` (same size, flattened): the Pearson
    correlation of their ranks (ties: mean rank), in float64; NaN when either is constant."""
    a, b = np.asarray(a), np.asarray(b)
    if a.size != b.size:
        raise ShapeMismatchError(f"rank correlation needs arrays of one size; got {a.size} and {b.size} values.")
    ra, rb = rank(a), rank(b)
    ra -= ra.mean()
    rb -= rb.mean()
    norm = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / norm if norm > 0 else math.nan


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The 1-D Gaussian weights of SSIM's window: ``size`` taps, ``sigma``, summing to 1."""
    k = np.arange(size, dtype="float64") - (size - 1) / 2
    w = np.exp(-(k**2) / (2 * sigma**2))
    return w / w.sum()


def _filter(x, w):
    """``x`` filtered by the separable window ``w ⊗ w``, where the window fits (valid)."""
    x = np.lib.stride_tricks.sliding_window_view(x, w.size, axis=0) @ w
    return np.lib.stride_tricks.sliding_window_view(x, w.size, axis=1) @ w


def ssim(a, b, data_range: float | None = None) -> float:
    """The structural similarity index of two images (Wang et al. 2004), in float64.

    Local means, variances and the covariance are weighted by an 11 × 11 Gaussian window
    (sigma 1.5, normalised; population, not sample, moments) at every position where the
    window fits inside the image; the SSIM map
    ``(2 μa μb + C1)(2 σab + C2) / ((μa² + μb² + C1)(σa² + σb² + C2))`` with
    ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²`` is averaged. ``L`` is ``data_range``, by default
    the range of the pair (largest minus smallest value of both images). Identical constant
    images (``L`` 0) have SSIM 1. This is what scikit-image's ``structural_similarity(a, b,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=L)`` computes
    (it filters with reflected borders, then crops half a window: the windows that fit).
    """
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    if a.shape != b.shape or a.ndim != 2:
        raise ShapeMismatchError(f"SSIM compares two 2-D images of one shape; got {a.shape} and {b.shape}.")
    if min(a.shape) < SSIM_WINDOW:
        raise ShapeMismatchError(f"SSIM needs images of at least {SSIM_WINDOW} × {SSIM_WINDOW} pixels; got {a.shape}.")
    if data_range is None:
        data_range = float(max(a.max(), b.max()) - min(a.min(), b.min()))
    if data_range == 0:
        if np.array_equal(a, b):
            return 1.0
        raise InvalidParameterError("SSIM needs data_range > 0 for images that differ.")
    w = gaussian_window()
    mu_a, mu_b = _filter(a, w), _filter(b, w)
    var_a = _filter(a * a, w) - mu_a**2
    var_b = _filter(b * b, w) - mu_b**2
    cov = _filter(a * b, w) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(value.mean())


def _max_abs_normalised(h):
    peak = np.abs(h).max()
    return h / peak if peak > 0 else h


def similarities(a, b) -> dict:
    """The :data:`METRICS` of two heatmaps (2-D): Spearman of the absolute and of the signed
    values, and SSIM of the signed heatmaps each divided by its largest absolute value."""
    return {
        "spearman_abs": spearman(np.abs(a), np.abs(b)),
        "spearman": spearman(a, b),
        "ssim": ssim(_max_abs_normalised(np.asarray(a, "float64")), _max_abs_normalised(np.asarray(b, "float64"))),
    }


def _number(x):
    """A float for JSON: None for NaN or infinity."""
    x = float(x)
    return x if math.isfinite(x) else None


def _mean(values):
    finite = [v for v in np.ravel(values) if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


# -- heatmaps -----------------------------------------------------------------------------------
def heatmaps_of(model, relevance, bands: str = "all") -> np.ndarray:
    """``float64 [batch, classes, height, width]``: relevance (as :func:`~keras_mlrs.explain.lrp`
    returns it) summed over the band set ``bands`` on the 10 m grid for a BigEarthNet model,
    or over the channels of the one image input of any other model."""
    try:
        layout = input_layout(model)
    except MlrsError:
        layout = None
    if layout is not None:
        chosen = band_indices(bands)
        n = next(iter(keras.tree.flatten(relevance))).shape[0]
        one = (lambda i: {g: r[i] for g, r in relevance.items()}) if isinstance(relevance, dict) else (lambda i: relevance[i])
        return np.stack([to_10m_grid(one(i), layout)[..., chosen].astype("float64").sum(-1) for i in range(n)])
    flat = keras.tree.flatten(relevance)
    if len(flat) != 1 or flat[0].ndim not in (4, 5):
        shapes = [tuple(r.shape[2:]) for r in flat]
        raise UnsupportedModelError(
            f"model '{model.name}' takes inputs {shapes}; heatmaps need one image input ([height, width] or "
            "[height, width, channels]) or a BigEarthNet model."
        )
    r = np.asarray(flat[0], "float64")
    return r.sum(-1) if r.ndim == 5 else r


# -- randomisation ----------------------------------------------------------------------------
def cascade_order(model) -> list[str]:
    """The names of ``model``'s kernel layers (``Conv2D``, ``Dense``) in the order the
    cascading randomisation takes them: by depth below the output (see the module
    docstring), the logit layer first."""
    graph = trace(model)
    depth = {graph.output: 0}  # tensor id -> kernel layers on the longest path from it to the output
    order = {}
    for index, step in reversed(list(enumerate(graph.steps))):
        below = max((depth.get(t, -1) for t in step.outputs), default=-1)
        if below < 0:  # nothing of it reaches the output
            continue
        if isinstance(step.layer, KERNEL):
            order[step.name] = (below, -index)
            below += 1
        for t in step.inputs:
            depth[t] = max(depth.get(t, -1), below)
    return sorted(order, key=order.get)


def _seeded(initializer, seed: int):
    """``initializer`` rebuilt from its configuration with ``seed`` (when it takes one)."""
    initializer = keras.initializers.get(initializer)
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    return type(initializer).from_config({**config, "seed": seed})


def _reinitialise(layer, seed: int | None) -> None:
    """Every weight of ``layer`` drawn again from the layer's own initializer for it."""
    for k, variable in enumerate(layer.weights):
        name = variable.name.rsplit("/", 1)[-1]
        initializer = getattr(layer, f"{name}_initializer", None)
        if initializer is None:
            raise UnsupportedModelError(
                f"layer '{layer.name}' has weight '{name}' without an initializer of its own, so it cannot be "
                "re-initialised; randomise other layers (`layers=`)."
            )
        if seed is not None:
            initializer = _seeded(initializer, seed + k)
        else:
            initializer = keras.initializers.get(initializer)
        variable.assign(initializer(tuple(variable.shape), dtype=variable.dtype))


def layer_seed(seed: int, name: str) -> int:
    """The seed of the random weights of layer ``name`` under the check's ``seed``: the same
    whichever layers are randomised with it and in which order."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]).generate_state(1)[0] % (2**31 - 16))


def _batchnorm_after(model, names) -> dict:
    """Kernel layer name -> the BatchNormalization that alone reads its output (or None)."""
    graph = trace(model)
    out = {}
    for step in graph.steps:
        if step.name in names:
            readers = graph.consumers(step.outputs[0])
            bn = readers[0].layer if len(readers) == 1 else None
            out[step.name] = bn if isinstance(bn, keras.layers.BatchNormalization) else None
    return out


def _check_layers(model, layers) -> list[str]:
    order = cascade_order(model)
    if layers is None:
        return order
    chosen = [layers] if isinstance(layers, str) else list(layers)
    unknown = [name for name in chosen if name not in order]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise InvalidParameterError(
            f"cannot randomise layers {unknown or chosen}: give distinct names of kernel layers of model "
            f"'{model.name}': {', '.join(order)}."
        )
    return chosen


def randomise_layers(model, layers, seed: int = 0, batchnorm: str = "reset") -> keras.Model:
    """Re-initialise, **in place**, the kernel layers named ``layers`` of ``model`` (None:
    every kernel layer), as the module docstring says: each from its own initializers,
    seeded by :func:`layer_seed`, the batch normalisation reading one reset to its initial
    state unless ``batchnorm="keep"``. Returns ``model``; :func:`randomised_copy` leaves
    the model as it is."""
    choose("batch normalisation handling", batchnorm, BATCHNORM)
    names = _check_layers(model, layers)
    norms = _batchnorm_after(model, set(names))
    for name in names:
        _reinitialise(model.get_layer(name), layer_seed(seed, name))
        if batchnorm == "reset" and norms[name] is not None:
            _reinitialise(norms[name], None)
    return model


def randomised_copy(model, layers, seed: int = 0, batchnorm: str = "reset") -> keras.Model:
    """A copy of ``model`` (``keras.models.clone_model``, weights copied) with ``layers``
    re-initialised as :func:`randomise_layers` does; ``model`` is left unchanged."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return randomise_layers(clone, layers, seed, batchnorm)


def _check_number(name, value, low=-math.inf, high=math.inf):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidParameterError(f"{name} must be a number from {low} to {high}, got {value!r}.")


def randomisation_check(model, inputs, classes, preset: str = "lrp.epsilon", seed: int = 0,
                        mode: str = "cascading", layers=None, batchnorm: str = "reset",
                        metric: str = "spearman_abs", threshold: float = DEFAULT_THRESHOLD,
                        final_only: bool = False, bands: str = "all", dtype: str = "float32",
                        jit: bool = False, batch_size: int | None = None, **rule_params) -> dict:
    """The model-parameter randomisation test of an LRP preset on ``inputs`` and ``classes``
    (see the module docstring).

    Args:
        model: the trained model (left unchanged).
        inputs: what :func:`~keras_mlrs.explain.lrp` takes.
        classes: class indices or names, as :func:`~keras_mlrs.explain.lrp` takes them.
        preset: the LRP preset (and ``rule_params`` its parameters).
        seed: the seed of the random weights (each layer's: :func:`layer_seed`).
        mode: ``"cascading"`` (each step randomises one more layer, top-down) or
            ``"independent"`` (each step randomises one layer alone; a last step randomises
            them all, for the verdict).
        layers: names of the kernel layers to randomise, in that order (default: every
            kernel layer, in :func:`cascade_order`).
        batchnorm: ``"reset"`` or ``"keep"`` the batch normalisation reading a randomised
            layer (see the module docstring).
        metric: the verdict's similarity, one of :data:`METRICS`.
        threshold: the verdict: flagged when the mean ``metric`` after every layer is
            randomised is above it.
        final_only: compute only the fully randomised model (the verdict), no steps between.
        bands: the band set the heatmaps of a BigEarthNet model sum over
            (:data:`~keras_mlrs.explain.heatmaps.BAND_SETS`).
        dtype: as :class:`~keras_mlrs.explain.LRP` takes it.
        batch_size: as :class:`~keras_mlrs.explain.LRP` takes it.
        jit: compile each step's analyzer with XLA. Default no: every step has weights of
            its own, so an analyzer of its own that runs once on the same inputs; XLA would
            compile the whole backward pass again at every step, while without it (JAX runs
            op by op) the operations compiled at the first step are reused by the others.

    Returns:
        ``{"preset", "mode", "seed", "batchnorm", "bands", "classes", "patches", "metrics",
        "order": [layer names], "steps": [{"step", "layer", "randomised": [names so far],
        "mean": {metric: value}, "values": {metric: [[value per class] per patch]}}],
        "verdict": {"metric", "threshold", "final_mean", "passed", "flagged"}, "passed"}``
        (``passed`` and ``flagged`` are None when the final mean is undefined; a step's
        ``layer`` is the layer it randomised last, or ``"all"`` for the last step of the
        independent mode).
    """
    composites.get(preset, **rule_params)  # an unknown preset or parameter fails before any work
    choose("randomisation mode", mode, MODES)
    choose("batch normalisation handling", batchnorm, BATCHNORM)
    choose("similarity metric", metric, METRICS)
    band_indices(bands)
    _check_number("threshold", threshold, -1, 1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidParameterError(f"seed must be a whole number, got {seed!r}.")
    class_ids = class_indices(classes, int(model.outputs[0].shape[-1]))
    chosen = _check_layers(model, layers)

    def explain(m):
        relevance = LRP(m, preset, jit=jit, dtype=dtype, **rule_params)(inputs, class_ids, batch_size=batch_size)
        return heatmaps_of(m, relevance, bands)

    reference = explain(model)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    trained = clone.get_weights()
    if final_only:
        plan = [chosen]
    elif mode == "cascading":
        plan = [chosen[: k + 1] for k in range(len(chosen))]
    else:
        plan = [[name] for name in chosen] + ([chosen] if len(chosen) > 1 else [])

    steps = []
    for k, names in enumerate(plan, start=1):
        clone.set_weights(trained)
        randomise_layers(clone, names, seed, batchnorm)
        maps = explain(clone)
        values = {m: np.full(reference.shape[:2], np.nan) for m in METRICS}
        for i in range(reference.shape[0]):
            for j in range(reference.shape[1]):
                for m, v in similarities(reference[i, j], maps[i, j]).items():
                    values[m][i, j] = v
        steps.append({
            "step": k,
            "layer": names[-1] if len(names) == 1 or mode == "cascading" or final_only else "all",
            "randomised": list(names),
            "mean": {m: _mean(values[m]) for m in METRICS},
            "values": {m: [[_number(v) for v in row] for row in values[m]] for m in METRICS},
        })
    final = steps[-1]["mean"][metric]
    passed = None if final is None else bool(final <= threshold)
    return {
        "preset": preset, "mode": mode, "seed": int(seed), "batchnorm": batchnorm, "bands": bands,
        "classes": class_ids, "patches": int(reference.shape[0]), "metrics": list(METRICS), "order": list(chosen),
        "steps": steps,
        "verdict": {"metric": metric, "threshold": float(threshold), "final_mean": final, "passed": passed,
                    "flagged": None if passed is None else not passed},
        "passed": passed,
    }


# -- conservation -------------------------------------------------------------------------------
def logits(model, inputs) -> np.ndarray:
    """``float64 [batch, classes]``: the logits LRP starts from, computed by the model: its
    output when that is the logit layer's (linear) output, else the logit layer's linear
    part applied to what the model feeds it (an output activation left out)."""
    graph = trace(model)
    flat = flatten_inputs(graph, inputs)
    x = keras.tree.pack_sequence_as(graph.structure, flat)
    tensor, index = graph.logit()
    layer = graph.steps[index].layer
    linear = keras.activations.serialize(layer.activation) in ("linear", None)
    if tensor == graph.output and linear:
        return np.asarray(model.predict_on_batch(x), "float64")
    before = keras.Model(model.inputs, layer.input)
    z = kernel_apply(layer, keras.ops.convert_to_tensor(before.predict_on_batch(x)), layer.kernel, layer.bias)
    return np.asarray(keras.ops.convert_to_numpy(z), "float64")


def conservation(model, inputs, relevance, classes, logit_values=None) -> dict:
    """How much of each explained logit the relevance ``relevance`` (as
    :func:`~keras_mlrs.explain.lrp` returned it for ``inputs`` and ``classes``) finds at
    the inputs.

    Args:
        logit_values: the model's logits of ``inputs`` (``[batch, num_classes]``), when the
            caller has them; computed by :func:`logits` otherwise.

    Returns:
        ``float64 [batch, len(classes)]`` arrays: ``"logit"``, ``"sum"`` (of the relevance
        over every input value), ``"abs_error"`` ``|sum - logit|``, ``"rel_error"``
        ``|sum - logit| / |logit|`` and ``"bias_share"`` ``1 - sum / logit`` (NaN where the
        logit is 0); and ``"classes"``, the class indices.
    """
    num_classes = int(model.outputs[0].shape[-1])
    class_ids = class_indices(classes, num_classes)
    flat = [np.asarray(r) for r in keras.tree.flatten(relevance)]
    n = flatten_inputs(trace(model), inputs)[0].shape[0]
    if not flat or any(r.ndim < 2 or r.shape[:2] != (n, len(class_ids)) for r in flat):
        got = [tuple(r.shape[:2]) for r in flat]
        raise ShapeMismatchError(
            f"relevance must be [patches, classes, ...] = {(n, len(class_ids))} for every input; got {got}."
        )
    total = sum(r.astype("float64").sum(axis=tuple(range(2, r.ndim))) for r in flat)
    all_logits = np.asarray(logits(model, inputs) if logit_values is None else logit_values, "float64")
    if all_logits.shape != (n, num_classes):
        raise ShapeMismatchError(f"logit_values must be [patches, classes] = {(n, num_classes)}; got {all_logits.shape}.")
    return {"classes": class_ids, **conservation_errors(all_logits[:, class_ids], total)}


def conservation_errors(logit, total) -> dict:
    """Per heatmap, from the explained logits and the sums of their relevance (arrays of one
    shape): ``"logit"``, ``"sum"``, ``"abs_error"``, ``"rel_error"`` and ``"bias_share"``
    (NaN where the logit is 0), float64."""
    z, total = np.asarray(logit, "float64"), np.asarray(total, "float64")
    error = np.abs(total - z)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(z != 0, error / np.abs(z), np.nan)
        share = np.where(z != 0, 1 - total / z, np.nan)
    return {"logit": z, "sum": total, "abs_error": error, "rel_error": rel, "bias_share": share}


def conservation_summary(errors: dict) -> dict:
    """Means and maxima of :func:`conservation_errors` over the heatmaps, undefined values
    (zero logits) skipped: ``"mean_abs_error"``, ``"max_abs_error"``, ``"mean_rel_error"``,
    ``"max_rel_error"``, ``"mean_bias_share"``."""
    return {"mean_abs_error": _mean(errors["abs_error"]), "max_abs_error": _max(errors["abs_error"]),
            "mean_rel_error": _mean(errors["rel_error"]), "max_rel_error": _max(errors["rel_error"]),
            "mean_bias_share": _mean(errors["bias_share"])}


def _max(values):
    finite = [v for v in np.ravel(values) if math.isfinite(v)]
    return float(np.max(finite)) if finite else None


def conservation_report(model, inputs, classes, presets=None, dtype: str = "float32",
                        batch_size: int | None = None) -> dict:
    """Conservation (:func:`conservation`) of every preset of ``presets`` (names; default
    every preset of :data:`~keras_mlrs.explain.composites.PRESETS`, each with its default
    parameters) on ``inputs`` and ``classes``; the logits are computed once.

    Returns:
        ``{"classes", "heatmaps", "presets": {name: {"mean_abs_error", "max_abs_error",
        "mean_rel_error", "max_rel_error", "mean_bias_share"}}}``; the means and maxima are
        over every (patch, class), skipping undefined values (zero logits).
    """
    names = composites.names() if presets is None else [presets] if isinstance(presets, str) else list(presets)
    if not names:
        raise InvalidParameterError("no preset to report on; give at least one preset name.")
    for name in names:
        composites.get(name)  # an unknown name fails before any work
    class_ids = class_indices(classes, int(model.outputs[0].shape[-1]))
    z = logits(model, inputs)
    out = {}
    for name in names:
        relevance = lrp(model, inputs, class_ids, preset=name, batch_size=batch_size, dtype=dtype)
        out[name] = conservation_summary(conservation(model, inputs, relevance, class_ids, logit_values=z))
    return {"classes": class_ids, "heatmaps": int(z.shape[0] * len(class_ids)), "presets": out}


__all__ = [
    "BATCHNORM", "DEFAULT_THRESHOLD", "METRICS", "MODES", "cascade_order", "conservation", "conservation_errors",
    "conservation_report", "conservation_summary",
    "gaussian_window", "heatmaps_of", "layer_seed", "logits", "randomisation_check", "randomise_layers",
    "randomised_copy", "rank", "similarities", "spearman", "ssim",
]
