"""Multi-label losses as Keras 3 objects.

Every loss takes ``(y_true, logits)``: multi-hot labels in {0, 1} and raw model
outputs of shape ``[batch, classes]``. Each comes twice, Keras-style:

* a plain function (``bce``, ``focal``, ...) that holds the math and returns one
  value per sample (shape ``[batch]``);
* a :class:`keras.losses.Loss` subclass (``BinaryCrossentropy``, ``Focal``, ...)
  that validates its hyperparameters, applies Keras reductions and
  ``sample_weight``, serializes with ``get_config`` and names its decision rule
  (``loss.decision``).

All computation is in float32, also under mixed precision, and stays finite (value
and gradient) for logits as large as ``|z| = 1e4``.

Per-sample values: the element-wise losses (``bce``, ``focal``, ``weighted_bce``,
``hamming``, ``huber``, ``asl``) average over classes; ``ranking`` sums over
(positive, negative) label pairs, the study's eq. 3.18 (``pair_reduction="mean"``
averages over them instead); ``sparsemax``, ``lsep``, ``zlpr`` and ``two_way`` are
per-sample as defined in their docstrings. The default batch reduction is the
mean over samples.

The registry (:func:`get`, :func:`names`, :func:`spec`) is the single source of loss
names, hyperparameters and decision rules for the CLI, the zoo and the docs.
"""

import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from keras_mlrs.bigearthnet import TRAIN_CLASS_COUNTS
from keras_mlrs.core import decision as decision_rules
from keras_mlrs.core.ops import masked_logsumexp, sparsemax_threshold, to_float32
from keras_mlrs.errors import (
    InvalidParameterError,
    Registry,
    ShapeMismatchError,
    UnknownNameError,
    choose,
    keyword_defaults,
)

__all__ = [
    "AsymmetricLoss",
    "BinaryCrossentropy",
    "Focal",
    "HammingSurrogate",
    "LSEP",
    "ModifiedHuber",
    "MultiLabelLoss",
    "Ranking",
    "SparsemaxLoss",
    "TwoWay",
    "WeightedBinaryCrossentropy",
    "ZLPR",
    "asl",
    "bce",
    "class_balanced_weights",
    "focal",
    "get",
    "hamming",
    "huber",
    "inverse_frequency_weights",
    "lsep",
    "names",
    "ranking",
    "resolve_class_weights",
    "sparsemax",
    "spec",
    "two_way",
    "weighted_bce",
    "zlpr",
]


# --------------------------------------------------------------------------- class weights


def _counts_array(counts):
    counts = np.asarray(counts, dtype="float64")
    if counts.ndim != 1 or counts.size == 0:
        raise InvalidParameterError("class counts must be a non-empty 1-D sequence, one per class.")
    if not np.all(np.isfinite(counts)) or np.any(counts <= 0):
        raise InvalidParameterError(
            "every class count must be a positive number; a class with no sample cannot be weighted "
            "by its frequency (drop it or give explicit class_weights)."
        )
    return counts


def inverse_frequency_weights(counts) -> np.ndarray:
    """Class weights inversely proportional to class frequency, normalised to mean 1.

    ``w_c = (1 / n_c) / mean_k(1 / n_k)`` for the number ``n_c`` of training samples
    labelled with class ``c``. With the BigEarthNet-19 training counts, the rarest class
    (Coastal wetlands, 1,037 patches) weighs about 97 times the most common (Arable land).
    """
    inv = 1.0 / _counts_array(counts)
    return inv / inv.mean()


def class_balanced_weights(counts, beta: float = 0.9999) -> np.ndarray:
    """Class-balanced weights from the effective number of samples (Cui et al., CVPR 2019).

    ``w_c ∝ (1 - β) / (1 - β^{n_c})``, normalised to mean 1. ``β = 0`` gives equal
    weights; ``β → 1`` approaches inverse frequency.
    """
    beta = _check_beta(beta)
    counts = _counts_array(counts)
    effective = -np.expm1(counts * np.log1p(beta - 1.0)) if beta > 0 else np.ones_like(counts)  # 1 - β^n
    w = (1.0 - beta) / effective if beta > 0 else effective
    return w / w.mean()


