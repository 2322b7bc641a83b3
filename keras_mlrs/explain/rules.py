"""LRP rules: how a layer hands the relevance of its output to its inputs.

Kernel rules (:class:`Rule`: ``Z``, ``Epsilon``, ``AlphaBeta``...) are for the kernel layers
(``Conv2D``, ``Dense``), seen as ``z = x * W + b`` (a convolution or a matrix product);
``layer.transpose(s, W)`` is the product of ``s`` with the transposed ``W`` (the backward
pass of the linear map). Layer rules (:class:`LayerRule`: ``PassThrough``, ``Proportional``,
``Gradient``, ``WinnerTakeAll``) are for the layers without a kernel: sums, pooling,
reshapes. A composite (:mod:`keras_mlrs.explain.composites`) says which layer gets which.

A rule is a small frozen dataclass: its fields are its parameters, and its ``relevance``
does the arithmetic with ``keras.ops``, so every rule runs on any backend.

Shapes: ``x`` is ``[batch, ...in]``; the relevance ``R`` arriving at the layer's output
is ``[classes, batch, ...out]``, one slice per class being explained, and the result is
``[classes, batch, ...in]``.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import ops

from keras_mlrs.errors import InvalidParameterError
from keras_mlrs.explain.kernels import (
    LAZY,
    Scaled,
    Windows,
    call_layer,
    class_vjp,
    dense_relevance,
    fused,
    negative,
    positive,
)

#: added to denominators that are exactly zero (iNNvestigate's ``K.epsilon()``)
SAFE_EPSILON = 1e-7


@fused
def safe_divide(a, b):
    """``a / b`` where ``b == 0`` counts as ``1e-7`` (no relevance is created from nothing)."""
    return a / (b + SAFE_EPSILON * ops.cast(ops.equal(b, 0), b.dtype))


def divide(R, denominator):
    """``R / denominator`` for relevance held as a tensor or lazily (:class:`Windows`,
    :class:`Scaled`: then the per-patch reciprocal joins its per-patch factor, nothing per
    class is made)."""
    if isinstance(R, LAZY):
        return R.scaled(1 / denominator)
    return _quotient(R, denominator)


@fused
def _quotient(a, b):
    return a / b


def stabilise(z, epsilon: float):
    """``z + epsilon * sign(z)`` with ``sign(0) = +1``."""
    return z + epsilon * (2 * ops.cast(ops.greater_equal(z, 0), z.dtype) - 1)


class Rule:
    """Base class: ``relevance(layer, x, R) -> R_in``. ``takes_lazy``: ``R`` may come lazy
    (:class:`~keras_mlrs.explain.kernels.Windows`, :class:`~keras_mlrs.explain.kernels.Scaled`;
    else the engine makes it a tensor first). The result may be lazy."""

    takes_lazy = False

    def relevance(self, layer, x, R):  # pragma: no cover - interface
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Z(Rule):
    """LRP-0: ``R_i = x_i * sum_j w_ij R_j / z_j``, the bias a constant input neuron.

    Args:
        bias: include the bias in ``z_j`` (it then absorbs its share of relevance).
    """

    bias: bool = True

    def relevance(self, layer, x, R):
        z = layer.forward(x, layer.kernel, layer.bias if self.bias else None)
        return Scaled(layer.transpose(divide(R, z + SAFE_EPSILON * ops.cast(ops.equal(z, 0), z.dtype)), layer.kernel), x)

    takes_lazy = True


@dataclasses.dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-ε: the Z rule with ``z_j + ε·sign(z_j)`` (``sign(0) = +1``) as denominator, so
    weak or contradictory activations absorb relevance instead of amplifying noise.

    Args:
        epsilon: the stabiliser ε ≥ 0.
        bias: include the bias in ``z_j``.
    """

    epsilon: float = 1e-7
    bias: bool = True

    def __post_init__(self):
        if not self.epsilon >= 0:
            raise InvalidParameterError(f"Epsilon rule: epsilon must be >= 0, got {self.epsilon}.")

    def relevance(self, layer, x, R):
        z = layer.forward(x, layer.kernel, layer.bias if self.bias else None)
        return Scaled(layer.transpose(divide(R, stabilise(z, self.epsilon)), layer.kernel), x)

    takes_lazy = True


