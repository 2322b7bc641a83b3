"""Canonizers: rewrite a traced model into an equivalent one that LRP rules handle well.

A canonizer is an object with ``apply(graph) -> graph``; the engine applies the ones it is
given (``LRP(model, canonizers=...)``, default :data:`DEFAULT_CANONIZERS`) in order.
:class:`BatchNormFold` folds every ``BatchNormalization`` into the ``Conv2D`` or ``Dense``
layer before it. At inference, batch normalisation is the affine map
``gamma * (y - mean) / sqrt(var + epsilon) + beta`` per channel, so with
``s = gamma / sqrt(var + epsilon)`` the pair ``BN(W x + b)`` equals one layer with kernel
``W * s`` and bias ``(b - mean) * s + beta``. The rule of the kernel layer then sees the
whole affine map, as LRP intends.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_mlrs.errors import UnsupportedModelError
from keras_mlrs.explain.graph import KERNEL, Graph, to_model, trace


class Canonizer:
    """Base class: ``apply(graph)`` returns an equivalent graph."""

    def apply(self, graph: Graph) -> Graph:  # pragma: no cover - interface
        raise NotImplementedError


class BatchNormFold(Canonizer):
    """Folds each batch normalisation into the kernel layer feeding it (see the module docstring)."""

    def apply(self, graph: Graph) -> Graph:
        return fold_batchnorm_graph(graph)


#: The canonizers LRP applies unless told otherwise.
DEFAULT_CANONIZERS = (BatchNormFold(),)


def canonize(graph: Graph, canonizers) -> Graph:
    """``graph`` after every canonizer of ``canonizers``, in order."""
    for canonizer in canonizers:
        graph = canonizer.apply(graph)
    return graph


def fold_batchnorm_graph(graph: Graph) -> Graph:
    """``graph`` with each batch normalisation folded into the kernel layer feeding it.
    Raises :class:`UnsupportedModelError` for a batch normalisation that follows anything
    but a linear (no activation) kernel layer whose output nothing else reads."""
    steps = [dataclasses.replace(s) for s in graph.steps]
    out = []
    for step in steps:
        if not isinstance(step.layer, keras.layers.BatchNormalization):
            out.append(step)
            continue
        bn = step.layer
        source = next((s for s in out if step.inputs[0] in s.outputs), None)
        readers = [s for s in steps if step.inputs[0] in s.inputs]
        if (
            source is None
            or not isinstance(source.layer, KERNEL)
            or keras.activations.serialize(source.layer.activation) not in ("linear", None)
            or len(readers) != 1
            or step.inputs[0] == graph.output
        ):
            raise UnsupportedModelError(
                f"BatchNormalization '{bn.name}' does not directly follow a Conv2D or Dense layer "
                "without activation, so it cannot be folded for LRP; put it right after such a layer."
            )
        rank = len(bn.input.shape)
        if int(bn.axis) % rank != rank - 1:
            raise UnsupportedModelError(f"BatchNormalization '{bn.name}' normalises axis {bn.axis}; LRP folds the channel (last) axis only.")
        scale, shift = _affine(bn)
        source.kernel = (source.kernel * scale).astype("float32")
        source.bias = ((source.bias * scale) + shift).astype("float32")
        source.outputs = list(step.outputs)
        source.folded = (*source.folded, bn.name)
    return dataclasses.replace(graph, steps=out)


def _affine(bn) -> tuple[np.ndarray, np.ndarray]:
    """Batch normalisation at inference as ``y * scale + shift``, in float64, with the
    correct ``sqrt(var + epsilon)``."""

    def value(v):
        return np.asarray(keras.ops.convert_to_numpy(v), "float64")

    var, mean = value(bn.moving_variance), value(bn.moving_mean)
    gamma = value(bn.gamma) if bn.scale else np.ones_like(var)
    beta = value(bn.beta) if bn.center else np.zeros_like(var)
    scale = gamma / np.sqrt(var + bn.epsilon)
    return scale, beta - mean * scale


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """A new model equal to ``model`` at inference, with every batch normalisation folded
    into the kernel layer before it (see the module docstring)."""
    return to_model(fold_batchnorm_graph(trace(model)))
