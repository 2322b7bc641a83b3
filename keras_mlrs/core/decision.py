"""Decision rules: how a model's logits become a set of labels.

Every loss names the rule that matches how it was trained (``loss.decision``):
a cross-entropy model means "probability at least 0.5", a ranking model means
"logit above 0", a sparsemax model means "inside the sparsemax support".
Metrics, ``predict`` and ``explain`` all go through the same rule objects.

Each rule offers:

* ``rule(logits)`` → a 0/1 float tensor of predicted labels;
* ``rule.scores(logits)`` → a real score per class, higher meaning more
  confident, and positive exactly where the label is predicted. Ranking metrics
  (average precision, ranking loss, coverage, LRAP) use these scores.

Rules are serializable (``get_config`` / ``keras.saving.serialize_keras_object``).

Besides the loss's own (fixed) rule, a model can be given per-class thresholds fitted on
validation data: :class:`Calibrated` holds them on the fixed rule's confidence, and
:func:`fit_thresholds` finds them (thresholding as the decision component of a ranking
model, as Li et al. use it).
"""

import math
import numbers

import keras
import numpy as np
from keras import ops

from keras_mlrs.core.ops import sparsemax, sparsemax_threshold, to_float32
from keras_mlrs.errors import (
    InvalidParameterError,
    Registry,
    ShapeMismatchError,
    choose,
    keyword_defaults,
)

#: The decision rules, by name.
RULES: Registry[type["DecisionRule"]] = Registry("decision rule", parameters=keyword_defaults)


def _register(cls):
    RULES.add(cls.name, cls)
    return keras.saving.register_keras_serializable(package="keras_mlrs")(cls)


class DecisionRule:
    """Base class: turns logits of shape ``[..., classes]`` into label sets."""

    name = "base"

    def scores(self, logits):
        raise NotImplementedError

    def __call__(self, logits):
        return ops.cast(self.scores(logits) > 0, "float32")

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({params})"

    def describe(self) -> str:
        """A short human-readable statement of the rule."""
        raise NotImplementedError

    #: What :meth:`confidence` returns, for people reading predictions.
    confidence_name = "score"

    def confidence(self, logits):
        """A per-class value for people to read: the probability where the rule has one
        (sigmoid, sparsemax), else the logit. Predicted labels are not always those
        above a fixed value of it; use ``rule(logits)`` for them."""
        return self.scores(logits)


@_register
class Sigmoid(DecisionRule):
    """Predict class c when ``sigmoid(logit_c) >= threshold`` (default 0.5).

    The rule of the cross-entropy family, focal, Hamming and ASL losses.
    ``scores`` are ``logit - logit(threshold)``, so a label is predicted when its
    score is at least 0 (logits are used instead of probabilities so that large
    logits do not tie at probability 1.0 in float32).
    """

    name = "sigmoid"

    def __init__(self, threshold: float = 0.5):
        threshold = float(threshold)
        if not 0.0 < threshold < 1.0:
            raise InvalidParameterError(
                f"sigmoid threshold must be in (0, 1), got {threshold}; use e.g. threshold=0.5."
            )
        self.threshold = threshold

    def scores(self, logits):
        logits = to_float32(logits)
        return logits - math.log(self.threshold / (1.0 - self.threshold))

    def __call__(self, logits):
        logits = to_float32(logits)
        return ops.cast(ops.sigmoid(logits) >= self.threshold, "float32")

    def get_config(self):
        return {"threshold": self.threshold}

    def describe(self):
        return f"sigmoid(logit) >= {self.threshold:g}"

    confidence_name = "probability"

    def confidence(self, logits):
        return ops.sigmoid(to_float32(logits))


