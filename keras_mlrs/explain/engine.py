"""The native LRP engine: one forward pass, then relevance flows back layer by layer.

Everything is ``keras.ops`` except two small backend hooks, :func:`vjp` (the backward
pass of one linear operation) and :func:`compile_function` (``jax.jit`` or
``tf.function``), so the engine runs on the TensorFlow and JAX backends.

The forward pass is shared by every class being explained; the backward pass carries
one relevance slice per class (``[classes, batch, ...]``), so explaining 19 classes costs
one forward pass, not 19.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
from keras import ops

from keras_mlrs.errors import InvalidParameterError, ShapeMismatchError
from keras_mlrs.explain import composites
from keras_mlrs.explain.canonizers import fold_batchnorm_graph
from keras_mlrs.explain.graph import (
    KERNEL,
    OUTPUT_ACTIVATIONS,
    PASS_THROUGH,
    PROPORTIONAL,
    STRUCTURAL,
    Graph,
    UnsupportedModelError,
    kernel_apply,
    trace,
)
from keras_mlrs.explain.rules import safe_divide
from keras_mlrs.layers import BandNormalization

#: layers a "first layer" may read the model inputs through
_TRANSPARENT_TO_INPUT = (BandNormalization, keras.layers.Flatten, keras.layers.Reshape, keras.layers.Permute)
#: heatmaps (patches × classes) per compiled call; bounds memory on 19-class requests
DEFAULT_HEATMAPS_PER_CALL = 32


def vjp(fn, primals: list, cotangent) -> list:
    """The vector-Jacobian product of ``fn(*primals)`` with ``cotangent``, per primal."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return list(jax.vjp(fn, *primals)[1](cotangent))
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(primals)
            out = fn(*primals)
        return tape.gradient(out, primals, output_gradients=cotangent)
    raise UnsupportedModelError(f"LRP runs on the tensorflow and jax backends, not '{backend}'; set KERAS_BACKEND.")


def _quiet_retracing(record) -> bool:
    """Drop TensorFlow's retracing warning: it counts traces across all engines (one model
    and input shape each, traced once by design) as if they were one function retracing."""
    return "triggered tf.function retracing" not in record.getMessage()


