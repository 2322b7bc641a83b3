"""Streaming multi-label metrics that take logits.

Every metric here is a :class:`keras.metrics.Metric`: pass it to
``model.compile(metrics=...)`` or call ``update_state(y_true, logits)`` over as many
batches as you like and read ``result()``. Accumulated over any batching, the
values equal scikit-learn's on the whole data (with ``zero_division=0``), sample
weights included.

Label-set metrics (:class:`Precision`, :class:`Recall`, :class:`F1`,
:class:`HammingLoss`, and the computer-vision :class:`CF1` and :class:`OF1`) first turn
logits into labels with a decision rule (``decision=``: a name, a rule from
:mod:`keras_mlrs.core.decision`, or ``loss.decision``). Ranking metrics
(:class:`RankingLoss`, :class:`CoverageError`, :class:`LRAP`, :class:`AveragePrecision`,
:class:`PrecisionAtK`) use the rule's per-class scores.

Averages (``average=``), as in scikit-learn:

* ``"micro"``: pool the counts of all classes, then compute the score;
* ``"macro"``: the score of each class, then the unweighted mean over classes;
* ``"weighted"``: like macro, weighted by each class's number of true labels;
* ``"samples"``: the score of each sample's label set, then the mean over samples
  (the study's headline average);
* ``"none"``: one score per class (a vector).

Use :func:`standard` for the study's set (P/R/F1 under micro, macro and sample
averaging) wired to a loss's decision rule.
"""

import numbers

import keras
from keras import ops

from keras_mlrs.core import decision as decision_rules
from keras_mlrs.core.ops import to_float32
from keras_mlrs.errors import InvalidParameterError, ShapeMismatchError, choose

__all__ = [
    "AveragePrecision",
    "CF1",
    "CoverageError",
    "F1",
    "HammingLoss",
    "LRAP",
    "OF1",
    "Precision",
    "PrecisionAtK",
    "RankingLoss",
    "Recall",
    "standard",
]

#: Every average of the label-set metrics (``"none"``: one score per class).
AVERAGES = ("micro", "macro", "weighted", "samples", "none")
#: The averages of the study's tables (Table 6.1).
STUDY_AVERAGES = ("micro", "macro", "samples")
#: The averages of an evaluation report: the study's and the support-weighted one.
REPORT_AVERAGES = ("micro", "macro", "weighted", "samples")
#: The label-set scores of the study.
SCORES = ("precision", "recall", "f1")


def _safe_div(num, den):
    """num / den, and 0 where den is 0 (scikit-learn's zero_division=0)."""
    nonzero = den > 0
    return ops.where(nonzero, num / ops.where(nonzero, den, 1.0), 0.0)


def _check_average(average, allowed=AVERAGES):
    return choose("average", "none" if average is None else str(average).lower(), allowed)


