"""Explanations: Layer-wise Relevance Propagation (LRP) for Keras 3 models.

``keras_mlrs.explain.lrp(model, inputs, classes, preset="lrp.epsilon")`` returns, for each
requested class, the relevance of every input value: how much it contributed to that
class's logit. Rules (:mod:`~keras_mlrs.explain.rules`) say how a kernel layer passes
relevance down; composites (:mod:`~keras_mlrs.explain.composites`) say which rule each
layer gets and name the presets; the canonizer (:mod:`~keras_mlrs.explain.canonizers`)
folds batch normalisation into the layer before it. The engine
(:mod:`~keras_mlrs.explain.engine`) runs on the TensorFlow and JAX backends.
``engine="innvestigate"`` (:mod:`~keras_mlrs.explain.bridge`) asks iNNvestigate instead.
"""

from keras_mlrs.explain.canonizers import fold_batchnorm
from keras_mlrs.explain.composites import PRESETS, Composite
from keras_mlrs.explain.composites import names as preset_names
from keras_mlrs.explain.engine import LRP, lrp
from keras_mlrs.explain.graph import UnsupportedModelError
from keras_mlrs.explain.rules import AlphaBeta, Epsilon, Flat, Gamma, Rule, WSquare, Z, ZPlus

__all__ = [
    "LRP", "PRESETS", "AlphaBeta", "Composite", "Epsilon", "Flat", "Gamma", "Rule", "UnsupportedModelError",
    "WSquare", "Z", "ZPlus", "fold_batchnorm", "lrp", "preset_names",
]
