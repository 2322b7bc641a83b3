"""The native LRP engine: one forward pass, then relevance flows back layer by layer.

Everything is ``keras.ops`` except two small backend hooks in :mod:`~keras_mlrs.explain.kernels`,
so the engine runs on the TensorFlow and JAX backends. The forward pass is shared by every
class being explained; the backward pass carries one relevance slice per class
(``[classes, batch, ...]``), so explaining 19 classes costs one forward pass, not 19.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
from keras import ops

from keras_mlrs.bigearthnet import class_index
from keras_mlrs.core.layers import BandNormalization
from keras_mlrs.errors import InvalidParameterError, ShapeMismatchError, UnsupportedModelError
from keras_mlrs.explain import composites
from keras_mlrs.explain.canonizers import DEFAULT_CANONIZERS, canonize
from keras_mlrs.explain.graph import KERNEL, Graph, trace
from keras_mlrs.explain.kernels import (
    LAZY,
    KernelView,
    call_layer,
    check_dtype,
    compile_function,
    dense_relevance,
    transposed_chunks,
)

#: layers a "first layer" may read the model inputs through
_TRANSPARENT_TO_INPUT = (BandNormalization, keras.layers.Flatten, keras.layers.Reshape, keras.layers.Permute)
#: heatmaps (patches × classes) per compiled call when no batch size is given: 8 patches
#: of 19 classes. Measured on the study's K-Branch CNN (2 cores, lrp.epsilon, 19 classes):
#: 173 heatmaps/s one patch per call, 312 at 8, 328 at 16; 8 patches add about 0.5 GB of
#: memory to the call, 16 about 1.2 GB.
DEFAULT_HEATMAPS_PER_CALL = 152


def prepared_graph(model, composite: composites.Composite, canonizers=DEFAULT_CANONIZERS) -> tuple[Graph, int, int]:
    """``model``'s graph after the canonizers, checked to have a rule for every layer up to
    its logit under ``composite``; with the logit tensor id and the index of its step."""
    graph = canonize(trace(model), canonizers)
    logit, last = graph.logit()
    for step in graph.steps[:last]:
        layer = step.layer
        if not isinstance(layer, KERNEL) and composite.layer_map.rule(layer) is None:
            supported = sorted({"Conv2D", "Dense", *composite.layer_map.layer_types()})
            raise UnsupportedModelError(
                f"LRP does not support layer '{layer.name}' ({type(layer).__name__}); supported: {', '.join(supported)}"
                " (map more layers with a LayerMap in the composite)."
            )
    return graph, logit, last


class LRP:
    """Layer-wise Relevance Propagation for a Keras model, compiled once, reused per call.

    Args:
        model: a functional or Sequential Keras model whose last kernel layer outputs the
            class logits (an output activation layer, or a ``Dense`` activation, is
            stripped: relevance starts from the logit).
        preset: a preset name (see :data:`keras_mlrs.explain.composites.PRESETS`) or a
            :class:`~keras_mlrs.explain.composites.Composite`.
        jit: compile with XLA (``None``: yes on JAX, no on TensorFlow, where the plain
            graph runs faster on CPU).
        dtype: ``"float32"`` (default) or ``"float64"``: the precision of the forward and
            backward passes, for checking results whose denominators nearly cancel (on
            JAX, float64 needs 64-bit mode, ``JAX_ENABLE_X64=1``).
        canonizers: rewrite the model's graph first (default: fold batch normalisation,
            see :mod:`keras_mlrs.explain.canonizers`).
        **rule_params: the preset's parameters, e.g. ``epsilon=0.1``.
    """

    def __init__(self, model: keras.Model, preset="lrp.epsilon", jit: bool | None = None, dtype: str = "float32",
                 canonizers=DEFAULT_CANONIZERS, **rule_params):
        self.dtype = check_dtype(dtype)
        self.model = model
        self.composite = composites.get(preset, **rule_params)
        self.preset = preset if isinstance(preset, str) else "custom"
        self.graph, self._logit, last = prepared_graph(model, self.composite, canonizers)
        self._steps = self.graph.steps[: last + 1]
        self._first = self._first_layers(self.graph)
        self.num_classes = int(model.outputs[0].shape[-1])
        self._params = [
            (ops.convert_to_tensor(s.kernel, dtype), ops.convert_to_tensor(s.bias, dtype),
             transposed_chunks(s.kernel, dtype) if isinstance(s.layer, keras.layers.Dense) else None)
            for s in self._steps
            if s.kernel is not None
        ]
        #: multiply-adds of one compiled call (kernel layers' products, forward and
        #: transposed, at their nominal cost), counted when it is traced; None before
        self.multiply_adds_per_call: int | None = None
        if jit is None:
            jit = keras.backend.backend() == "jax"
        self._fn = compile_function(self._relevance, jit)

    @staticmethod
    def _first_layers(graph: Graph) -> set[str]:
        def reaches_input(tensor):
            if tensor in graph.inputs:
                return True
            step = graph.producer(tensor)
            return step is not None and isinstance(step.layer, _TRANSPARENT_TO_INPUT) and all(map(reaches_input, step.inputs))

        return {s.name for s in graph.steps if isinstance(s.layer, KERNEL) and all(map(reaches_input, s.inputs))}

    # -- the computation (traced and compiled) --------------------------------------------
    def _relevance(self, params, inputs, classes):
        values = {tid: ops.cast(x, self.dtype) for tid, x in zip(self.graph.inputs, inputs)}
        pre_activation = {}
        views = {}
        tally = [0]
        kernels = iter(params)
        for step in self._steps:
            args = [values[t] for t in step.inputs]
            if isinstance(step.layer, KERNEL):
                kernel, bias, kernel_t = next(kernels)
                views[step.name] = view = KernelView(step.layer, kernel, bias, args[0].shape[1:], kernel_t, tally)
                z = view.forward(args[0], kernel, bias)
                pre_activation[step.outputs[0]] = z
                out = step.layer.activation(z)
            elif isinstance(step.layer, BandNormalization):  # in float64 too, when asked
                out = step.layer.standardise(args[0], self.dtype)
            else:
                out = call_layer(step.layer, args)
            values[step.outputs[0]] = out

        onehot = ops.one_hot(classes, self.num_classes, dtype=self.dtype)  # [C, K]
        relevance = {self._logit: onehot[:, None, :] * pre_activation[self._logit][None]}
        for step in reversed(self._steps):
            R = relevance.pop(step.outputs[0], None)
            if R is None:
                continue
            args = [values[t] for t in step.inputs]
            if isinstance(step.layer, KERNEL):
                kind = "dense" if isinstance(step.layer, keras.layers.Dense) else "conv"
                rule = self.composite.rule(kind, step.name in self._first)
            else:
                rule = self.composite.layer_map.rule(step.layer)
            if isinstance(R, LAZY) and not rule.takes_lazy:
                R = R.dense()
            if isinstance(step.layer, KERNEL):
                contributions = [rule.relevance(views[step.name], args[0], R)]
            else:
                contributions = rule.relevance(step.layer, args, R)
            for tid, r in zip(step.inputs, contributions):
                relevance[tid] = dense_relevance(relevance[tid]) + dense_relevance(r) if tid in relevance else r
        self.multiply_adds_per_call = tally[0]
        C = classes.shape[0]
        return [dense_relevance(relevance[tid]) if tid in relevance else ops.zeros((C, *x.shape), self.dtype)
                for tid, x in zip(self.graph.inputs, inputs)]

    # -- the public call ----------------------------------------------------------------
    def __call__(self, inputs, classes, batch_size: int | None = None):
        """Relevance of ``inputs`` for each class in ``classes``.

        Args:
            inputs: what the model takes (a dict of arrays for the K-Branch CNN), batched.
            classes: class indices or names (BigEarthNet-19 names are matched
                case-insensitively), one or several.
            batch_size: patches per compiled call; a last, smaller chunk (or fewer patches
                than that) is padded to it, so every call runs one compiled shape. Default:
                :data:`DEFAULT_HEATMAPS_PER_CALL` heatmaps per call, at most the patches given.

        Returns:
            The inputs' structure, each array ``[batch, len(classes), *input_shape]`` in ``dtype``:
            the relevance of every input value for each class.
        """
        flat = flatten_inputs(self.graph, inputs)
        class_ids = np.asarray(class_indices(classes, self.num_classes), "int32")
        n = flat[0].shape[0]
        size = batch_size or min(n, max(1, DEFAULT_HEATMAPS_PER_CALL // len(class_ids)))
        out = [[] for _ in flat]
        for start in range(0, n, size):
            chunk = [x[start : start + size] for x in flat]
            pad = size - chunk[0].shape[0]
            if pad:  # keep one compiled shape
                chunk = [np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) for x in chunk]
            result = self._fn(self._params, [ops.convert_to_tensor(x) for x in chunk], ops.convert_to_tensor(class_ids))
            for acc, r in zip(out, result):
                r = np.asarray(ops.convert_to_numpy(r))
                acc.append(np.moveaxis(r[:, : size - pad], 0, 1))
        arrays = [a[0] if len(a) == 1 else np.concatenate(a) for a in out]  # one call: its arrays, uncopied
        return keras.tree.pack_sequence_as(self.graph.structure, arrays)


def class_indices(classes, num_classes: int) -> list[int]:
    """Class indices from indices or BigEarthNet-19 names (case-insensitive), checked."""
    out = []
    for c in np.atleast_1d(np.asarray(classes, dtype=object)):
        if isinstance(c, str) and not c.strip().lstrip("-").isdigit():
            if num_classes != 19:
                raise InvalidParameterError(f"class names need a 19-class BigEarthNet model; give indices 0 to {num_classes - 1}.")
            out.append(class_index(c))
            continue
        index = int(c)
        if not 0 <= index < num_classes:
            raise InvalidParameterError(f"class index {index} is out of range; use 0 to {num_classes - 1}.")
        out.append(index)
    if not out:
        raise InvalidParameterError("no class to explain; give at least one class.")
    return out


def flatten_inputs(graph: Graph, inputs) -> list[np.ndarray]:
    """``inputs`` as a list of batched arrays in the model's input order, checked against
    its input shapes (one unbatched patch gets a batch axis)."""
    structure = graph.structure
    shapes = [tuple(t.shape[1:]) for t in keras.tree.flatten(structure)]
    if isinstance(structure, dict):
        if not isinstance(inputs, dict) or set(inputs) != set(structure):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ShapeMismatchError(f"model '{graph.name}' takes a dict of {sorted(structure)}; got {got}.")
        flat = keras.tree.flatten({k: inputs[k] for k in structure})
    else:
        flat = keras.tree.flatten(inputs)
    if len(flat) != len(shapes):
        raise ShapeMismatchError(f"model '{graph.name}' takes {len(shapes)} input(s); got {len(flat)}.")
    arrays = []
    for name, x, shape in zip(graph.input_names, flat, shapes):
        x = np.asarray(x)
        if x.ndim == len(shape):
            x = x[None]
        if x.ndim != len(shape) + 1 or any(d is not None and d != n for d, n in zip(shape, x.shape[1:])):
            raise ShapeMismatchError(
                f"input '{name}' has shape {tuple(x.shape[1:])} per patch; the model expects {shape}."
            )
        arrays.append(x)
    if len({x.shape[0] for x in arrays}) != 1:
        raise ShapeMismatchError("every input needs the same number of patches.")
    return arrays


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def lrp(model, inputs, classes, preset="lrp.epsilon", batch_size: int | None = None, dtype: str = "float32",
        **rule_params):
    """Relevance of ``inputs`` for ``classes`` by LRP with a preset; see :class:`LRP`.

    The compiled analyzer is cached per model, preset, parameters and dtype, so repeated
    calls only run it.

    Returns:
        The inputs' structure; each array is ``[batch, len(classes), *input_shape]`` in ``dtype``.
    """
    key = (preset if isinstance(preset, str) else id(preset), dtype, tuple(sorted(rule_params.items())))
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = LRP(model, preset, dtype=dtype, **rule_params)
    return per_model[key](inputs, classes, batch_size=batch_size)


__all__ = ["LRP", "class_indices", "flatten_inputs", "lrp", "prepared_graph"]