class _MultiLabelMetric(keras.metrics.Metric):
    """Shared plumbing: decision rule, lazy variables sized by the number of classes."""

    def __init__(self, decision="sigmoid", name=None, dtype=None):
        super().__init__(name=name, dtype=dtype or "float32")
        self.decision = decision_rules.get(decision)
        self._built = False

    def _inputs(self, y_true, logits, sample_weight):
        y_true = to_float32(y_true)
        logits = to_float32(logits)
        if len(logits.shape) != 2 or tuple(y_true.shape) != tuple(logits.shape) and None not in (
            *y_true.shape,
            *logits.shape,
        ):
            raise ShapeMismatchError(
                f"{self.name}: labels of shape {tuple(y_true.shape)} and logits of shape "
                f"{tuple(logits.shape)} must both be [batch, classes]."
            )
        if not self._built:
            if logits.shape[-1] is None:
                raise ShapeMismatchError(f"{self.name}: the number of classes must be known.")
            self.build_for(int(logits.shape[-1]))
        elif logits.shape[-1] is not None and logits.shape[-1] != self.num_classes:
            raise ShapeMismatchError(
                f"{self.name}: this metric has seen {self.num_classes} classes, now got "
                f"{logits.shape[-1]}; use one metric object per label set (or reset it with a new one)."
            )
        if sample_weight is None:
            weights = ops.ones_like(logits[:, 0])
        else:
            weights = ops.reshape(to_float32(sample_weight), (-1,))
            weights = ops.broadcast_to(weights, ops.shape(logits[:, 0]))
        return y_true, logits, weights

    def build_for(self, num_classes: int):
        """Create the state variables for ``num_classes`` classes now, rather than on the
        first update: inside a traced training step each variable costs a capture, so a
        model compiled with built metrics starts training sooner."""
        self._build(int(num_classes))
        self._built = True

    def _zeros(self, name, shape=()):
        return self.add_variable(name=name, shape=shape, initializer="zeros", dtype="float32")

    def _add(self, variable, value):
        variable.assign_add(value)

    def reset_state(self):
        for v in self.variables:
            v.assign(ops.zeros(v.shape, dtype=v.dtype))

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype,
            "decision": keras.saving.serialize_keras_object(self.decision),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("decision"), dict):
            config["decision"] = decision_rules.get(config["decision"])
        return cls(**config)


class _ConfusionMetric(_MultiLabelMetric):
    """Accumulates weighted per-class TP/FP/FN and per-sample scores."""

    _score = None  # "precision" | "recall" | "f1"

    def __init__(self, average="micro", decision="sigmoid", name=None, dtype=None):
        self.average = _check_average(average)
        super().__init__(
            decision=decision, name=name or f"{self._score}_{self.average}", dtype=dtype
        )

    def _build(self, num_classes):
        self.num_classes = num_classes
        self.tp = self._zeros("true_positives", (num_classes,))
        self.fp = self._zeros("false_positives", (num_classes,))
        self.fn = self._zeros("false_negatives", (num_classes,))
        self.sample_score_sum = self._zeros("sample_score_sum")
        self.weight_sum = self._zeros("weight_sum")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y, logits, w = self._inputs(y_true, y_pred, sample_weight)
        pred = self.decision(logits)
        tp, fp, fn = y * pred, (1.0 - y) * pred, y * (1.0 - pred)
        if self.average == "samples":  # each average updates only what its result reads
            per_sample = self._formula(ops.sum(tp, -1), ops.sum(fp, -1), ops.sum(fn, -1))
            self._add(self.sample_score_sum, ops.sum(w * per_sample))
            self._add(self.weight_sum, ops.sum(w))
            return
        wc = w[:, None]
        self._add(self.tp, ops.sum(wc * tp, axis=0))
        self._add(self.fp, ops.sum(wc * fp, axis=0))
        self._add(self.fn, ops.sum(wc * fn, axis=0))

    def _formula(self, tp, fp, fn):
        if self._score == "precision":
            return _safe_div(tp, tp + fp)
        if self._score == "recall":
            return _safe_div(tp, tp + fn)
        return _safe_div(2.0 * tp, 2.0 * tp + fp + fn)

    def result(self):
        if not self._built:
            return ops.zeros(()) if self.average != "none" else ops.zeros((0,))
        if self.average == "samples":
            return _safe_div(self.sample_score_sum.value, self.weight_sum.value)
        tp, fp, fn = self.tp.value, self.fp.value, self.fn.value
        if self.average == "micro":
            return self._formula(ops.sum(tp), ops.sum(fp), ops.sum(fn))
        per_class = self._formula(tp, fp, fn)
        if self.average == "none":
            return per_class
        if self.average == "macro":
            return ops.mean(per_class)
        support = tp + fn
        return _safe_div(ops.sum(per_class * support), ops.sum(support))

    def get_config(self):
        return {**super().get_config(), "average": self.average}


@keras.saving.register_keras_serializable(package="keras_mlrs")
class Precision(_ConfusionMetric):
    """Precision TP / (TP + FP) of the predicted label sets, under ``average``."""

    _score = "precision"


