"""Composites: which rule each kernel layer gets, and the named presets.

A :class:`Composite` maps the two kernel-layer kinds (``dense``, ``conv``) to rules, with
an optional rule for the *first* layers: the kernel layers that read the model's inputs
(through band normalisation, flattening or reshaping only). The presets carry
iNNvestigate's analyzer names and meanings, so heatmaps made with either library can be
compared name for name.
"""

from __future__ import annotations

import dataclasses
import inspect

from keras_mlrs.errors import InvalidParameterError, UnknownNameError, did_you_mean
from keras_mlrs.explain.rules import AlphaBeta, Epsilon, Flat, Gamma, Rule, WSquare, Z, ZPlus


@dataclasses.dataclass(frozen=True)
class Composite:
    """Rules per layer kind: ``dense`` for ``Dense``, ``conv`` for ``Conv2D``, and
    ``first`` (when set) for the kernel layers that read the model's inputs."""

    dense: Rule
    conv: Rule
    first: Rule | None = None

    def rule(self, kind: str, first: bool) -> Rule:
        if first and self.first is not None:
            return self.first
        return self.dense if kind == "dense" else self.conv


def _same(rule: Rule) -> Composite:
    return Composite(dense=rule, conv=rule)


def _z(bias: bool = True):
    return _same(Z(bias=bias))


def _epsilon(epsilon: float = 1e-7, bias: bool = True):
    return _same(Epsilon(epsilon=epsilon, bias=bias))


def _alpha_beta(alpha: float = 1.0, beta: float = 0.0, bias: bool = True, full_bias: bool = False):
    return _same(AlphaBeta(alpha, beta, bias=bias, full_bias=full_bias))


def _alpha_1_beta_0(bias: bool = True, full_bias: bool = False):
    return _alpha_beta(1.0, 0.0, bias, full_bias)


def _alpha_2_beta_1(bias: bool = True, full_bias: bool = False):
    return _alpha_beta(2.0, 1.0, bias, full_bias)


def _z_plus():
    return _same(ZPlus())


def _flat():
    return _same(Flat())


def _w_square():
    return _same(WSquare())


def _gamma(gamma: float = 0.25, bias: bool = True):
    return _same(Gamma(gamma=gamma, bias=bias))


def _preset_a(epsilon: float = 0.1, full_bias: bool = False):
    return Composite(dense=Epsilon(epsilon), conv=AlphaBeta(1.0, 0.0, full_bias=full_bias))


def _preset_b(epsilon: float = 0.1, full_bias: bool = False):
    return Composite(dense=Epsilon(epsilon), conv=AlphaBeta(2.0, 1.0, full_bias=full_bias))


def _preset_a_flat(epsilon: float = 0.1, full_bias: bool = False):
    return dataclasses.replace(_preset_a(epsilon, full_bias), first=Flat())


def _preset_b_flat(epsilon: float = 0.1, full_bias: bool = False):
    return dataclasses.replace(_preset_b(epsilon, full_bias), first=Flat())


#: preset name -> (builder, one-line description). Builders take the preset's parameters.
PRESETS = {
    "lrp.z": (_z, "Z rule everywhere (LRP-0): exact decomposition, noisy on deep nets."),
    "lrp.epsilon": (_epsilon, "ε rule everywhere (default ε = 1e-7): the Z rule, stabilised."),
    "lrp.alpha_beta": (_alpha_beta, "αβ rule everywhere with chosen α, β (α - β = 1)."),
    "lrp.alpha_1_beta_0": (_alpha_1_beta_0, "α = 1, β = 0 everywhere: positive evidence only."),
    "lrp.alpha_2_beta_1": (_alpha_2_beta_1, "α = 2, β = 1 everywhere: positive and negative evidence."),
    "lrp.z_plus": (_z_plus, "z⁺ everywhere: α = 1, β = 0 without bias."),
    "lrp.flat": (_flat, "Flat rule everywhere: relevance spread over receptive fields."),
    "lrp.w_square": (_w_square, "W² rule everywhere."),
    "lrp.gamma": (_gamma, "γ rule everywhere (default γ = 0.25)."),
    "lrp.sequential_preset_a": (_preset_a, "ε = 0.1 on Dense, α = 1, β = 0 on Conv2D."),
    "lrp.sequential_preset_b": (_preset_b, "ε = 0.1 on Dense, α = 2, β = 1 on Conv2D."),
    "lrp.sequential_preset_a_flat": (_preset_a_flat, "Preset A with the Flat rule on the first layers."),
    "lrp.sequential_preset_b_flat": (_preset_b_flat, "Preset B with the Flat rule on the first layers."),
}


def names() -> list[str]:
    """The preset names accepted by :func:`get` (and ``mlrs explain --preset``)."""
    return list(PRESETS)


def parameters(preset: str) -> dict:
    """The parameters of ``preset`` with their defaults."""
    return {p.name: p.default for p in inspect.signature(_builder(preset)).parameters.values()}


def _builder(preset: str):
    if preset not in PRESETS:
        raise UnknownNameError(
            f"unknown LRP preset '{preset}'; choose one of {', '.join(PRESETS)}.{did_you_mean(preset, PRESETS)}"
        )
    return PRESETS[preset][0]


def get(preset: str | Composite, **params) -> Composite:
    """The composite of a named preset with ``params`` (see :func:`parameters`); a
    :class:`Composite` is returned as is."""
    if isinstance(preset, Composite):
        if params:
            raise InvalidParameterError("rule parameters go into the rules of a custom Composite, not to lrp().")
        return preset
    allowed = parameters(preset)
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise InvalidParameterError(
            f"preset '{preset}' has no parameter {', '.join(unknown)}; "
            f"its parameters: {', '.join(allowed) or 'none'}."
        )
    return _builder(preset)(**params)