@dataclasses.dataclass(frozen=True)
class AlphaBeta(Rule):
    """LRP-αβ: positive contributions ``z⁺`` (``x⁺w⁺ + x⁻w⁻``) and negative ones ``z⁻``
    (``x⁺w⁻ + x⁻w⁺``) are redistributed separately, weighted ``α`` and ``-β``, with
    ``α - β = 1`` so relevance is conserved.

    Args:
        alpha: weight of the positive (activating) contributions.
        beta: weight of the negative (inhibiting) contributions.
        bias: count the bias as a contribution: its positive part joins ``z⁺`` and its
            negative part ``z⁻`` (each on the paths of its own sign).
        full_bias: instead put the *whole* bias into both ``z⁺`` and ``z⁻``, as
            iNNvestigate 2.1.2 does (use it to reproduce that library's heatmaps).
    """

    alpha: float = 1.0
    beta: float = 0.0
    bias: bool = True
    full_bias: bool = False

    def __post_init__(self):
        if self.beta < 0 or abs(self.alpha - self.beta - 1) > 1e-9:
            raise InvalidParameterError(
                f"AlphaBeta rule: need beta >= 0 and alpha - beta = 1, got alpha={self.alpha}, beta={self.beta}."
            )

    def relevance(self, layer, x, R):
        xp, xn = positive(x), negative(x)
        wp, wn = positive(layer.kernel), negative(layer.kernel)
        bp, bn = positive(layer.bias), negative(layer.bias)

        def part(w_for_xp, w_for_xn, b_same, b_other):
            """``b_same``: the bias part of this half's sign; ``b_other``: the other part."""
            z_xp, z_xn = layer.forward(xp, w_for_xp), layer.forward(xn, w_for_xn)
            if self.bias and self.full_bias:  # iNNvestigate's grouping: each weight half carries its bias part
                z = (z_xp + b_same) + (z_xn + b_other)
            elif self.bias:
                z = z_xp + z_xn + b_same
            else:
                z = z_xp + z_xn
            s = safe_divide(R, z)
            return xp * layer.transpose(s, w_for_xp) + xn * layer.transpose(s, w_for_xn)

        activator = part(wp, wn, bp, bn)
        if self.beta == 0:
            return activator if self.alpha == 1 else self.alpha * activator
        return self.alpha * activator - self.beta * part(wn, wp, bn, bp)


@dataclasses.dataclass(frozen=True)
class ZPlus(AlphaBeta):
    """LRP-z⁺: α = 1, β = 0 without bias (for non-negative inputs, only positive weights count)."""

    alpha: float = 1.0
    beta: float = 0.0
    bias: bool = False
    full_bias: bool = False


@dataclasses.dataclass(frozen=True)
class Flat(Rule):
    """Flat: relevance spread uniformly over each output's receptive field (weights and
    inputs taken as 1). Used for the first layer, where inputs are not activations."""

    def relevance(self, layer, x, R):
        return _uniform_inputs(layer, x, R, ops.ones_like(layer.kernel))


@dataclasses.dataclass(frozen=True)
class WSquare(Rule):
    """W²: relevance spread in proportion to the squared weights (inputs ignored)."""

    def relevance(self, layer, x, R):
        return _uniform_inputs(layer, x, R, ops.square(layer.kernel))


def _uniform_inputs(layer, x, R, kernel):
    z = layer.forward(ops.ones_like(x), kernel)
    return layer.transpose(safe_divide(R, z), kernel)


