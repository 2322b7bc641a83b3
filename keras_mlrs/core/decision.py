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
"""

import math

import keras
from keras import ops

from keras_mlrs.core.ops import sparsemax, sparsemax_threshold, to_float32
from keras_mlrs.errors import InvalidParameterError, Registry, keyword_defaults

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
