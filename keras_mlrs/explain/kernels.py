"""The backend side of LRP: the few operations that are not plain ``keras.ops``.

:func:`vjp` (the backward pass of one operation), :func:`compile_function` (``jax.jit``,
``tf.function``, or PyTorch's eager mode without autograd) and :func:`fused` (XLA for the
element-wise chains inside TensorFlow's graph) are the only backend-specific code of the
engine; the rest here is the forward and transposed linear map of a kernel layer
(:class:`KernelView`), with faster forms of the transposed convolution for stride 1, and
the relevance held lazily (:class:`Windows`, :class:`Scaled`) until a tensor is needed.
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
        z = matmul(x, kernel)
    return z if bias is None else z + bias


def matmul(a, b):
    """``ops.matmul`` in the operands' dtype. Under PyTorch, Keras 3.15 computes a product of
    float64 tensors in float32 (its ``result_type`` reads PyTorch's dtype objects as the
    default float), which float64 LRP must not."""
    if keras.backend.backend() == "torch":
        import torch  # the backend in use, and only it

        return torch.matmul(a, b)
    return ops.matmul(a, b)


def positive(x):
    """``max(x, 0)`` in ``x``'s dtype (under PyTorch, Keras 3.15's ``ops.maximum`` returns
    float32 for float64 operands, as its ``matmul`` does, see :func:`matmul`;
    ``relu`` keeps the dtype)."""
    return ops.relu(x)


def negative(x):
    """``min(x, 0)`` in ``x``'s dtype (see :func:`positive`)."""
    return x - ops.relu(x)


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
    if backend == "torch":
        import torch  # the backend in use, and only it

        with torch.enable_grad():
            primals = [p.detach().requires_grad_(True) for p in primals]
            out = fn(*primals)
            return list(torch.autograd.grad(out, primals, grad_outputs=cotangent, allow_unused=True))
    raise UnsupportedModelError(f"LRP runs on the tensorflow, jax and torch backends, not '{backend}'; set "
                                "KERAS_BACKEND.")


def _quiet_retracing(record) -> bool:
    """Drop TensorFlow's retracing warning: it counts traces across all engines (one model
    and input shape each, traced once by design) as if they were one function retracing."""
    return "triggered tf.function retracing" not in record.getMessage()


def compile_function(fn, jit: bool):
    """``fn`` compiled for the backend: ``jax.jit``, ``tf.function`` (XLA when ``jit``), or under
    PyTorch run eagerly with autograd off (``jit`` is refused there)."""
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
    if backend == "torch":
        import torch  # the backend in use, and only it

        if jit:
            raise InvalidParameterError("LRP under PyTorch runs eagerly; `jit=True` needs the jax or tensorflow "
                                        "backend.")
        # No autograd graph for the forward pass and the rules: only :func:`vjp` needs one.
        return torch.no_grad()(fn)
    raise UnsupportedModelError(f"LRP runs on the tensorflow, jax and torch backends, not '{backend}'; set "
                                "KERAS_BACKEND.")


def fused(fn):
    """``fn``, a chain of element-wise operations (with broadcasts, reshapes and small
    reductions), compiled into one XLA kernel inside TensorFlow's graph, so its
    intermediates never reach memory; the convolutions and products around it stay
    TensorFlow's (oneDNN's, faster on CPU than XLA's). Under JAX the whole computation is
    already one XLA program, and PyTorch runs it eagerly: ``fn`` itself."""
    if keras.backend.backend() != "tensorflow":
        return fn
    import tensorflow as tf  # the backend in use, and only it

    return tf.function(fn, jit_compile=True, autograph=False)


def check_dtype(dtype: str) -> str:
    """``dtype`` if LRP can compute in it on this backend, else a one-line error."""
    if dtype not in ("float32", "float64"):
        raise InvalidParameterError(f"LRP computes in float32 or float64, not '{dtype}'.")
    if dtype == "float64" and keras.backend.backend() == "jax":
        import jax  # the backend in use, and only it

        if not jax.config.jax_enable_x64:
            raise InvalidParameterError("float64 LRP on JAX needs 64-bit mode; set JAX_ENABLE_X64=1.")
    return dtype