def _check_beta(beta):
    beta = float(beta)
    if not 0.0 <= beta < 1.0:
        raise InvalidParameterError(f"beta must be in [0, 1), got {beta}; the usual value is 0.9999.")
    return beta


_WEIGHTINGS = ("inverse_frequency", "class_balanced")


def resolve_class_weights(class_weights, beta: float = 0.9999, counts=None) -> np.ndarray | None:
    """Turn a ``class_weights`` specification into an array of per-class weights (or None).

    ``class_weights`` is ``None`` (no weighting), a sequence of non-negative weights, one per
    class, or the name of a scheme computed from class ``counts`` (by default the
    BigEarthNet-19 training-split counts): ``"inverse_frequency"`` or
    ``"class_balanced"`` (which uses ``beta``).
    """
    if class_weights is None:
        return None
    if isinstance(class_weights, str):
        counts = TRAIN_CLASS_COUNTS if counts is None else counts
        scheme = choose("class weighting", class_weights, _WEIGHTINGS, otherwise="or give one weight per class")
        return inverse_frequency_weights(counts) if scheme == "inverse_frequency" else class_balanced_weights(counts, beta)
    w = np.asarray(class_weights, dtype="float64")
    if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InvalidParameterError(
            "class_weights must be a list of one non-negative finite weight per class."
        )
    return w


# --------------------------------------------------------------------------- functional forms


def _prepare(y_true, logits):
    """float32 tensors, with the shapes checked."""
    logits = to_float32(logits)
    y_true = to_float32(y_true)
    if len(logits.shape) != 2:
        raise ShapeMismatchError(
            f"logits must have shape [batch, classes], got {tuple(logits.shape)}."
        )
    if tuple(y_true.shape) != tuple(logits.shape) and None not in (*y_true.shape, *logits.shape):
        raise ShapeMismatchError(
            f"labels of shape {tuple(y_true.shape)} do not match logits of shape "
            f"{tuple(logits.shape)}; give one multi-hot row of {logits.shape[-1]} classes per sample."
        )
    return y_true, logits


def _weighted_class_mean(elementwise, class_weights):
    if class_weights is not None:
        w = to_float32(np.asarray(class_weights))
        if elementwise.shape[-1] is not None and w.shape[0] != elementwise.shape[-1]:
            raise ShapeMismatchError(
                f"{w.shape[0]} class weights given for {elementwise.shape[-1]} classes; "
                "give one weight per class."
            )
        elementwise = elementwise * w
    return ops.mean(elementwise, axis=-1)


def bce(y_true, logits, class_weights=None):
    """Sigmoid cross-entropy per sample, mean over classes:
    ``-mean_c w_c [y_c log σ(z_c) + (1 - y_c) log σ(-z_c)]`` (``w_c = 1`` unless weighted).
    Computed as log-sigmoids, exact for any logit."""
    y, z = _prepare(y_true, logits)
    ce = -(y * ops.log_sigmoid(z) + (1.0 - y) * ops.log_sigmoid(-z))
    return _weighted_class_mean(ce, class_weights)


def focal(y_true, logits, gamma=2.0, alpha=None, class_weights=None):
    """Focal loss (Lin et al., ICCV 2017) per sample, mean over classes:
    ``-α_t (1 - p_t)^γ log p_t`` with ``p_t = σ(z)`` for a positive label and ``1 - σ(z)``
    for a negative one, ``α_t = α`` / ``1 - α`` (no α-balancing when ``alpha`` is None).
    The modulating factor is computed as ``exp(γ log σ(∓z))``, finite for any logit."""
    y, z = _prepare(y_true, logits)
    pos = y * ops.exp(gamma * ops.log_sigmoid(-z)) * ops.log_sigmoid(z)
    neg = (1.0 - y) * ops.exp(gamma * ops.log_sigmoid(z)) * ops.log_sigmoid(-z)
    if alpha is not None:
        pos, neg = alpha * pos, (1.0 - alpha) * neg
    return _weighted_class_mean(-(pos + neg), class_weights)


def weighted_bce(y_true, logits, class_weights="inverse_frequency", beta=0.9999):
    """Class-weighted sigmoid cross-entropy: class c's term times ``class_weights[c]``.
    By default the weights are inversely proportional to the BigEarthNet-19
    training-split class frequencies (mean 1); see :func:`resolve_class_weights`."""
    return bce(y_true, logits, class_weights=resolve_class_weights(class_weights, beta))