@_register
class Logit(DecisionRule):
    """Predict class c when ``logit_c > threshold`` (default 0).

    The rule of margin and ranking losses (Huber, ranking, LSEP, ZLPR, two-way),
    whose logits are not probabilities.
    """

    name = "logit"

    def __init__(self, threshold: float = 0.0):
        threshold = float(threshold)
        if not math.isfinite(threshold):
            raise InvalidParameterError(f"logit threshold must be finite, got {threshold}.")
        self.threshold = threshold

    def scores(self, logits):
        return to_float32(logits) - self.threshold

    def get_config(self):
        return {"threshold": self.threshold}

    def describe(self):
        return f"logit > {self.threshold:g}"

    confidence_name = "logit"

    def confidence(self, logits):
        return to_float32(logits)


@_register
class SparsemaxSupport(DecisionRule):
    """Predict the support of ``sparsemax(scale * logits)``: the classes with nonzero sparsemax
    probability. The rule of the sparsemax loss.

    ``scores`` are ``scale * z - τ(scale * z)`` (τ the sparsemax threshold): positive
    exactly on the support, and comparable across samples.
    """

    name = "sparsemax_support"

    def __init__(self, scale: float = 1.0):
        scale = float(scale)
        if not (scale > 0 and math.isfinite(scale)):
            raise InvalidParameterError(f"sparsemax scale must be > 0, got {scale}.")
        self.scale = scale

    def scores(self, logits):
        z = to_float32(logits) * self.scale
        return z - sparsemax_threshold(z, axis=-1)

    def get_config(self):
        return {"scale": self.scale}

    def describe(self):
        scaled = "z" if self.scale == 1.0 else f"{self.scale:g}·z"
        return f"sparsemax({scaled}) > 0"

    confidence_name = "sparsemax probability"

    def confidence(self, logits):
        return sparsemax(to_float32(logits) * self.scale, axis=-1)


#: The base rules thresholds can be calibrated on -> whether a label is predicted when its
#: value *equals* the threshold (the sigmoid rule's "probability at least t"), or only above it.
_INCLUSIVE = {"sigmoid": True, "logit": False, "sparsemax_support": False}