def multiply_adds(layer, out_shape) -> int:
    """Multiply-adds of a kernel layer's linear map (or of its transpose, the same count)
    producing an output of ``out_shape`` (batch axes included): what a convolution or matrix
    product costs at the least, whatever faster or slower form computes it."""
    kernel = layer.kernel.shape
    fan_in = int(np.prod(kernel[:-1]))  # kh·kw·c_in, or the dense layer's inputs
    return int(np.prod(out_shape)) * fan_in


class Windows:
    """The relevance of a tiling max pooling's input, kept as the pooled relevance ``R``
    (``[classes, batch, h', w', ch]``) and the share of it each input unit receives
    (``share``, ``[batch, h', ph, w', pw, ch]``, per patch): unit ``(ph·i + a, pw·j + b)``
    holds ``R[i, j] · share[i, a, j, b]``. Nothing of the input's size is made per class until
    a consumer needs it: the ε and Z rules scale the share per patch (:meth:`scaled`), and
    the blocked transposed convolution of the first layer reads the 2 × 2 windows as its
    blocks directly (:meth:`blocks`), so max pooling, the rule's division and the block
    layout cost one pass over the relevance instead of five."""

    def __init__(self, R, share, padded_shape):
        self.R, self.share, self.padded_shape = R, share, tuple(padded_shape)  # padded: the pooled input's (h, w)

    @property
    def window(self) -> tuple[int, int]:
        return self.share.shape[2], self.share.shape[4]

    def scaled(self, q) -> Windows:
        """These relevances times ``q`` (``[batch, h, w, ch]``, per patch, the input's shape)."""
        hp, ph, wp, pw, ch = self.share.shape[1:]
        q = ops.reshape(q[:, : hp * ph, : wp * pw], (-1, hp, ph, wp, pw, ch))
        return Windows(self.R, self.share * q, self.padded_shape)

    def dense(self):
        """``[classes, batch, h, w, ch]``: the relevance of every input unit."""
        out = _upsampled(self.R, self.share)
        h, w = self.padded_shape
        if (h, w) != tuple(out.shape[2:4]):
            out = ops.pad(out, [(0, 0), (0, 0), (0, h - out.shape[2]), (0, w - out.shape[3]), (0, 0)])
        return out

    def blocks(self):
        """``[classes · batch, h', w', 4·ch]``: the 2 × 2 windows as the blocks of
        :func:`blocked_conv` (channels in ``(a, b, ch)`` order)."""
        return _window_blocks(self.R, self.share)


# Both are also valid TensorFlow graphs, as they must be where functions run eagerly
# (``tf.config.run_functions_eagerly``): broadcasts of rank 5 at most once merged.
@fused
def _upsampled(R, share):
    """``R`` (``[C, B, h', w', ch]``) spread over its windows by ``share``
    (``[B, h', ph, w', pw, ch]``): ``[C, B, h'·ph, w'·pw, ch]``."""
    n, hp, ph, wp, pw, ch = share.shape
    C = R.shape[0]
    up = ops.broadcast_to(ops.reshape(R, (C, n * hp, 1, wp, 1, ch)), (C, n * hp, ph, wp, pw, ch))
    return ops.reshape(up, (C, n, hp * ph, wp * pw, ch)) * ops.reshape(share, (1, n, hp * ph, wp * pw, ch))


@fused
def _window_blocks(R, share):
    """``R`` spread over its 2 × 2 windows by ``share``, as blocks: ``[C·B, h', w', 4·ch]``."""
    n, hp, _, wp, _, ch = share.shape
    C = R.shape[0]
    share = ops.reshape(ops.transpose(share, (0, 1, 3, 2, 4, 5)), (1, n * hp * wp, 4, ch))
    return ops.reshape(ops.reshape(R, (C, n * hp * wp, 1, ch)) * share, (C * n, hp, wp, 4 * ch))


class Scaled:
    """Relevance held as ``T`` (``[classes, batch, ...]``) times ``q`` (``[batch, ...]``, per
    patch): a kernel rule's ``x · transposed product``, kept unmultiplied. The next rule's
    own per-patch factor (the ε rule's reciprocal, a max pooling's shares) joins ``q``, and
    the product is made once, in one pass, where a tensor is needed (:meth:`dense`): one
    pass over the relevance per layer instead of two."""

    def __init__(self, T, q):
        self.T, self.q = T, q

    def scaled(self, q) -> Scaled:
        """This relevance times ``q`` (per patch)."""
        return Scaled(self.T, self.q * q)

    def dense(self):
        return _product(self.T, self.q)