@keras.saving.register_keras_serializable(package="keras_mlrs")
class Recall(_ConfusionMetric):
    """Recall TP / (TP + FN) of the predicted label sets, under ``average``."""

    _score = "recall"


@keras.saving.register_keras_serializable(package="keras_mlrs")
class F1(_ConfusionMetric):
    """F1 score 2 TP / (2 TP + FP + FN) of the predicted label sets, under ``average``.

    Macro F1 is the mean of the per-class F1 scores (not the F1 of the mean precision
    and recall), as in scikit-learn and the study.
    """

    _score = "f1"


class _HarmonicMeanMetric(_ConfusionMetric):
    """The harmonic mean ``2 P R / (P + R)`` of a precision P and a recall R computed from
    the per-class counts (the computer-vision CF1 and OF1); 0 where P + R is 0."""

    _score = "f1"
    _average = None  # the average of P and R: "macro" (CF1) or "micro" (OF1)
    _default_name = None

    def __init__(self, decision="sigmoid", name=None, dtype=None):
        super().__init__(average=self._average, decision=decision, name=name or self._default_name, dtype=dtype)

    def result(self):
        if not self._built:
            return ops.zeros(())
        tp, fp, fn = self.tp.value, self.fp.value, self.fn.value
        if self._average == "micro":
            tp, fp, fn = ops.sum(tp), ops.sum(fp), ops.sum(fn)
        precision = ops.mean(_safe_div(tp, tp + fp))
        recall = ops.mean(_safe_div(tp, tp + fn))
        return _safe_div(2.0 * precision * recall, precision + recall)

    def get_config(self):
        config = super().get_config()
        del config["average"]  # fixed by the class
        return config


@keras.saving.register_keras_serializable(package="keras_mlrs")
class CF1(_HarmonicMeanMetric):
    """CF1, the computer-vision per-class F1: ``2 CP CR / (CP + CR)``, where CP and CR are
    the per-class precisions and recalls averaged over classes.

    CP and CR are :class:`Precision` and :class:`Recall` with ``average="macro"``; CF1 is
    the harmonic mean of those two means, *not* the study's macro F1 (the mean of the
    per-class F1 scores, :class:`F1` with ``average="macro"``), and it is at least as large
    (the harmonic mean is concave). A class without predictions has precision 0, one without
    true labels recall 0 (scikit-learn's ``zero_division=0``), and both count in the means.

    Example:
        >>> m = CF1(decision="logit")
        >>> m.update_state([[1, 0], [1, 1]], [[2.0, -1.0], [-1.0, 3.0]])
        >>> round(float(m.result()), 4)  # CP = (1 + 1) / 2, CR = (1/2 + 1) / 2
        0.8571
    """

    _average = "macro"
    _default_name = "cf1"


@keras.saving.register_keras_serializable(package="keras_mlrs")
class OF1(_HarmonicMeanMetric):
    """OF1, the computer-vision overall F1: ``2 OP OR / (OP + OR)``, where OP and OR are the
    precision and recall of the counts pooled over all classes.

    OP and OR are :class:`Precision` and :class:`Recall` with ``average="micro"``, and OF1
    equals :class:`F1` with ``average="micro"`` (``2 TP / (2 TP + FP + FN)``) up to rounding:
    it is here under the name computer-vision papers report.
    """

    _average = "micro"
    _default_name = "of1"


@keras.saving.register_keras_serializable(package="keras_mlrs")
class HammingLoss(_MultiLabelMetric):
    """Fraction of wrongly assigned labels (false positives and false negatives) over all
    samples and classes."""

    def __init__(self, decision="sigmoid", name="hamming_loss", dtype=None):
        super().__init__(decision=decision, name=name, dtype=dtype)

    def _build(self, num_classes):
        self.num_classes = num_classes
        self.errors = self._zeros("errors")
        self.weight_sum = self._zeros("weight_sum")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y, logits, w = self._inputs(y_true, y_pred, sample_weight)
        wrong = ops.mean(ops.abs(y - self.decision(logits)), axis=-1)
        self._add(self.errors, ops.sum(w * wrong))
        self._add(self.weight_sum, ops.sum(w))

    def result(self):
        return _safe_div(self.errors.value, self.weight_sum.value) if self._built else ops.zeros(())