@_register
class Calibrated(DecisionRule):
    """Per-class thresholds ``t_c`` on the confidence of a base rule (the loss's own):

    * ``sigmoid``: predict class c when ``sigmoid(z_c) >= t_c``, with ``0 < t_c < 1``;
    * ``logit``: when ``z_c > t_c``;
    * ``sparsemax_support``: when ``sparsemax(scale·z)_c > t_c``, with ``0 <= t_c <= 1``
      (``t_c = 0`` is the support itself: strictly positive probability).

    With every ``t_c`` at the base rule's own threshold (0.5, 0, 0) it predicts exactly what
    the base rule does. ``scores`` are the base rule's shifted per class by ``t_c``
    (``z_c - logit(t_c)`` for sigmoid, as :class:`Sigmoid`, so large logits do not tie at
    probability 1.0; ``z_c - t_c``; ``scale·z_c - τ - t_c``): positive where the label is
    predicted (at least 0 for sigmoid). ``confidence`` is the base rule's.

    Fit thresholds with :func:`fit_thresholds` (a run: :func:`keras_mlrs.runs.calibrate`).

    Example:
        >>> rule = Calibrated("sigmoid", [0.3] * 19)
        >>> rule.get_config()["base"]
        {'name': 'sigmoid', 'threshold': 0.5}
    """

    name = "calibrated"

    def __init__(self, base="sigmoid", thresholds=None):
        base = get(base)
        if base.name not in _INCLUSIVE:
            raise InvalidParameterError(f"calibrated thresholds apply to the {', '.join(_INCLUSIVE)} rules, not to "
                                        f"'{base.name}'.")
        if thresholds is None or isinstance(thresholds, str | bytes) or not hasattr(thresholds, "__len__"):
            raise InvalidParameterError("a calibrated rule needs one threshold per class, fitted on validation data "
                                        "(`keras_mlrs.runs.calibrate()` fits them for a run).")
        values = []
        for t in thresholds:
            if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(float(t)):
                raise InvalidParameterError(f"calibrated thresholds must be finite numbers, got {t!r}.")
            values.append(float(t))
        if not values:
            raise InvalidParameterError("a calibrated rule needs one threshold per class, got none.")
        low, high = min(values), max(values)
        if base.name == "sigmoid" and not (low > 0.0 and high < 1.0):
            raise InvalidParameterError(f"calibrated sigmoid thresholds are probabilities in (0, 1), got {low:g} to "
                                        f"{high:g}.")
        if base.name == "sparsemax_support" and not (low >= 0.0 and high <= 1.0):
            raise InvalidParameterError(f"calibrated sparsemax thresholds are probabilities in [0, 1], got {low:g} "
                                        f"to {high:g}.")
        self.base, self.thresholds = base, tuple(values)
        self._cut = np.asarray(values, np.float32)  # what the values are compared with, as they are compared
        if base.name == "sigmoid":
            t = np.asarray(values, np.float64)
            self._shift = (np.log(t) - np.log1p(-t)).astype(np.float32)  # logit(t_c), as Sigmoid.scores
        else:
            self._shift = self._cut

    @property
    def inclusive(self) -> bool:
        """Whether a value equal to its class's threshold is predicted (the sigmoid rule's ``>=``)."""
        return _INCLUSIVE[self.base.name]

    def values(self, logits):
        """What the thresholds are compared with, per class: the sigmoid probability, the
        logit, or ``scale·z - τ`` (the sparsemax probability where it is positive)."""
        if self.base.name == "sigmoid":
            values = self.base.confidence(logits)
        elif self.base.name == "logit":
            values = to_float32(logits)
        else:
            values = self.base.scores(logits)
        classes = values.shape[-1]
        if classes is not None and int(classes) != len(self.thresholds):
            raise ShapeMismatchError(f"the calibrated rule holds {len(self.thresholds)} thresholds but the model "
                                     f"outputs {int(classes)} logits; use thresholds fitted on this model.")
        return values

    def __call__(self, logits):
        values, cut = self.values(logits), ops.convert_to_tensor(self._cut)
        return ops.cast(values >= cut if self.inclusive else values > cut, "float32")

    def scores(self, logits):
        if self.base.name == "sigmoid":
            self.values(logits)  # the class count check
            return to_float32(logits) - ops.convert_to_tensor(self._shift)
        return self.values(logits) - ops.convert_to_tensor(self._shift)

    def get_config(self):
        return {"base": {"name": self.base.name, **self.base.get_config()}, "thresholds": list(self.thresholds)}

    def __hash__(self):
        return hash((type(self).__name__, self.base, self.thresholds))

    def __repr__(self):
        return f"Calibrated(base={self.base!r}, thresholds=[{len(self.thresholds)} values])"

    def describe(self):
        if self.base.name == "sigmoid":
            rule = "sigmoid(logit_c) >= t_c"
        elif self.base.name == "logit":
            rule = "logit_c > t_c"
        else:
            scaled = "z" if self.base.scale == 1.0 else f"{self.base.scale:g}·z"
            rule = f"sparsemax({scaled})_c > t_c"
        low, high = min(self.thresholds), max(self.thresholds)
        return f"{rule}, calibrated per class (t_c from {low:.3g} to {high:.3g})"

    @property
    def confidence_name(self):
        return self.base.confidence_name

    def confidence(self, logits):
        return self.base.confidence(logits)


def names() -> list[str]:
    """The registered decision-rule names."""
    return RULES.names()


def get(identifier="sigmoid", **params) -> DecisionRule:
    """A decision rule from a name (``"sigmoid"``, ``"logit"``, ``"sparsemax_support"``) and its
    parameters, a rule instance (returned as is), or a config dict (``{"name": "logit",
    "threshold": 0.5}``, or a serialized rule)."""
    return RULES.resolve(identifier, params, DecisionRule, lambda cls, p: cls(**p), keras.saving.deserialize_keras_object)