def hamming(y_true, logits):
    """Differentiable Hamming loss per sample: ``mean_c [y_c (1 - p_c) + (1 - y_c) p_c]``,
    ``p = σ(z)``.

    The Hamming loss counts wrongly assigned labels; it is piecewise constant in the
    logits, so it has no useful gradient. If each label is drawn independently with
    probability ``p_c``, this surrogate is exactly the *expected* fraction of wrong
    labels, a smooth function whose minimum is the Hamming loss's."""
    y, z = _prepare(y_true, logits)
    return ops.mean(y * ops.sigmoid(-z) + (1.0 - y) * ops.sigmoid(z), axis=-1)


def huber(y_true, logits):
    """Modified Huber loss for classification (Zhang, ICML 2004), mean over classes:
    with the margin ``s = (2y - 1) z``, ``max(0, 1 - s)²`` for ``s >= -1`` and ``-4 s``
    below: quadratic near the decision boundary, linear (robust to outliers) far on the
    wrong side."""
    y, z = _prepare(y_true, logits)
    s = (2.0 * y - 1.0) * z
    return ops.mean(ops.where(s >= -1.0, ops.square(ops.relu(1.0 - s)), -4.0 * s), axis=-1)


#: How :func:`ranking` reduces its pairs: ``"sum"`` (the study's eq. 3.18) or ``"mean"``.
_PAIR_REDUCTIONS = ("sum", "mean")


def _check_pair_reduction(pair_reduction):
    value = pair_reduction.strip().lower() if isinstance(pair_reduction, str) else pair_reduction
    try:
        return choose("pair_reduction", value, _PAIR_REDUCTIONS,
                      otherwise="(sum is the study's eq. 3.18, mean averages over the pairs)")
    except UnknownNameError as error:  # a bad value of a hyperparameter, not an unknown loss
        raise InvalidParameterError(str(error)) from None


def ranking(y_true, logits, margin=1.0, pair_reduction="sum"):
    """Pairwise ranking (hinge) loss per sample, over the pairs of a positive label u and a
    negative label v:

    * ``pair_reduction="sum"`` (default): ``Σ_{u∈Y} Σ_{v∉Y} max(0, margin + z_v - z_u)``,
      the ranking loss of the study (Yessou's MSc thesis, TU Berlin 2020, eq. 3.18,
      margin α = 1);
    * ``pair_reduction="mean"``: the same sum divided by the number of pairs
      ``|Y| (K - |Y|)``.

    A sample with no positive or no negative label has no pair and contributes 0.

    The sum weighs a sample by its number of pairs: with the 19 BigEarthNet classes, a
    patch with 9 labels has 90 pairs and one with a single label 18, so the first can
    weigh up to 5 times more. The mean gives every sample the same weight (and a scale
    that does not grow with the number of classes); it was keras-mlrs' only form before
    ``pair_reduction`` existed, kept to reproduce runs trained with it."""
    pair_reduction = _check_pair_reduction(pair_reduction)
    y, z = _prepare(y_true, logits)
    pos = y[:, :, None]  # u
    neg = (1.0 - y)[:, None, :]  # v
    pairs = pos * neg
    hinge = ops.relu(margin + z[:, None, :] - z[:, :, None])
    total = ops.sum(pairs * hinge, axis=(1, 2))
    if pair_reduction == "sum":
        return total
    n_pairs = ops.sum(pairs, axis=(1, 2))
    return total / ops.maximum(n_pairs, 1.0)