class _PerSampleRankingMetric(_MultiLabelMetric):
    """A weighted mean over samples of a per-sample ranking quantity."""

    def _build(self, num_classes):
        self.num_classes = num_classes
        self.total = self._zeros("total")
        self.weight_sum = self._zeros("weight_sum")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y, logits, w = self._inputs(y_true, y_pred, sample_weight)
        s = self.decision.scores(logits)
        self._add(self.total, ops.sum(w * self._per_sample(y, s)))
        self._add(self.weight_sum, ops.sum(w))

    def result(self):
        return _safe_div(self.total.value, self.weight_sum.value) if self._built else ops.zeros(())


@keras.saving.register_keras_serializable(package="keras_mlrs")
class RankingLoss(_PerSampleRankingMetric):
    """Label ranking loss: the fraction of (positive, negative) label pairs whose scores
    are not in the right order (a tie counts as wrong); 0 for a sample without pairs."""

    def __init__(self, decision="sigmoid", name="ranking_loss", dtype=None):
        super().__init__(decision=decision, name=name, dtype=dtype)

    def _per_sample(self, y, s):
        pairs = y[:, :, None] * (1.0 - y)[:, None, :]
        wrong = ops.cast(s[:, :, None] <= s[:, None, :], "float32")
        return _safe_div(ops.sum(pairs * wrong, axis=(1, 2)), ops.sum(pairs, axis=(1, 2)))


@keras.saving.register_keras_serializable(package="keras_mlrs")
class CoverageError(_PerSampleRankingMetric):
    """Coverage error: how far down the ranking one must go to cover every true label
    (the number of classes scored at least as high as the lowest-scored true label);
    0 for a sample without true labels."""

    def __init__(self, decision="sigmoid", name="coverage_error", dtype=None):
        super().__init__(decision=decision, name=name, dtype=dtype)

    def _per_sample(self, y, s):
        big = ops.max(ops.abs(s)) + 1.0
        lowest_true = ops.min(ops.where(y > 0.5, s, big), axis=-1, keepdims=True)
        covered = ops.sum(ops.cast(s >= lowest_true, "float32"), axis=-1)
        return ops.where(ops.any(y > 0.5, axis=-1), covered, 0.0)


@keras.saving.register_keras_serializable(package="keras_mlrs")
class LRAP(_PerSampleRankingMetric):
    """Label ranking average precision: for each true label, the fraction of true labels
    among the labels scored at least as high, averaged over true labels and samples.
    A sample with no true label or only true labels scores 1."""

    def __init__(self, decision="sigmoid", name="lrap", dtype=None):
        super().__init__(decision=decision, name=name, dtype=dtype)

    def _per_sample(self, y, s):
        at_least = ops.cast(s[:, None, :] >= s[:, :, None], "float32")  # [b, l, k]: s_k >= s_l
        rank_all = ops.sum(at_least, axis=-1)
        rank_true = ops.sum(at_least * y[:, None, :], axis=-1)
        n_true = ops.sum(y, axis=-1)
        precision = ops.sum(y * _safe_div(rank_true, rank_all), axis=-1)
        ranked = (n_true > 0) & (n_true < ops.cast(ops.shape(y)[-1], "float32"))
        return ops.where(ranked, _safe_div(precision, n_true), 1.0)


