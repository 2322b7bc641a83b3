"""Explanations: Layer-wise Relevance Propagation (LRP) for Keras 3 models.

``keras_mlrs.explain.lrp(model, inputs, classes, preset="lrp.epsilon")`` returns, for each
requested class, the relevance of every input value: how much it contributed to that
class's logit. Rules (:mod:`~keras_mlrs.explain.rules`) say how a layer passes relevance
down; composites (:mod:`~keras_mlrs.explain.composites`) say which rule each layer gets and
hold the presets as data; canonizers (:mod:`~keras_mlrs.explain.canonizers`) rewrite the
model first (batch normalisation folded into the layer before it). The engine
(:mod:`~keras_mlrs.explain.engine`) runs on the TensorFlow and JAX backends through the hooks
of :mod:`~keras_mlrs.explain.kernels`; ``engine="innvestigate"``
(:mod:`~keras_mlrs.explain.bridge`) asks iNNvestigate instead. Heatmaps of single patches
are :mod:`~keras_mlrs.explain.heatmaps`, their figures and files
:mod:`~keras_mlrs.explain.render`. How good heatmaps are is measured by
:mod:`~keras_mlrs.explain.faithfulness` (region perturbation, AOPC),
:mod:`~keras_mlrs.explain.sanity` (the randomisation test, conservation) and
:mod:`~keras_mlrs.explain.spectral` (relevance per band and resolution).
"""

from keras_mlrs.errors import UnsupportedModelError
from keras_mlrs.explain.canonizers import (
    DEFAULT_CANONIZERS,
    BatchNormFold,
    Canonizer,
    fold_batchnorm,
)
from keras_mlrs.explain.composites import BASE_MAP, PRESETS, Composite, LayerMap
from keras_mlrs.explain.composites import names as preset_names
from keras_mlrs.explain.engine import LRP, lrp
from keras_mlrs.explain.rules import (
    AlphaBeta,
    Epsilon,
    Flat,
    Gamma,
    Gradient,
    LayerRule,
    PassThrough,
    Proportional,
    Rule,
    WinnerTakeAll,
    WSquare,
    Z,
    ZPlus,
)

__all__ = [
    "BASE_MAP", "DEFAULT_CANONIZERS", "LRP", "PRESETS", "AlphaBeta", "BatchNormFold", "Canonizer", "Composite",
    "Epsilon", "Flat", "Gamma", "Gradient", "LayerMap", "LayerRule", "PassThrough", "Proportional", "Rule",
    "UnsupportedModelError", "WSquare", "WinnerTakeAll", "Z", "ZPlus", "fold_batchnorm", "lrp", "preset_names",
]