def sparsemax(y_true, logits):
    """Multi-label sparsemax loss (Martins & Astudillo, ICML 2016), per sample:
    ``-qᵀz + ½ Σ_{j∈S(z)} (z_j² - τ(z)²) + ½‖q‖²`` with ``q = y / ‖y‖₁`` (``q = 0`` for a
    sample with no label), ``τ`` the sparsemax threshold and ``S(z)`` its support.

    Its gradient is ``sparsemax(z) - q``. Computed after shifting the logits by their
    maximum (exact: the loss changes by ``max(z) (1 - Σq)`` under the shift), and
    with ``z_j² - τ² = p_j (z_j + τ)`` to avoid cancellation.
    """
    y, z = _prepare(y_true, logits)
    n_labels = ops.sum(y, axis=-1, keepdims=True)
    q = y / ops.maximum(n_labels, 1.0)
    shift = ops.stop_gradient(ops.max(z, axis=-1, keepdims=True))
    zs = z - shift
    tau = sparsemax_threshold(zs, axis=-1)
    p = ops.relu(zs - tau)
    value = (
        -ops.sum(q * zs, axis=-1)
        + 0.5 * ops.sum(p * (zs + tau), axis=-1)
        + 0.5 * ops.sum(ops.square(q), axis=-1)
    )
    return value + ops.squeeze(shift, -1) * (1.0 - ops.sum(q, axis=-1))


def asl(y_true, logits, gamma_pos=0.0, gamma_neg=4.0, clip=0.05):
    """Asymmetric loss (Ridnik et al., ICCV 2021), mean over classes:
    ``-[y (1 - p)^{γ+} log p + (1 - y) p_m^{γ-} log(1 - p_m)]`` with ``p = σ(z)`` and the
    shifted probability ``p_m = max(p - clip, 0)`` that discards easy negatives.
    Averaged over classes (the paper sums). Uses log-sigmoids and float32 throughout,
    so it stays finite when the model runs in float16."""
    y, z = _prepare(y_true, logits)
    pos = ops.log_sigmoid(z)
    if gamma_pos:
        pos = pos * ops.exp(gamma_pos * ops.log_sigmoid(-z))
    if clip:
        p_m = ops.relu(ops.sigmoid(z) - clip)
        log_not_p_m = ops.log(ops.minimum(ops.sigmoid(-z) + clip, 1.0))
        if gamma_neg:
            has_p = p_m > 0
            focus = ops.where(has_p, ops.exp(gamma_neg * ops.log(ops.where(has_p, p_m, 1.0))), 0.0)
        else:
            focus = 1.0
    else:
        log_not_p_m = ops.log_sigmoid(-z)
        focus = ops.exp(gamma_neg * ops.log_sigmoid(z)) if gamma_neg else 1.0
    neg = focus * log_not_p_m
    return -ops.mean(y * pos + (1.0 - y) * neg, axis=-1)


def lsep(y_true, logits):
    """LSEP loss (Li et al., CVPR 2017), per sample:
    ``log(1 + Σ_{v∉Y} Σ_{u∈Y} exp(z_v - z_u))``.

    Computed in O(K) as ``softplus(LSE_{v∉Y}(z_v) + LSE_{u∈Y}(-z_u))``, since the double
    sum factorises. A sample with no positive or no negative label gives 0."""
    y, z = _prepare(y_true, logits)
    pos, neg = y > 0.5, y <= 0.5
    return ops.softplus(masked_logsumexp(z, neg) + masked_logsumexp(-z, pos))


def zlpr(y_true, logits):
    """ZLPR / multi-label categorical cross-entropy (Su et al., 2022), per sample:
    ``log(1 + Σ_{v∉Y} e^{z_v}) + log(1 + Σ_{u∈Y} e^{-z_u})``. It pushes positive logits
    above 0 and negative ones below, so its decision rule is ``logit > 0``."""
    y, z = _prepare(y_true, logits)
    pos, neg = y > 0.5, y <= 0.5
    return ops.softplus(masked_logsumexp(z, neg)) + ops.softplus(masked_logsumexp(-z, pos))