@keras.saving.register_keras_serializable(package="keras_mlrs")
class PrecisionAtK(_PerSampleRankingMetric):
    """Precision at k: the fraction of a sample's ``k`` top-scored classes that are true
    labels, averaged over samples (a sample without true labels scores 0).

    Ties are shared, not broken by class order: when the k-th highest score is tied, each
    class of that tied group counts as a fraction of a slot, so the value is the expected
    precision over a uniformly random order of the tied classes::

        P@k = (true labels scored above s_k + (k - labels above s_k) · t / g) / k

    where s_k is the k-th highest score and t of the g classes scored exactly s_k are true.
    ``k`` may not exceed the number of classes.
    """

    def __init__(self, k: int = 1, decision="sigmoid", name=None, dtype=None):
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise InvalidParameterError(f"precision at k needs a whole k >= 1, got k={k!r}; use e.g. k=3.")
        self.k = int(k)
        super().__init__(decision=decision, name=name or f"precision_at_{self.k}", dtype=dtype)

    def _build(self, num_classes):
        if self.k > num_classes:
            raise InvalidParameterError(
                f"{self.name}: k={self.k} is more than the {num_classes} classes; use k <= {num_classes}."
            )
        super()._build(num_classes)

    def _per_sample(self, y, s):
        kth = ops.top_k(s, self.k, sorted=True)[0][:, self.k - 1 : self.k]
        above = ops.cast(s > kth, "float32")
        tied = ops.cast(s == kth, "float32")
        slots = self.k - ops.sum(above, axis=-1)  # >= 1: the k-th score itself is tied
        true_in_tie = _safe_div(ops.sum(y * tied, axis=-1), ops.sum(tied, axis=-1))
        return (ops.sum(y * above, axis=-1) + slots * true_in_tie) / self.k

    def get_config(self):
        return {**super().get_config(), "k": self.k}