def rule_of(model, override=None) -> DecisionRule:
    """The decision rule to apply to ``model``'s logits: ``override`` (a rule, name or
    config) when given; else the rule of its loss when it was compiled with a keras-mlrs
    loss (class or function); else ``sigmoid`` (probability at least 0.5)."""
    if override is not None:
        return get(override)
    rule = getattr(getattr(model, "loss", None), "decision", None)
    return rule if isinstance(rule, DecisionRule) else get("sigmoid")


# -- fitting per-class thresholds --------------------------------------------------------------
#: What :func:`fit_thresholds` maximises on the data it is given: the sample-averaged F1 (the
#: study's headline score), or each class's own F1 (which also maximises macro F1).
OBJECTIVES = ("sample-f1", "per-class-f1")
#: The most coordinate-ascent sweeps over the classes of the ``sample-f1`` objective.
SWEEPS = 10


def fit_thresholds(rule, logits, y_true, objective: str = "sample-f1", sweeps: int = SWEEPS) -> Calibrated:
    """Per-class thresholds for ``rule`` (``sigmoid``, ``logit`` or ``sparsemax_support``; a
    :class:`Calibrated` rule's base) fitted on ``logits`` ``[n, K]`` and their multi-hot
    ``y_true``, as a :class:`Calibrated` rule.

    The search is exact over each class's candidate thresholds: the midpoints between its
    sorted distinct values (:meth:`Calibrated.values`), and one beyond either end.

    * ``"per-class-f1"``: each class's F1-optimal threshold, independently.
    * ``"sample-f1"``: coordinate ascent over the classes on the sample-averaged F1, from the
      fixed rule and from the per-class solution (at most ``sweeps`` sweeps each), keeping
      the better.

    A class keeps the fixed rule's threshold unless another one scores strictly better, so
    on the data it is fitted on the result is never worse than ``rule`` for the objective
    (F1 with ``zero_division=0``, as :mod:`keras_mlrs.core.metrics` and scikit-learn).
    """
    objective = choose("calibration objective", objective, OBJECTIVES)
    base = rule.base if isinstance(rule, Calibrated) else get(rule)
    z = np.asarray(logits, np.float32)
    y = np.asarray(y_true, np.float32) > 0.5
    if z.ndim != 2 or z.shape != y.shape or not z.shape[0]:
        raise ShapeMismatchError(f"thresholds are fitted on logits and labels of one shape [patches, classes] with at "
                                 f"least one patch, got {z.shape} and {y.shape}.")
    fixed = Calibrated(base, [fixed_threshold(base)] * z.shape[1])
    values = np.asarray(fixed.values(z), np.float32)
    classes = [_Candidates(values[:, c], y[:, c], fixed, c) for c in range(z.shape[1])]
    per_class = [c.best(c.f1_gains(), c.fixed) for c in classes]
    if objective == "per-class-f1":
        chosen = per_class
    else:
        starts = [[c.fixed for c in classes], per_class]
        results = [_coordinate_ascent(classes, y, start, sweeps) for start in starts]
        chosen = max(results, key=lambda r: r[1])[0]  # the first (from the fixed rule) on a tie
    return Calibrated(base, [c.thresholds[i] for c, i in zip(classes, chosen)])


def fixed_threshold(rule) -> float:
    """The threshold of the rule ``rule`` (``sigmoid``, ``logit``, ``sparsemax_support``) on
    the values :class:`Calibrated` compares: a :class:`Calibrated` rule with this threshold
    for every class predicts exactly what ``rule`` does."""
    return float(rule.threshold) if rule.name in ("sigmoid", "logit") else 0.0