def two_way(y_true, logits, tp=4.0, tn=1.0):
    """Two-way multi-label loss (Kobayashi, CVPR 2023).

    With the smooth hardest-negative and hardest-positive logits
    ``n(A) = t_n LSE_{A neg}(z / t_n)`` and ``p(A) = t_p LSE_{A pos}(-z / t_p)`` over a set
    ``A`` of (sample, class) entries, the loss is

    * sample-wise, per sample i: ``softplus(n(row i) + p(row i))`` (0 without a positive
      label), plus
    * class-wise: the mean over the classes that have a positive in the batch of
      ``softplus(n(column c) + p(column c))``.

    The class-wise term couples the samples of a batch: it is computed once per batch
    and added to every sample's value, so the default mean reduction gives the paper's
    sum of the two terms.
    """
    y, z = _prepare(y_true, logits)
    pos, neg = y > 0.5, y <= 0.5

    def relation(axis):
        n = tn * masked_logsumexp(z / tn, neg, axis=axis)
        p = tp * masked_logsumexp(-z / tp, pos, axis=axis)
        return ops.softplus(n + p)

    sample_term = relation(axis=-1)
    has_pos_class = ops.cast(ops.any(pos, axis=0), "float32")
    class_term = ops.sum(relation(axis=0) * has_pos_class) / ops.maximum(ops.sum(has_pos_class), 1.0)
    return sample_term + class_term


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class LossSpec:
    """What the registry knows of a loss: its name, class, functional form, decision rule
    and description."""

    name: str
    cls: type
    fn: object
    decision: str
    description: str
    paper: str

    @property
    def hyperparameters(self) -> dict:
        """Hyperparameter names and their defaults, read off the class constructor."""
        return keyword_defaults(self.cls, skip=("reduction", "name", "dtype"))


#: The losses, by name: the study's seven first, then the more recent ones.
LOSSES: Registry[LossSpec] = Registry(
    "loss", parameters=lambda spec: spec.hyperparameters,
    key=lambda name: str(name).strip().lower().replace("-", "_"), parameter_word="hyperparameter",
)


def _register(name, fn, decision, description, paper):
    """Register a loss class and its functional form ``fn`` with the registry and with
    Keras' serialization: a model compiled with either loads back. Both carry the loss's
    decision rule as ``.decision``."""

    def wrap(cls):
        cls.registry_name = name
        fn.decision = decision_rules.get(decision)
        keras.saving.register_keras_serializable(package="keras_mlrs")(fn)
        LOSSES.add(name, LossSpec(name, cls, fn, decision, description, paper))
        return keras.saving.register_keras_serializable(package="keras_mlrs")(cls)

    return wrap


def names() -> list[str]:
    """The registered loss names, in the order of the study followed by the extra losses."""
    return LOSSES.names()


def spec(name: str) -> LossSpec:
    """The registry entry of a loss name."""
    return LOSSES.get(name)


def get(identifier, **hparams) -> "MultiLabelLoss":
    """A loss object from its registry name and hyperparameters (``get("focal", gamma=2.0)``),
    a config dict (``{"name": "focal", "gamma": 2.0}``, or a serialized loss), or a loss
    instance (returned as is)."""
    return LOSSES.resolve(identifier, hparams, keras.losses.Loss, _build, keras.saving.deserialize_keras_object,
                          ignore=("reduction", "name"))


def _build(spec, params):
    try:
        return spec.cls(**params)
    except (TypeError, ValueError) as err:  # a value of the wrong kind, e.g. gamma="abc"
        if isinstance(err, InvalidParameterError):
            raise
        raise InvalidParameterError(f"cannot build loss '{spec.name}' with {params}: {err}.") from None


# --------------------------------------------------------------------------- classes


def _positive(name, value, allow_zero=False):
    if isinstance(value, bool):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}.")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}.") from None
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and math.isfinite(value)):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidParameterError(f"{name} must be {bound}, got {value}.")
    return value


class MultiLabelLoss(keras.losses.Loss):
    """Base of the keras-mlrs losses: float32 computation, a decision rule, a config.

    Subclasses set ``fn`` (the functional form) and store their hyperparameters in
    ``self.hparams``.
    """

    registry_name = None
    fn = None

    def __init__(self, reduction="sum_over_batch_size", name=None, **hparams):
        super().__init__(name=name or self.registry_name, reduction=reduction, dtype="float32")
        self.hparams = hparams

    def call(self, y_true, y_pred):
        return type(self).fn(y_true, y_pred, **self._fn_kwargs())

    def _fn_kwargs(self):
        return self.hparams

    @property
    def decision(self) -> decision_rules.DecisionRule:
        """The decision rule that matches this loss (see :mod:`keras_mlrs.core.decision`)."""
        return decision_rules.get(LOSSES.get(self.registry_name).decision)

    def get_config(self):
        return {**super().get_config(), **self.hparams}

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({params})"