@keras.saving.register_keras_serializable(package="keras_mlrs")
class AveragePrecision(_MultiLabelMetric):
    """Average precision from scores: ``Σ_n (R_n - R_{n-1}) P_n`` over the distinct score
    thresholds, per class and then averaged (``"macro"``, the usual mAP) or over all
    (sample, class) pairs pooled (``"micro"``). A class without positives scores 0.

    Exact, unlike threshold-binned approximations: the metric keeps every score it sees,
    up to ``max_samples`` samples (the default covers BigEarthNet-19's validation and
    test splits). Past that, ``result()`` is NaN: raise ``max_samples``.
    """

    def __init__(self, average="macro", decision="sigmoid", max_samples=2**17, name=None, dtype=None):
        self.average = _check_average(average, ("micro", "macro", "none"))
        self.max_samples = int(max_samples)
        if self.max_samples < 1:
            raise InvalidParameterError(f"max_samples must be >= 1, got {max_samples}.")
        super().__init__(decision=decision, name=name or f"map_{self.average}", dtype=dtype)

    def _build(self, num_classes):
        self.num_classes = num_classes
        rows = self.max_samples + 1  # the last row absorbs writes past capacity
        self.scores = self._zeros("scores", (rows, num_classes))
        self.labels = self._zeros("labels", (rows, num_classes))
        self.weights = self._zeros("weights", (rows,))
        self.count = self._zeros("count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y, logits, w = self._inputs(y_true, y_pred, sample_weight)
        batch = ops.shape(logits)[0]
        rows = ops.cast(self.count.value, "int32") + ops.arange(batch, dtype="int32")
        rows = ops.minimum(rows, self.max_samples)[:, None]
        in_range = ops.cast(rows[:, 0] < self.max_samples, "float32")
        self.scores.assign(ops.scatter_update(self.scores.value, rows, self.decision.scores(logits)))
        self.labels.assign(ops.scatter_update(self.labels.value, rows, y))
        self.weights.assign(ops.scatter_update(self.weights.value, rows, w * in_range))
        self._add(self.count, ops.cast(batch, "float32"))

    def result(self):
        if not self._built:
            return ops.zeros(()) if self.average != "none" else ops.zeros((0,))
        # eagerly, only the rows written (sorting the empty ones costs seconds for nothing);
        # traced (a compiled metric), every row: the unwritten ones have weight 0
        if getattr(self.count.value, "is_meta", False):
            # PyTorch's shape inference (tensors without data), which the segment sums below
            # do not support; a failed attempt would leave its state updates behind in Keras'
            # eager retry
            return ops.zeros(()) if self.average != "none" else ops.zeros((self.num_classes,))
        written = _known_int(self.count.value)
        n = self.max_samples if written is None else max(1, min(written, self.max_samples))
        s, y, w = self.scores.value[:n], self.labels.value[:n], self.weights.value[:n]
        if self.average == "micro":
            ap = average_precision_columns(
                ops.reshape(s, (-1, 1)), ops.reshape(y, (-1, 1)), ops.reshape(ops.repeat(w, self.num_classes), (-1, 1))
            )[0]
        else:
            ap = average_precision_columns(s, y, ops.broadcast_to(w[:, None], ops.shape(s)))
            if self.average == "macro":
                ap = ops.mean(ap)
        overflow = self.count.value > self.max_samples
        return ops.where(overflow, float("nan"), ap)

    def get_config(self):
        return {**super().get_config(), "average": self.average, "max_samples": self.max_samples}


def _known_int(value) -> int | None:
    """``value`` as an int when it is known now (eager execution), None while it is traced."""
    try:
        return int(value)
    except (TypeError, AttributeError):  # a TensorFlow graph tensor or a JAX tracer
        return None


def average_precision_columns(scores, labels, weights):
    """Average precision of each column of ``scores`` ([n, k]) against binary ``labels``
    with sample ``weights`` (same shape), handling tied scores as scikit-learn does
    (one threshold per distinct score). Returns a [k] tensor; 0 for a column without
    positives."""
    n, k = scores.shape
    order = ops.argsort(-scores, axis=0)
    s = ops.take_along_axis(scores, order, axis=0)
    y = ops.take_along_axis(labels, order, axis=0)
    w = ops.take_along_axis(weights, order, axis=0)
    # TensorFlow's cumsum adds sequentially: over 10^5..10^6 weighted entries float32 drifts
    # past 1e-6, so it sums in float64 (JAX's scan is pairwise and stays exact in float32).
    acc = "float64" if keras.backend.backend() == "tensorflow" else "float32"
    y, w = ops.cast(y, acc), ops.cast(w, acc)
    tp = ops.cumsum(y * w, axis=0)
    fp = ops.cumsum((1.0 - y) * w, axis=0)
    differs = ops.cast(s[1:] != s[:-1], "int32")
    ones = ops.ones((1, k), dtype="int32")
    is_end = ops.cast(ops.concatenate([differs, ones], axis=0), acc)
    is_start = ops.concatenate([ones, differs], axis=0)
    # group id of each position (ties share one), unique across columns
    group = ops.cumsum(is_start, axis=0) - 1 + ops.arange(k, dtype="int32")[None, :] * n
    end_precision = is_end * _safe_div(tp, tp + fp)
    group_precision = ops.segment_sum(ops.reshape(end_precision, (-1,)), ops.reshape(group, (-1,)), num_segments=n * k)
    precision_at = ops.reshape(ops.take(group_precision, ops.reshape(group, (-1,))), (n, k))
    positives = tp[-1]
    return ops.cast(_safe_div(ops.sum(y * w * precision_at, axis=0), positives), "float32")


def standard(decision="sigmoid", averages=STUDY_AVERAGES, num_classes: int | None = None) -> list:
    """The study's metrics: precision, recall and F1 under each of ``averages``, all using
    ``decision`` (pass ``loss.decision`` to evaluate a model as its loss intends); built
    for ``num_classes`` classes when given (see :meth:`F1.build_for`)."""
    rule = decision_rules.get(decision)
    out = [cls(average=a, decision=rule) for a in averages for cls in (Precision, Recall, F1)]
    if num_classes is not None:
        for metric in out:
            metric.build_for(num_classes)
    return out