@fused
def _product(T, q):
    return T * q


#: relevance not yet a tensor: what rules with ``takes_lazy`` receive as it is
LAZY = (Windows, Scaled)


def dense_relevance(R):
    """``R`` as a tensor, whether it is one or lazy (:class:`Windows`, :class:`Scaled`)."""
    return R.dense() if isinstance(R, LAZY) else R


#: input columns per chunk of a dense kernel's stored transpose (:func:`transposed_chunks`)
CHUNK_COLUMNS = 4096


def transposed_chunks(kernel, dtype) -> tuple:
    """A dense ``[in, out]`` kernel transposed (``[out, in]``, contiguous) and cut along its
    inputs into chunks of about :data:`CHUNK_COLUMNS` columns: what :class:`KernelView`
    multiplies by. Measured on the K-Branch CNN's ``57600 × 1024`` kernels (tf.function,
    2 cores): the transposed product of 152 rows took 57-60 ms in 14-16 chunks against
    61-66 ms whole."""
    kernel_t = np.ascontiguousarray(np.asarray(kernel).T)
    pieces = max(1, round(kernel_t.shape[1] / CHUNK_COLUMNS))
    return tuple(ops.convert_to_tensor(np.ascontiguousarray(c), dtype) for c in np.array_split(kernel_t, pieces, axis=1))


class KernelView:
    """A kernel layer as the rules see it: ``forward(x, W, b)``, ``transpose(s, W)`` and
    the effective ``kernel`` and ``bias`` (batch normalisation folded in).

    ``kernel_t``: the dense kernel already transposed, in chunks of its inputs
    (:func:`transposed_chunks`), used when a rule multiplies by the layer's own kernel: a
    product with a transposed operand runs at about half the rate of one with a stored one
    on CPU (the transpose is made per call).
    ``tally``: a one-item list that every ``forward`` and ``transpose`` adds its
    multiply-adds to (:func:`multiply_adds`), counted when the computation is traced."""

    def __init__(self, layer, kernel, bias, in_shape, kernel_t=None, tally=None):
        self.layer, self.kernel, self.bias, self.in_shape = layer, kernel, bias, tuple(in_shape)
        self.kernel_t = kernel_t
        self.tally = tally if tally is not None else [0]
        self._last = None  # (x, kernel, bias, z) of the last forward: rules recompute the model's own z

    def forward(self, x, kernel, bias=None):
        last = self._last
        if last is not None and last[0] is x and last[1] is kernel and last[2] is bias:
            return last[3]
        z = kernel_apply(self.layer, x, kernel, bias)
        self.tally[0] += multiply_adds(self.layer, z.shape)
        self._last = (x, kernel, bias, z)
        return z

    def transpose(self, s, kernel):
        """``s`` (``[classes, batch, ...out]``, or lazy: :data:`LAZY`) times the transposed
        linear map of ``kernel``: ``[classes, batch, ...in]``."""
        if isinstance(s, Windows):
            if kernel is self.kernel and _reads_windows_as_blocks(self.layer, kernel, s):
                C, n = s.R.shape[0], s.share.shape[0]
                self.tally[0] += multiply_adds(self.layer, (C, n, *s.padded_shape, kernel.shape[-1]))
                flipped = ops.transpose(ops.flip(ops.flip(kernel, 0), 1), (0, 1, 3, 2))
                out = ops.conv(s.blocks(), block_kernel(flipped), strides=1, padding="same")
                return ops.reshape(unblock(out, flipped.shape[-1]), (C, n, *self.in_shape))
        s = dense_relevance(s)
        self.tally[0] += multiply_adds(self.layer, s.shape)
        if isinstance(self.layer, keras.layers.Dense):
            if kernel is self.kernel and self.kernel_t is not None:
                parts = [matmul(s, c) for c in self.kernel_t]
                return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)
            return matmul(s, ops.transpose(kernel))
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