def compile_function(fn, jit: bool):
    """``fn`` compiled for the backend: ``jax.jit``, or ``tf.function`` (XLA when ``jit``)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn) if jit else fn
    if backend == "tensorflow":
        import tensorflow as tf

        tf.get_logger().addFilter(_quiet_retracing)
        return tf.function(fn, jit_compile=bool(jit))  # static shapes: no reduce_retracing
    raise UnsupportedModelError(f"LRP runs on the tensorflow and jax backends, not '{backend}'; set KERAS_BACKEND.")


def check_dtype(dtype: str) -> str:
    """``dtype`` if LRP can compute in it on this backend, else a one-line error."""
    if dtype not in ("float32", "float64"):
        raise InvalidParameterError(f"LRP computes in float32 or float64, not '{dtype}'.")
    if dtype == "float64" and keras.backend.backend() == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            raise InvalidParameterError("float64 LRP on JAX needs 64-bit mode; set JAX_ENABLE_X64=1.")
    return dtype


class KernelView:
    """A kernel layer as the rules see it: ``forward(x, W, b)``, ``transpose(s, W)`` and
    the effective ``kernel`` and ``bias`` (batch normalisation folded in)."""

    def __init__(self, layer, kernel, bias, in_shape):
        self.layer, self.kernel, self.bias, self.in_shape = layer, kernel, bias, tuple(in_shape)

    def forward(self, x, kernel, bias=None):
        return kernel_apply(self.layer, x, kernel, bias)

    def transpose(self, s, kernel):
        if isinstance(self.layer, keras.layers.Dense):
            return ops.matmul(s, ops.transpose(kernel))
        lead = s.shape[:2]
        flat = ops.reshape(s, (-1, *s.shape[2:]))
        if tuple(self.layer.strides) == (1, 1):
            out = _conv_transpose_stride_1(self.layer, flat, kernel)
        else:
            primal = ops.zeros((flat.shape[0], *self.in_shape), flat.dtype)
            (out,) = vjp(lambda v: kernel_apply(self.layer, v, kernel), [primal], flat)
        return ops.reshape(out, (*lead, *self.in_shape))


def _conv_transpose_stride_1(layer, s, kernel):
    """The backward pass of a stride-1 convolution as a forward convolution with the
    kernel flipped in space and its channel axes swapped (and the padding mirrored).
    Equal to the gradient, and about twice as fast on CPU."""
    flipped = ops.transpose(ops.flip(ops.flip(kernel, 0), 1), (0, 1, 3, 2))
    pads = []
    for k, d in zip(kernel.shape[:2], layer.dilation_rate):
        extent = (k - 1) * d
        if layer.padding == "same":
            before = extent // 2
            pads.append((extent - before, before))  # the forward pass padded (before, extent - before)
        else:
            pads.append((extent, extent))
    if _blocked_pays_off(layer, kernel):
        return _blocked_conv(ops.pad(s, [(0, 0), *pads, (0, 0)]), flipped, s.shape[1:3])
    if layer.padding == "same" and all(a == b for a, b in pads):
        return ops.conv(s, flipped, strides=1, padding="same", dilation_rate=layer.dilation_rate)
    s = ops.pad(s, [(0, 0), *pads, (0, 0)])
    return ops.conv(s, flipped, strides=1, padding="valid", dilation_rate=layer.dilation_rate)


def _blocked_pays_off(layer, kernel) -> bool:
    """Whether :func:`_blocked_conv` beats the direct convolution: a first layer's backward
    pass (a few output channels, e.g. 4 bands) with a kernel of 5 × 5 or more, where CPU
    convolution kernels run far below peak. Measured on the K-Branch CNN's 5 × 5, 32 -> 4
    transpose (152 maps of 120 × 120): 0.14 s against 0.26 s."""
    return tuple(layer.dilation_rate) == (1, 1) and min(kernel.shape[:2]) >= 5 and kernel.shape[2] <= 4


def _blocked_conv(x, kernel, size):
    """``conv(x, kernel, "valid")`` cropped to ``size``, computed on 2 × 2 blocks: the input
    becomes ``[H/2, W/2, 4·C_in]``, the kernel a ``⌊k/2⌋+1``-wide kernel over blocks with
    ``4·C_out`` outputs, so that few output channels become many (more multiplications, at
    a much higher rate)."""
    n, h, w, c_in = x.shape
    kh, kw, _, c_out = kernel.shape
    bh, bw = kh // 2 + 1, kw // 2 + 1
    # enough blocks for ceil(size / 2) output blocks; the padding only meets zero taps
    h2, w2 = -(-size[0] // 2) + bh - 1, -(-size[1] // 2) + bw - 1
    x = ops.pad(x, [(0, 0), (0, 2 * h2 - h), (0, 2 * w2 - w), (0, 0)])
    blocks = ops.reshape(ops.transpose(ops.reshape(x, (n, h2, 2, w2, 2, c_in)), (0, 1, 3, 2, 4, 5)), (n, h2, w2, 4 * c_in))
    # output (2i + a) reads input (2i + a + d) = 2(i + δ) + p: δ = (a + d) // 2, p = (a + d) % 2
    index = np.full((bh, bw, 2, 2, 2, 2), kh * kw)  # [δy, δx, p, q, a, b] -> flat kernel tap (or the zero tap)
    for dy_block, dx_block, p, q, a, b in np.ndindex(index.shape):
        ty, tx = 2 * dy_block + p - a, 2 * dx_block + q - b
        if 0 <= ty < kh and 0 <= tx < kw:
            index[dy_block, dx_block, p, q, a, b] = ty * kw + tx
    taps = ops.concatenate([ops.reshape(kernel, (kh * kw, c_in, c_out)), ops.zeros((1, c_in, c_out), kernel.dtype)])
    blocked = ops.take(taps, ops.convert_to_tensor(index.reshape(-1)), axis=0)  # [..., c_in, c_out]
    blocked = ops.reshape(blocked, (bh, bw, 2, 2, 2, 2, c_in, c_out))
    blocked = ops.reshape(ops.transpose(blocked, (0, 1, 2, 3, 6, 4, 5, 7)), (bh, bw, 4 * c_in, 4 * c_out))
    out = ops.conv(blocks, blocked, strides=1, padding="valid")
    oh, ow = out.shape[1:3]
    out = ops.reshape(ops.transpose(ops.reshape(out, (n, oh, ow, 2, 2, c_out)), (0, 1, 3, 2, 4, 5)), (n, 2 * oh, 2 * ow, c_out))
    return out[:, : size[0], : size[1]]


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
        **rule_params: the preset's parameters, e.g. ``epsilon=0.1``.
    """

    def __init__(self, model: keras.Model, preset="lrp.epsilon", jit: bool | None = None, dtype: str = "float32",
                 **rule_params):
        self.dtype = check_dtype(dtype)
        self.model = model
        self.composite = composites.get(preset, **rule_params)
        self.preset = preset if isinstance(preset, str) else "custom"
        self.graph = fold_batchnorm_graph(trace(model))
        self._logit, self._last = self._find_logit(self.graph)
        self._steps = self.graph.steps[: self._last + 1]
        self._first = self._first_layers(self.graph)
        self.num_classes = int(model.outputs[0].shape[-1])
        self._params = [
            (ops.convert_to_tensor(s.kernel, dtype), ops.convert_to_tensor(s.bias, dtype))
            for s in self._steps
            if s.kernel is not None
        ]
        if jit is None:
            jit = keras.backend.backend() == "jax"
        self._fn = compile_function(self._relevance, jit)

    @staticmethod
    def _find_logit(graph: Graph) -> tuple[int, int]:
        """The id of the logit tensor and the index of the step producing it."""
        tensor = graph.output
        while True:
            step = graph.producer(tensor)
            if step is None:
                raise UnsupportedModelError(f"model '{graph.name}' has no Conv2D or Dense layer before its output.")
            if isinstance(step.layer, KERNEL):
                return tensor, graph.steps.index(step)
            if not isinstance(step.layer, OUTPUT_ACTIVATIONS):
                raise UnsupportedModelError(
                    f"model '{graph.name}' ends with layer '{step.name}' ({type(step.layer).__name__}); LRP starts "
                    "from logits, so the model must end with a Dense (or Conv2D) layer, optionally followed by "
                    "an activation."
                )
            tensor = step.inputs[0]

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
        kernels = iter(params)
        for step in self._steps:
            args = [values[t] for t in step.inputs]
            if isinstance(step.layer, KERNEL):
                kernel, bias = next(kernels)
                views[step.name] = KernelView(step.layer, kernel, bias, args[0].shape[1:])
                z = kernel_apply(step.layer, args[0], kernel, bias)
                pre_activation[step.outputs[0]] = z
                out = step.layer.activation(z)
            elif isinstance(step.layer, BandNormalization):  # in float64 too, when asked
                out = step.layer.standardise(args[0], self.dtype)
            else:
                out = _call(step.layer, args)
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
                contributions = [rule.relevance(views[step.name], args[0], R)]
            elif isinstance(step.layer, PASS_THROUGH + OUTPUT_ACTIVATIONS):
                contributions = [R]
            elif isinstance(step.layer, PROPORTIONAL):
                z = _call(step.layer, args)
                grads = _class_vjp(step.layer, args, safe_divide(R, z), primal_needed=False)
                contributions = [x * g for x, g in zip(args, grads)]
            elif _is_tiling_max_pool(step.layer):
                contributions = [_tiling_max_pool_relevance(step.layer, args[0], R)]
            elif isinstance(step.layer, STRUCTURAL):
                contributions = _class_vjp(step.layer, args, R, primal_needed=True)
            else:  # pragma: no cover - trace() refuses anything else
                raise UnsupportedModelError(f"no relevance mapping for layer '{step.name}'.")
            for tid, r in zip(step.inputs, contributions):
                relevance[tid] = relevance[tid] + r if tid in relevance else r
        C = classes.shape[0]
        return [relevance.get(tid, ops.zeros((C, *x.shape), self.dtype)) for tid, x in zip(self.graph.inputs, inputs)]

    # -- the public call ----------------------------------------------------------------
    def __call__(self, inputs, classes, batch_size: int | None = None):
        """Relevance of ``inputs`` for each class in ``classes``.

        Args:
            inputs: what the model takes (a dict of arrays for the K-Branch CNN), batched.
            classes: class indices or names (BigEarthNet-19 names are matched
                case-insensitively), one or several.
            batch_size: patches per compiled call (default: 32 heatmaps per call).

        Returns:
            The inputs' structure, each array ``[batch, len(classes), *input_shape]`` in ``dtype``:
            the relevance of every input value for each class.
        """
        flat = flatten_inputs(self.graph, inputs)
        class_ids = np.asarray(class_indices(classes, self.num_classes), "int32")
        n = flat[0].shape[0]
        size = batch_size or max(1, DEFAULT_HEATMAPS_PER_CALL // len(class_ids))
        size = min(size, n)
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
        arrays = [np.concatenate(a) for a in out]
        return keras.tree.pack_sequence_as(self.graph.structure, arrays)

def class_indices(classes, num_classes: int) -> list[int]:
    """Class indices from indices or BigEarthNet-19 names (case-insensitive), checked."""
    out = []
    for c in np.atleast_1d(np.asarray(classes, dtype=object)):
        if isinstance(c, str) and not c.strip().lstrip("-").isdigit():
            if num_classes != 19:
                raise InvalidParameterError(f"class names need a 19-class BigEarthNet model; give indices 0 to {num_classes - 1}.")
            from keras_mlrs.data.nomenclature import class_index

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


def _call(layer, args):
    return layer.call(args if isinstance(layer, keras.layers.Add | keras.layers.Concatenate) else args[0])


def _is_tiling_max_pool(layer) -> bool:
    return (
        isinstance(layer, keras.layers.MaxPooling2D)
        and tuple(layer.pool_size) == tuple(layer.strides)
        and layer.padding == "valid"
        and layer.data_format == "channels_last"
    )


def _tiling_max_pool_relevance(layer, x, R):
    """Winner-take-all through a max pooling whose windows tile the input: each window's
    relevance goes to its maximum (split evenly between tied maxima). Same result as the
    gradient, without repeating the forward values once per class."""
    ph, pw = layer.pool_size
    pooled = layer.call(x)
    h, w = pooled.shape[1] * ph, pooled.shape[2] * pw
    crop = x[:, :h, :w]

    def up(t, axis):
        return ops.repeat(ops.repeat(t, ph, axis=axis), pw, axis=axis + 1)

    winners = ops.cast(ops.equal(crop, up(pooled, 1)), x.dtype)
    counts = ops.sum(ops.reshape(winners, (-1, pooled.shape[1], ph, pooled.shape[2], pw, x.shape[-1])), axis=(2, 4))
    share = winners / up(counts, 1)
    out = up(R, 2) * share[None]
    if (h, w) != tuple(x.shape[1:3]):
        out = ops.pad(out, [(0, 0), (0, 0), (0, x.shape[1] - h), (0, x.shape[2] - w), (0, 0)])
    return out


def _class_vjp(layer, args, R, primal_needed: bool) -> list:
    """The backward pass of ``layer`` applied to each class slice of ``R``."""
    C = R.shape[0]
    flat = ops.reshape(R, (-1, *R.shape[2:]))
    if primal_needed:  # max pooling routes by the forward values
        primals = [ops.reshape(ops.repeat(x[None], C, axis=0), (-1, *x.shape[1:])) for x in args]
    else:
        primals = [ops.zeros((flat.shape[0], *x.shape[1:]), x.dtype) for x in args]
    grads = vjp(lambda *xs: _call(layer, list(xs)), primals, flat)
    return [ops.reshape(g, (C, *x.shape)) for g, x in zip(grads, args)]


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


__all__ = ["LRP", "KernelView", "check_dtype", "class_indices", "compile_function", "flatten_inputs", "lrp", "vjp"]
