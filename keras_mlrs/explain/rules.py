"""LRP rules: how a kernel layer (``Conv2D``, ``Dense``) hands relevance to its inputs.

A rule is a small frozen dataclass: its fields are its parameters, and
:meth:`Rule.relevance` does the arithmetic with ``keras.ops``, so every rule runs on any
backend. The layer is seen as ``z = x * W + b`` (a convolution or a matrix product), and
``layer.transpose(s, W)`` is the product of ``s`` with the transposed ``W`` (the backward
pass of the linear map).

Shapes: ``x`` is ``[batch, ...in]``; the relevance ``R`` arriving at the layer's output
is ``[classes, batch, ...out]``, one slice per class being explained, and the result is
``[classes, batch, ...in]``.
"""

from __future__ import annotations

import dataclasses

from keras import ops

from keras_mlrs.errors import InvalidParameterError

#: added to denominators that are exactly zero (iNNvestigate's ``K.epsilon()``)
SAFE_EPSILON = 1e-7


def safe_divide(a, b):
    """``a / b`` where ``b == 0`` counts as ``1e-7`` (no relevance is created from nothing)."""
    return a / (b + SAFE_EPSILON * ops.cast(ops.equal(b, 0), b.dtype))


def stabilise(z, epsilon: float):
    """``z + epsilon * sign(z)`` with ``sign(0) = +1``."""
    return z + epsilon * (2 * ops.cast(ops.greater_equal(z, 0), z.dtype) - 1)


class Rule:
    """Base class: ``relevance(layer, x, R) -> R_in``."""

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
        return x * layer.transpose(safe_divide(R, z), layer.kernel)


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
        return x * layer.transpose(R / stabilise(z, self.epsilon), layer.kernel)


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
        xp, xn = ops.maximum(x, 0), ops.minimum(x, 0)
        wp, wn = ops.maximum(layer.kernel, 0), ops.minimum(layer.kernel, 0)
        bp, bn = ops.maximum(layer.bias, 0), ops.minimum(layer.bias, 0)

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
        kernel = layer.kernel + self.gamma * ops.maximum(layer.kernel, 0)
        bias = layer.bias + self.gamma * ops.maximum(layer.bias, 0) if self.bias else None
        z = layer.forward(x, kernel, bias)
        return x * layer.transpose(safe_divide(R, z), kernel)


__all__ = ["AlphaBeta", "Epsilon", "Flat", "Gamma", "Rule", "WSquare", "Z", "ZPlus", "safe_divide", "stabilise"]