class _ClassWeighted(MultiLabelLoss):
    """A loss whose per-class terms can be weighted (``class_weights``, ``beta``)."""

    def __init__(self, class_weights=None, beta=0.9999, **kwargs):
        beta = _check_beta(beta)
        self._weights = resolve_class_weights(class_weights, beta)
        if isinstance(class_weights, (np.ndarray, tuple)):
            class_weights = [float(w) for w in class_weights]
        super().__init__(class_weights=class_weights, beta=beta, **kwargs)

    def _fn_kwargs(self):
        kwargs = {k: v for k, v in self.hparams.items() if k not in ("class_weights", "beta")}
        return {**kwargs, "class_weights": self._weights}


@_register("bce", bce, "sigmoid", "Sigmoid cross-entropy, the standard multi-label loss.",
           "e.g. Goodfellow et al., Deep Learning, 2016")
class BinaryCrossentropy(_ClassWeighted):
    """Sigmoid cross-entropy from logits, mean over classes (functional form :func:`bce`):
    ``L = -mean_c w_c [y_c log σ(z_c) + (1 - y_c) log σ(-z_c)]``, ``w_c = 1`` unless weighted.

    Source: the standard binary cross-entropy, applied per label (e.g. Goodfellow,
    Bengio & Courville, *Deep Learning*, MIT Press 2016, §6.2.2). Decision rule: sigmoid ≥ 0.5.

    Args:
        class_weights: ``None``, one weight per class, ``"inverse_frequency"`` or
            ``"class_balanced"`` (Cui et al., CVPR 2019; uses ``beta``), the last two
            from the BigEarthNet-19 training counts.
        beta: the effective-number parameter of ``"class_balanced"`` weights.
    """

    fn = staticmethod(bce)


@_register("focal", focal, "sigmoid", "Down-weights easy labels by (1 - p_t)^gamma to focus on hard ones.",
           "Lin et al., Focal Loss for Dense Object Detection, ICCV 2017")
class Focal(_ClassWeighted):
    """Focal loss from logits, mean over classes (functional form :func:`focal`):
    ``L = -mean_c α_t (1 - p_t)^γ log p_t``, ``p_t = σ(z)`` for a positive label and
    ``1 - σ(z)`` for a negative one.

    Source: Lin, Goyal, Girshick, He & Dollár, *Focal Loss for Dense Object Detection*,
    ICCV 2017. Decision rule: sigmoid ≥ 0.5.

    Args:
        gamma: focusing parameter γ >= 0 (0 gives cross-entropy).
        alpha: α-balancing of positive labels in [0, 1], or None (off).
        class_weights: optional class weighting, as for :class:`BinaryCrossentropy`.
        beta: the effective-number parameter of ``"class_balanced"`` weights.
    """

    fn = staticmethod(focal)

    def __init__(self, gamma=2.0, alpha=None, class_weights=None, beta=0.9999, **kwargs):
        gamma = _positive("gamma", gamma, allow_zero=True)
        if alpha is not None:
            alpha = float(alpha)
            if not 0.0 <= alpha <= 1.0:
                raise InvalidParameterError(f"alpha must be in [0, 1] (or None), got {alpha}.")
        super().__init__(gamma=gamma, alpha=alpha, class_weights=class_weights, beta=beta, **kwargs)


@_register("weighted_bce", weighted_bce, "sigmoid", "Cross-entropy with per-class weights (default: inverse class frequency).",
           "e.g. Yessou et al., IGARSS 2020")
class WeightedBinaryCrossentropy(_ClassWeighted):
    """Class-weighted sigmoid cross-entropy (functional form :func:`weighted_bce`):
    ``L = -mean_c w_c [y_c log σ(z_c) + (1 - y_c) log σ(-z_c)]`` with, by default,
    ``w_c ∝ 1 / n_c`` (mean 1) from the BigEarthNet-19 training counts ``n_c``.

    Source: the weighted cross-entropy of the study (Yessou, Sumbul & Demir, IGARSS 2020);
    class-balanced weights from Cui et al., *Class-Balanced Loss Based on Effective Number
    of Samples*, CVPR 2019. Decision rule: sigmoid ≥ 0.5.

    Weights live in the loss because Keras' ``fit(class_weight=...)`` argmaxes the
    labels, which is meaningless for multi-hot targets.

    Args:
        class_weights: one weight per class, ``"inverse_frequency"`` (default) or
            ``"class_balanced"``, the last two from the BigEarthNet-19 training counts.
        beta: the effective-number parameter of ``"class_balanced"`` weights.
    """

    fn = staticmethod(bce)

    def __init__(self, class_weights="inverse_frequency", beta=0.9999, **kwargs):
        if class_weights is None:
            raise InvalidParameterError(
                "weighted_bce needs class_weights; use the 'bce' loss for unweighted cross-entropy."
            )
        super().__init__(class_weights=class_weights, beta=beta, **kwargs)


