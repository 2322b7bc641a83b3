"""The backend side of LRP: the few operations that are not plain ``keras.ops``.

:func:`vjp` (the backward pass of one operation) and :func:`compile_function` (``jax.jit``
or ``tf.function``) are the only backend-specific code of the engine; the rest here is the
forward and transposed linear map of a kernel layer (:class:`KernelView`), with faster
forms of the transposed convolution for stride 1.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_mlrs.errors import InvalidParameterError, UnsupportedModelError


def kernel_apply(layer, x, kernel, bias=None):
    """The linear part of a kernel layer: ``x`` times ``kernel`` (convolution or matmul),
    plus ``bias`` when given."""
    if isinstance(layer, keras.layers.Conv2D):
        z = ops.conv(x, kernel, strides=layer.strides, padding=layer.padding,
                     data_format="channels_last", dilation_rate=layer.dilation_rate)
    else:
        z = ops.matmul(x, kernel)
    return z if bias is None else z + bias


def call_layer(layer, args):
    """``layer`` applied to its inputs ``args`` (a list; merging layers take all of them)."""
    return layer.call(args if isinstance(layer, keras.layers.Add | keras.layers.Concatenate) else args[0])


def vjp(fn, primals: list, cotangent) -> list:
    """The vector-Jacobian product of ``fn(*primals)`` with ``cotangent``, per primal."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax  # the backend in use, and only it

        return list(jax.vjp(fn, *primals)[1](cotangent))
    if backend == "tensorflow":
        import tensorflow as tf  # the backend in use, and only it

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
        import jax  # the backend in use, and only it

        return jax.jit(fn) if jit else fn
    if backend == "tensorflow":
        import tensorflow as tf  # the backend in use, and only it

        tf.get_logger().addFilter(_quiet_retracing)
        # The relevance function is a plain Python loop over the graph's steps, fixed when it
        # is built, with no tensor-dependent control flow: AutoGraph has nothing to convert,
        # and skipping it makes tracing several times faster (same relevance, tested). The
        # shapes are static, so there is no reduce_retracing either.
        return tf.function(fn, jit_compile=bool(jit), autograph=False)
    raise UnsupportedModelError(f"LRP runs on the tensorflow and jax backends, not '{backend}'; set KERAS_BACKEND.")


def check_dtype(dtype: str) -> str:
    """``dtype`` if LRP can compute in it on this backend, else a one-line error."""
    if dtype not in ("float32", "float64"):
        raise InvalidParameterError(f"LRP computes in float32 or float64, not '{dtype}'.")
    if dtype == "float64" and keras.backend.backend() == "jax":
        import jax  # the backend in use, and only it

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
        return blocked_conv(ops.pad(s, [(0, 0), *pads, (0, 0)]), flipped, s.shape[1:3])
    if layer.padding == "same" and all(a == b for a, b in pads):
        return ops.conv(s, flipped, strides=1, padding="same", dilation_rate=layer.dilation_rate)
    s = ops.pad(s, [(0, 0), *pads, (0, 0)])
    return ops.conv(s, flipped, strides=1, padding="valid", dilation_rate=layer.dilation_rate)


def _blocked_pays_off(layer, kernel) -> bool:
    """Whether :func:`blocked_conv` beats the direct convolution: a first layer's backward
    pass (a few output channels, e.g. 4 bands) with a kernel of 5 × 5 or more, where CPU
    convolution kernels run far below peak. Measured on the K-Branch CNN's 5 × 5, 32 -> 4
    transpose (152 maps of 120 × 120): 0.14 s against 0.26 s."""
    return tuple(layer.dilation_rate) == (1, 1) and min(kernel.shape[:2]) >= 5 and kernel.shape[2] <= 4


def blocked_conv(x, kernel, size):
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


def class_vjp(layer, args, R, primal_needed: bool) -> list:
    """The backward pass of ``layer`` applied to each class slice of ``R``."""
    C = R.shape[0]
    flat = ops.reshape(R, (-1, *R.shape[2:]))
    if primal_needed:  # max pooling routes by the forward values
        primals = [ops.reshape(ops.repeat(x[None], C, axis=0), (-1, *x.shape[1:])) for x in args]
    else:
        primals = [ops.zeros((flat.shape[0], *x.shape[1:]), x.dtype) for x in args]
    grads = vjp(lambda *xs: call_layer(layer, list(xs)), primals, flat)
    return [ops.reshape(g, (C, *x.shape)) for g, x in zip(grads, args)]
