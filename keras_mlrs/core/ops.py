"""Numerics shared by losses, layers and decision rules, written with ``keras.ops``.

Everything here runs on every Keras backend and is differentiable.

Why our own sparsemax: ``keras.ops.sparsemax`` in Keras 3.15 returns wrong
values whenever more than one entry is in the support (keras-team/keras#23425:
``[0.5, 0.4, 0.1, -1]`` gives ``[0.033, 0, 0, 0]`` instead of
``[0.5, 0.4, 0.1, 0]``).
"""

import keras
from keras import ops

#: A finite stand-in for minus infinity in masked reductions (keeps gradients NaN-free).
NEG_LARGE = -1e30


def to_float32(x):
    """``x`` (array, tensor or nested lists) as a float32 tensor of the active backend."""
    return ops.cast(ops.convert_to_tensor(x), "float32")


def _float_dtype(x):
    """float32 for half-precision inputs (and integers), else the input's own float dtype."""
    dtype = keras.backend.standardize_dtype(x.dtype)
    return "float64" if dtype == "float64" else "float32"


def _shifted_threshold(z):
    """For float ``z`` (classes on the last axis): ``z - max(z)``, the sparsemax threshold
    of that shifted vector, and ``max(z)``. Working on the shifted values keeps full float precision for
    large logits: subtracting the maximum is exact for nearby values."""
    # Shift by the maximum: sparsemax is shift-invariant, and after the shift every
    # entry is <= 0, so the cumulative sums below cannot overflow.
    shift = ops.stop_gradient(ops.max(z, axis=-1, keepdims=True))
    zs = z - shift
    # Support size from the sorted values: k is in the support iff 1 + k z_(k) > Σ_{i<=k} z_(i).
    z_sorted = ops.flip(ops.sort(zs, axis=-1), axis=-1)
    k = ops.cast(ops.arange(1, ops.shape(zs)[-1] + 1), zs.dtype)
    cumsum = ops.cumsum(z_sorted, axis=-1)
    in_support = ops.cast(1.0 + k * z_sorted > cumsum, zs.dtype)
    support_size = ops.sum(in_support, axis=-1, keepdims=True)
    tau_sorted = (ops.sum(in_support * z_sorted, axis=-1, keepdims=True) - 1.0) / support_size
    # Recompute τ on the original order with the support as a constant mask:
    # same value, and its gradient is the sparsemax Jacobian's.
    mask = ops.cast(zs > ops.stop_gradient(tau_sorted), zs.dtype)
    tau = (ops.sum(mask * zs, axis=-1, keepdims=True) - 1.0) / ops.sum(mask, axis=-1, keepdims=True)
    return zs, tau, shift


def sparsemax_threshold(logits, axis=-1):
    """The threshold τ(z) of sparsemax: ``sparsemax(z) = max(z - τ(z), 0)``.

    τ is the unique value with ``Σ_j max(z_j - τ, 0) = 1``. Returned with the
    reduced axis kept (size 1), in float32 (float64 for float64 input).
    Differentiable: ``∂τ/∂z_j = 1/|S(z)|`` on the support ``S(z)``, 0 elsewhere.
    """
    z = ops.convert_to_tensor(logits)
    z = ops.moveaxis(ops.cast(z, _float_dtype(z)), axis, -1)
    _, tau, shift = _shifted_threshold(z)
    return ops.moveaxis(tau + shift, -1, axis)


def sparsemax(logits, axis=-1):
    """Sparsemax (Martins & Astudillo, ICML 2016): the Euclidean projection of ``logits``
    onto the probability simplex along ``axis``.

    Unlike softmax it assigns exactly zero to low-scoring entries. Correct for every
    support size and stable for large inputs (computed after subtracting the maximum).
    Half-precision inputs are computed in float32 and cast back.

    Args:
        logits: a tensor of real scores.
        axis: the axis that sums to one.

    Returns:
        A tensor of the shape and dtype of ``logits``, non-negative, summing to 1 along ``axis``.
    """
    z = ops.convert_to_tensor(logits)
    in_dtype = keras.backend.standardize_dtype(z.dtype)
    zs, tau, _ = _shifted_threshold(ops.moveaxis(ops.cast(z, _float_dtype(z)), axis, -1))
    out = ops.moveaxis(ops.relu(zs - tau), -1, axis)
    return out if "float" not in in_dtype else ops.cast(out, in_dtype)


def masked_logsumexp(x, mask, axis=-1):
    """``log Σ_{j: mask_j} exp(x_j)`` along ``axis``; :data:`NEG_LARGE` where the mask is empty.

    Stable for large ``|x|``, with zero (not NaN) gradient on masked-out entries and
    on empty rows.
    """
    mask = ops.cast(mask, "bool")
    masked = ops.where(mask, x, NEG_LARGE)
    peak = ops.stop_gradient(ops.max(masked, axis=axis, keepdims=True))
    total = ops.sum(ops.where(mask, ops.exp(masked - peak), 0.0), axis=axis)
    nonempty = total > 0
    safe_total = ops.where(nonempty, total, 1.0)
    return ops.where(nonempty, ops.squeeze(peak, axis) + ops.log(safe_total), NEG_LARGE)