@_register("hamming", hamming, "sigmoid", "Expected fraction of wrong labels: a smooth Hamming loss.",
           "e.g. Destercke, Multilabel Prediction with Probability Sets: The Hamming Loss Case, 2014")
class HammingSurrogate(MultiLabelLoss):
    """Differentiable surrogate of the Hamming loss (functional form :func:`hamming`):
    ``L = mean_c [y_c (1 - σ(z_c)) + (1 - y_c) σ(z_c)]``, the expected fraction of wrong
    labels when label c is drawn with probability ``σ(z_c)``.

    Source: the Hamming loss of multi-label learning (e.g. Destercke, *Multilabel
    Prediction with Probability Sets: The Hamming Loss Case*, IPMU 2014). Decision rule:
    sigmoid ≥ 0.5.
    """

    fn = staticmethod(hamming)


@_register("huber", huber, "logit", "Modified Huber: quadratic near the margin, linear for outliers.",
           "Zhang, Solving Large Scale Linear Prediction Problems Using SGD, ICML 2004")
class ModifiedHuber(MultiLabelLoss):
    """Modified Huber loss for classification (functional form :func:`huber`): with
    ``s = (2y - 1) z``, ``max(0, 1 - s)²`` if ``s >= -1`` else ``-4 s``, mean over classes.

    Source: Zhang, *Solving Large Scale Linear Prediction Problems Using Stochastic
    Gradient Descent Algorithms*, ICML 2004 (after Huber, 1964). Decision rule: logit > 0.
    """

    fn = staticmethod(huber)


@_register("ranking", ranking, "logit", "Pairwise hinge: each positive label above each negative by a margin.",
           "e.g. Gong et al., Deep Convolutional Ranking for Multilabel Image Annotation, 2014")
class Ranking(MultiLabelLoss):
    """Pairwise ranking loss (functional form :func:`ranking`): by default the sum over
    (positive u, negative v) label pairs of ``max(0, margin + z_v - z_u)``, the study's
    eq. 3.18 (Yessou 2020, margin α = 1); with ``pair_reduction="mean"`` the mean over the
    pairs. 0 for a sample without pairs.

    Source: the study (Yessou, *Analysis of Deep Learning Loss Functions for Multi-Label
    Remote Sensing Image Classification*, MSc thesis, TU Berlin 2020, eq. 3.18); e.g.
    Gong, Jia, Leung, Toshev & Ioffe, *Deep Convolutional Ranking for Multilabel Image
    Annotation*, ICLR 2014. Decision rule: logit > 0.

    Args:
        margin: the required gap between positive and negative logits, > 0.
        pair_reduction: ``"sum"`` over the pairs (eq. 3.18, the default) or ``"mean"``.
            The sum weighs a sample by its number of pairs (up to 5 times more for a
            BigEarthNet-19 patch with 9 labels than for one with a single label); the mean
            weighs every sample alike, as keras-mlrs did before this option existed.
    """

    fn = staticmethod(ranking)

    def __init__(self, margin=1.0, pair_reduction="sum", **kwargs):
        super().__init__(margin=_positive("margin", margin),
                         pair_reduction=_check_pair_reduction(pair_reduction), **kwargs)


@_register("sparsemax", sparsemax, "sparsemax_support", "Sparsemax loss: sparse label distributions; predicts the sparsemax support.",
           "Martins & Astudillo, From Softmax to Sparsemax, ICML 2016")