@dataclasses.dataclass(frozen=True)
class Gamma(Rule):
    """LRP-γ: weights ``w + γ·w⁺`` (and bias ``b + γ·b⁺``) favour positive contributions;
    γ = 0 is the Z rule, γ → ∞ tends to z⁺.

    Args:
        gamma: γ ≥ 0.
        bias: include the (modified) bias in the denominator.
    """

    gamma: float = 0.25
    bias: bool = True

    def __post_init__(self):
        if not self.gamma >= 0:
            raise InvalidParameterError(f"Gamma rule: gamma must be >= 0, got {self.gamma}.")

    def relevance(self, layer, x, R):
        kernel = layer.kernel + self.gamma * positive(layer.kernel)
        bias = layer.bias + self.gamma * positive(layer.bias) if self.bias else None
        z = layer.forward(x, kernel, bias)
        return Scaled(layer.transpose(safe_divide(R, z), kernel), x)


# -- layers without a kernel --------------------------------------------------------------------
class LayerRule:
    """Base class of the rules of layers without a kernel:
    ``relevance(layer, inputs, R) -> one relevance per input`` (``takes_lazy``: as for
    :class:`Rule`)."""

    takes_lazy = False

    def relevance(self, layer, inputs: list, R) -> list:  # pragma: no cover - interface
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class PassThrough(LayerRule):
    """Relevance passes unchanged: element-wise layers (activations, dropout) and the
    normalisation of the raw bands."""

    takes_lazy = True

    def relevance(self, layer, inputs, R):
        return [R]


@dataclasses.dataclass(frozen=True)
class Proportional(LayerRule):
    """Relevance split in proportion to each input's share of the output (the Z rule of a
    linear layer without weights): sums and average pooling."""

    def relevance(self, layer, inputs, R):
        z = call_layer(layer, inputs)
        grads = class_vjp(layer, inputs, safe_divide(R, z), primal_needed=False)
        return [x * g for x, g in zip(inputs, grads)]


@dataclasses.dataclass(frozen=True)
class Gradient(LayerRule):
    """Relevance follows the gradient: reshapes, concatenation, padding and cropping move
    values without changing them, and max pooling routes to the maximum."""

    def relevance(self, layer, inputs, R):
        return class_vjp(layer, inputs, R, primal_needed=True)


@dataclasses.dataclass(frozen=True)
class WinnerTakeAll(Gradient):
    """Max pooling: each window's relevance goes to its maximum (split evenly between tied
    maxima). When the windows tile the input this is computed directly, without repeating
    the forward values once per class (a per-patch factor of ``R``, :class:`Scaled`, joins
    the shares); otherwise as the gradient."""

    takes_lazy = True

    def relevance(self, layer, inputs, R):
        if _is_tiling_max_pool(layer) and not isinstance(R, Windows):
            return [_tiling_max_pool_relevance(layer, inputs[0], R)]
        return super().relevance(layer, inputs, dense_relevance(R))


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
    gradient, without repeating the forward values once per class: the windows are a
    reshape of the input (``[batch, h', ph, w', pw, ch]``), so the winners' shares and the
    relevance they receive are broadcasts, each computed in one pass."""
    if isinstance(R, Scaled):
        return Windows(R.T, _winner_shares(x, layer.call(x), *layer.pool_size, R.q), x.shape[1:3])
    return Windows(R, _winner_shares(x, layer.call(x), *layer.pool_size), x.shape[1:3])


@fused
def _winner_shares(x, pooled, ph: int, pw: int, q=None):
    """Each input unit's share of its window's relevance: 1 for the window's maximum,
    ``1/k`` for each of ``k`` tied maxima, 0 elsewhere (``[batch, h', ph, w', pw, ch]``);
    times the window's per-patch factor ``q`` (``[batch, h', w', ch]``) when given."""
    n, hp, wp, ch = pooled.shape
    windows = ops.reshape(x[:, : hp * ph, : wp * pw], (n, hp, ph, wp, pw, ch))
    winners = ops.cast(ops.equal(windows, pooled[:, :, None, :, None, :]), x.dtype)
    share = winners / ops.sum(winners, axis=(2, 4), keepdims=True)
    return share if q is None else share * q[:, :, None, :, None, :]


__all__ = ["AlphaBeta", "Epsilon", "Flat", "Gamma", "Gradient", "LayerRule", "PassThrough", "Proportional", "Rule",
           "WSquare", "WinnerTakeAll", "Z", "ZPlus", "safe_divide", "stabilise"]