class _Candidates:
    """The candidate thresholds of one class and what each predicts, on sorted values."""

    def __init__(self, values, y, fixed: Calibrated, c: int):
        self.order = np.argsort(values, kind="stable")
        self.sorted, self.inclusive = values[self.order], fixed.inclusive
        distinct = np.unique(self.sorted)
        low, high = distinct[:-1], distinct[1:]
        middle = ((low.astype(np.float64) + high) / 2).astype(np.float32)
        if self.inclusive:  # predicted when value >= t: t in (low, high]
            middle = np.where(middle <= low, high, middle)
            ends = [distinct[0], np.nextafter(distinct[-1], np.float32(np.inf))]
        else:  # predicted when value > t: t in [low, high)
            middle = np.where(middle >= high, low, middle)
            below = np.float32(distinct[0] - max(1.0, abs(float(distinct[0]))))
            ends = [below if below < distinct[0] else np.nextafter(distinct[0], np.float32(-np.inf)), distinct[-1]]
        t = np.concatenate([[ends[0]], middle, [ends[1]]]).astype(np.float64)
        if fixed.base.name == "sigmoid":
            t = t[(t > 0) & (t < 1)]
        elif fixed.base.name == "sparsemax_support":
            t = np.clip(t, 0.0, 1.0)
        t = np.unique(np.concatenate([t, [fixed.thresholds[c]]]))
        self.thresholds = t.tolist()
        self.fixed = self.thresholds.index(fixed.thresholds[c])
        cut = t.astype(np.float32)  # compared as the rule compares
        self.first = np.searchsorted(self.sorted, cut, side="left" if self.inclusive else "right")
        self.y = y[self.order]
        self.positives = int(y.sum())
        self.hits_before = np.concatenate([[0], np.cumsum(self.y)])

    def predicted(self, i: int) -> np.ndarray:
        """Which samples (in the original order) candidate ``i`` predicts."""
        out = np.zeros(len(self.order), bool)
        out[self.order[self.first[i]:]] = True
        return out

    def f1_gains(self) -> np.ndarray:
        """The class's F1 under each candidate."""
        predicted = len(self.order) - self.first
        hits = self.positives - self.hits_before[self.first]
        total = predicted + self.positives
        return np.where(total > 0, 2 * hits / np.maximum(total, 1), 0.0)

    def sample_gains(self, gain_on: np.ndarray) -> np.ndarray:
        """The sum of ``gain_on`` (per sample, original order) over the samples each candidate
        predicts."""
        suffix = np.concatenate([np.cumsum(gain_on[self.order][::-1])[::-1], [0.0]])
        return suffix[self.first]

    def best(self, gains: np.ndarray, current: int) -> int:
        """The candidate of highest ``gains``: ``current`` unless another is better by more
        than rounding, then the best one closest to ``current``'s threshold."""
        top = gains.max()
        tolerance = 1e-9 * max(1.0, abs(float(top)))
        if gains[current] >= top - tolerance:
            return current
        best = np.flatnonzero(gains >= top - tolerance)
        return int(best[np.argmin(np.abs(np.asarray(self.thresholds)[best] - self.thresholds[current]))])


def _coordinate_ascent(classes, y, start, sweeps):
    """Coordinate ascent on the sample-averaged F1 from the candidates ``start`` (one per
    class): ``(chosen candidates, sum of the samples' F1)``."""
    chosen = list(start)
    predicted = np.stack([c.predicted(i) for c, i in zip(classes, chosen)], axis=1)
    truth = y.sum(axis=1)
    hits, count = (predicted & y).sum(axis=1), predicted.sum(axis=1)
    for _ in range(max(1, int(sweeps))):
        changed = False
        for k, c in enumerate(classes):
            mine = predicted[:, k]
            hits_other, count_other = hits - (mine & y[:, k]), count - mine
            off = _f1(hits_other, truth + count_other)
            on = _f1(hits_other + y[:, k], truth + count_other + 1)
            pick = c.best(c.sample_gains(on - off), chosen[k])
            if pick != chosen[k]:
                chosen[k], changed = pick, True
                predicted[:, k] = c.predicted(pick)
                hits, count = hits_other + (predicted[:, k] & y[:, k]), count_other + predicted[:, k]
        if not changed:
            break
    return chosen, float(_f1(hits, truth + count).sum())


def _f1(hits, total):
    return np.where(total > 0, 2 * hits / np.maximum(total, 1), 0.0)