class SparsemaxLoss(MultiLabelLoss):
    """Multi-label sparsemax loss (functional form :func:`sparsemax`):
    ``L = -qᵀz + ½ Σ_{j∈S(z)} (z_j² - τ(z)²) + ½‖q‖²`` with ``q = y / ‖y‖₁``; its gradient
    is ``sparsemax(z) - q``.

    Source: Martins & Astudillo, *From Softmax to Sparsemax: A Sparse Model of Attention
    and Multi-Label Classification*, ICML 2016. Decision rule: the support of
    ``sparsemax(z)``.
    """

    fn = staticmethod(sparsemax)


@_register("asl", asl, "sigmoid", "Asymmetric loss: focuses positives, clips and down-weights easy negatives.",
           "Ridnik et al., Asymmetric Loss For Multi-Label Classification, ICCV 2021")
class AsymmetricLoss(MultiLabelLoss):
    """Asymmetric loss (functional form :func:`asl`), mean over classes:
    ``-[y (1 - p)^{γ+} log p + (1 - y) p_m^{γ-} log(1 - p_m)]``, ``p = σ(z)``,
    ``p_m = max(p - clip, 0)``.

    Source: Ridnik, Ben-Baruch, Zamir, Noy, Friedman, Protter & Zelnik-Manor, *Asymmetric
    Loss For Multi-Label Classification*, ICCV 2021. Decision rule: sigmoid ≥ 0.5.

    Args:
        gamma_pos: focusing parameter of positive labels, >= 0.
        gamma_neg: focusing parameter of negative labels, >= 0.
        clip: probability margin in [0, 1) that discards easy negatives.
    """

    fn = staticmethod(asl)

    def __init__(self, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, **kwargs):
        clip = float(clip)
        if not 0.0 <= clip < 1.0:
            raise InvalidParameterError(f"clip must be in [0, 1), got {clip}; the usual value is 0.05.")
        super().__init__(
            gamma_pos=_positive("gamma_pos", gamma_pos, allow_zero=True),
            gamma_neg=_positive("gamma_neg", gamma_neg, allow_zero=True),
            clip=clip,
            **kwargs,
        )


@_register("lsep", lsep, "logit", "Log-sum-exp pairwise ranking loss, a smooth ranking loss.",
           "Li et al., Improving Pairwise Ranking for Multi-label Image Classification, CVPR 2017")
class LSEP(MultiLabelLoss):
    """LSEP loss (functional form :func:`lsep`): ``log(1 + Σ_{v∉Y} Σ_{u∈Y} exp(z_v - z_u))``
    per sample, computed in O(K).

    Source: Li, Song & Luo, *Improving Pairwise Ranking for Multi-label Image
    Classification*, CVPR 2017. Decision rule: logit > 0.
    """

    fn = staticmethod(lsep)


@_register("zlpr", zlpr, "logit", "Multi-label categorical cross-entropy: positives above 0, negatives below.",
           "Su et al., ZLPR: A Novel Loss for Multi-label Classification, arXiv 2208.02955")
class ZLPR(MultiLabelLoss):
    """ZLPR loss (functional form :func:`zlpr`):
    ``log(1 + Σ_{v∉Y} e^{z_v}) + log(1 + Σ_{u∈Y} e^{-z_u})`` per sample.

    Source: Su, Zhu, Wen, Zhou & Zhang, *ZLPR: A Novel Loss for Multi-label
    Classification*, arXiv:2208.02955, 2022. Decision rule: logit > 0.
    """

    fn = staticmethod(zlpr)


@_register("two_way", two_way, "logit", "Two-way loss: softmax-style relations across classes and across samples.",
           "Kobayashi, Two-way Multi-Label Loss, CVPR 2023")
class TwoWay(MultiLabelLoss):
    """Two-way multi-label loss (functional form :func:`two_way`): a sample-wise term
    ``softplus(t_n LSE_neg(z / t_n) + t_p LSE_pos(-z / t_p))`` per sample plus the same
    relation class-wise across the batch.

    Source: Kobayashi, *Two-way Multi-Label Loss*, CVPR 2023. Decision rule: logit > 0.

    Args:
        tp: temperature of the positive logits, > 0.
        tn: temperature of the negative logits, > 0.
    """

    fn = staticmethod(two_way)

    def __init__(self, tp=4.0, tn=1.0, **kwargs):
        super().__init__(tp=_positive("tp", tp), tn=_positive("tn", tn), **kwargs)