def _reads_windows_as_blocks(layer, kernel, s: Windows) -> bool:
    """Whether the transposed convolution can read ``s`` 's 2 × 2 windows as its blocks: the
    blocked form pays off (:func:`_blocked_pays_off`), the windows are 2 × 2 and tile the
    input exactly, and the 'same' padding is a whole number of blocks on each side (a 5 × 5
    kernel pads 2), so the block convolution is a 'same' one."""
    k = kernel.shape[:2]
    return (tuple(layer.strides) == (1, 1) and layer.padding == "same" and _blocked_pays_off(layer, kernel)
            and s.window == (2, 2) and all(n % 4 == 1 for n in k)
            and tuple(s.padded_shape) == (2 * s.share.shape[1], 2 * s.share.shape[3]))


def block_kernel(kernel):
    """The ``[kh, kw, c_in, c_out]`` kernel as a kernel over 2 × 2 blocks: ``⌊k/2⌋+1`` wide,
    ``4·c_in`` inputs and ``4·c_out`` outputs (channels in ``(a, b, c)`` order): output
    ``(2i + a)`` reads input ``(2i + a + d) = 2(i + δ) + p``, ``δ = (a + d) // 2``,
    ``p = (a + d) % 2``, counted from the kernel's first tap."""
    kh, kw, c_in, c_out = kernel.shape
    bh, bw = kh // 2 + 1, kw // 2 + 1
    index = np.full((bh, bw, 2, 2, 2, 2), kh * kw)  # [δy, δx, p, q, a, b] -> flat kernel tap (or the zero tap)
    for dy_block, dx_block, p, q, a, b in np.ndindex(index.shape):
        ty, tx = 2 * dy_block + p - a, 2 * dx_block + q - b
        if 0 <= ty < kh and 0 <= tx < kw:
            index[dy_block, dx_block, p, q, a, b] = ty * kw + tx
    taps = ops.concatenate([ops.reshape(kernel, (kh * kw, c_in, c_out)), ops.zeros((1, c_in, c_out), kernel.dtype)])
    blocked = ops.take(taps, ops.convert_to_tensor(index.reshape(-1)), axis=0)  # [..., c_in, c_out]
    blocked = ops.reshape(blocked, (bh, bw, 2, 2, 2, 2, c_in, c_out))
    return ops.reshape(ops.transpose(blocked, (0, 1, 2, 3, 6, 4, 5, 7)), (bh, bw, 4 * c_in, 4 * c_out))


def unblock(out, c_out: int):
    """``[n, h', w', 4·c_out]`` blocks back to ``[n, 2h', 2w', c_out]``."""
    n, oh, ow = out.shape[:3]
    return ops.reshape(ops.transpose(ops.reshape(out, (n, oh, ow, 2, 2, c_out)), (0, 1, 3, 2, 4, 5)),
                       (n, 2 * oh, 2 * ow, c_out))


def blocked_conv(x, kernel, size):
    """``conv(x, kernel, "valid")`` cropped to ``size``, computed on 2 × 2 blocks: the input
    becomes ``[H/2, W/2, 4·C_in]``, the kernel a ``⌊k/2⌋+1``-wide kernel over blocks with
    ``4·C_out`` outputs (:func:`block_kernel`), so that few output channels become many
    (more multiplications, at a much higher rate)."""
    n, h, w, c_in = x.shape
    kh, kw, _, c_out = kernel.shape
    bh, bw = kh // 2 + 1, kw // 2 + 1
    # enough blocks for ceil(size / 2) output blocks; the padding only meets zero taps
    h2, w2 = -(-size[0] // 2) + bh - 1, -(-size[1] // 2) + bw - 1
    x = ops.pad(x, [(0, 0), (0, 2 * h2 - h), (0, 2 * w2 - w), (0, 0)])
    blocks = ops.reshape(ops.transpose(ops.reshape(x, (n, h2, 2, w2, 2, c_in)), (0, 1, 3, 2, 4, 5)), (n, h2, w2, 4 * c_in))
    out = ops.conv(blocks, block_kernel(kernel), strides=1, padding="valid")
    return unblock(out, c_out)[:, : size[0], : size[1]]


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
