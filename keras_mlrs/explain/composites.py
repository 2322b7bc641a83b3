"""Composites: which rule each layer gets, and the named presets as data.

A :class:`Composite` gives the two kernel-layer kinds (``dense``, ``conv``) their rules, with
an optional rule for the *first* layers (the kernel layers that read the model's inputs,
through band normalisation, flattening or reshaping only), and a :class:`LayerMap` for the
layers without a kernel. :data:`BASE_MAP` covers sums, pooling, reshapes and element-wise
layers; extend it for layers of your own::

    layer_map = BASE_MAP.extended((MyScaling, PassThrough()))
    composite = dataclasses.replace(get("lrp.epsilon"), layer_map=layer_map)

:data:`PRESETS` is a table of composites named as iNNvestigate's analyzers, so heatmaps made
with either library can be compared name for name. A preset's parameters (``epsilon``,
``alpha``...) are fields of its rules: :func:`get` replaces them with
:func:`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses

import keras

from keras_mlrs.core.layers import BandNormalization
from keras_mlrs.errors import InvalidParameterError, Registry
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


@dataclasses.dataclass(frozen=True)
class LayerMap:
    """Rules of the layers without a kernel: ``(layer classes, rule)`` pairs, the first
    matching pair wins."""

    entries: tuple[tuple[tuple[type, ...], LayerRule], ...]

    def rule(self, layer) -> LayerRule | None:
        """The rule of ``layer``, or None when no entry covers it."""
        return next((rule for kinds, rule in self.entries if isinstance(layer, kinds)), None)

    def extended(self, *entries) -> LayerMap:
        """This map with ``entries`` (``(layer class or classes, rule)`` pairs) taking precedence."""
        new = tuple((kinds if isinstance(kinds, tuple) else (kinds,), rule) for kinds, rule in entries)
        return LayerMap(new + self.entries)

    def layer_types(self) -> list[str]:
        return sorted({kind.__name__ for kinds, _ in self.entries for kind in kinds})


#: The rules of the layers without a kernel, shared by every preset.
BASE_MAP = LayerMap((
    ((keras.layers.Add, keras.layers.AveragePooling2D, keras.layers.GlobalAveragePooling2D), Proportional()),
    ((keras.layers.MaxPooling2D,), WinnerTakeAll()),
    ((keras.layers.Flatten, keras.layers.Reshape, keras.layers.Permute, keras.layers.Concatenate,
      keras.layers.GlobalMaxPooling2D, keras.layers.ZeroPadding2D, keras.layers.Cropping2D), Gradient()),
    ((keras.layers.Dropout, keras.layers.SpatialDropout2D, keras.layers.GaussianNoise, keras.layers.Activation,
      keras.layers.ReLU, BandNormalization), PassThrough()),
))


@dataclasses.dataclass(frozen=True)
class Composite:
    """Rules per layer: ``dense`` for ``Dense``, ``conv`` for ``Conv2D``, ``first`` (when set)
    for the kernel layers that read the model's inputs, ``layer_map`` for the others."""

    dense: Rule
    conv: Rule
    first: Rule | None = None
    layer_map: LayerMap = BASE_MAP

    def rule(self, kind: str, first: bool) -> Rule:
        """The rule of a kernel layer of ``kind`` (``"dense"`` or ``"conv"``)."""
        if first and self.first is not None:
            return self.first
        return self.dense if kind == "dense" else self.conv

    def rules(self) -> list[Rule]:
        """The kernel rules, each once."""
        return list(dict.fromkeys(r for r in (self.dense, self.conv, self.first) if r is not None))


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named composite, its description, and which rule fields are its parameters."""

    composite: Composite
    description: str
    parameters: tuple[str, ...] = ()

    def defaults(self) -> dict:
        """The parameters with their values in the preset."""
        values = {}
        for rule in self.composite.rules():
            for field in dataclasses.fields(rule):
                if field.name in self.parameters:
                    values.setdefault(field.name, getattr(rule, field.name))
        return {name: values[name] for name in self.parameters}


def _same(rule: Rule) -> Composite:
    return Composite(dense=rule, conv=rule)


_PRESET_A = Composite(dense=Epsilon(0.1), conv=AlphaBeta(1.0, 0.0))
_PRESET_B = Composite(dense=Epsilon(0.1), conv=AlphaBeta(2.0, 1.0))

#: The presets, by name (iNNvestigate's analyzer names).
PRESETS: Registry[Preset] = Registry("LRP preset", parameters=Preset.defaults)
for _name, _preset in {
    "lrp.z": Preset(_same(Z()), "Z rule everywhere (LRP-0): exact decomposition, noisy on deep nets.", ("bias",)),
    "lrp.epsilon": Preset(_same(Epsilon(1e-7)), "ε rule everywhere (default ε = 1e-7): the Z rule, stabilised.",
                          ("epsilon", "bias")),
    "lrp.alpha_beta": Preset(_same(AlphaBeta(1.0, 0.0)), "αβ rule everywhere with chosen α, β (α - β = 1).",
                             ("alpha", "beta", "bias", "full_bias")),
    "lrp.alpha_1_beta_0": Preset(_same(AlphaBeta(1.0, 0.0)), "α = 1, β = 0 everywhere: positive evidence only.",
                                 ("bias", "full_bias")),
    "lrp.alpha_2_beta_1": Preset(_same(AlphaBeta(2.0, 1.0)),
                                 "α = 2, β = 1 everywhere: positive and negative evidence.", ("bias", "full_bias")),
    "lrp.z_plus": Preset(_same(ZPlus()), "z⁺ everywhere: α = 1, β = 0 without bias."),
    "lrp.flat": Preset(_same(Flat()), "Flat rule everywhere: relevance spread over receptive fields."),
    "lrp.w_square": Preset(_same(WSquare()), "W² rule everywhere."),
    "lrp.gamma": Preset(_same(Gamma(0.25)), "γ rule everywhere (default γ = 0.25).", ("gamma", "bias")),
    "lrp.sequential_preset_a": Preset(_PRESET_A, "ε = 0.1 on Dense, α = 1, β = 0 on Conv2D.", ("epsilon", "full_bias")),
    "lrp.sequential_preset_b": Preset(_PRESET_B, "ε = 0.1 on Dense, α = 2, β = 1 on Conv2D.", ("epsilon", "full_bias")),
    "lrp.sequential_preset_a_flat": Preset(dataclasses.replace(_PRESET_A, first=Flat()),
                                           "Preset A with the Flat rule on the first layers.", ("epsilon", "full_bias")),
    "lrp.sequential_preset_b_flat": Preset(dataclasses.replace(_PRESET_B, first=Flat()),
                                           "Preset B with the Flat rule on the first layers.", ("epsilon", "full_bias")),
}.items():
    PRESETS.add(_name, _preset)


def names() -> list[str]:
    """The preset names accepted by :func:`get`."""
    return PRESETS.names()


def parameters(preset: str) -> dict:
    """The parameters of ``preset`` with their values."""
    return PRESETS.parameters(preset)


def _like(current, name: str, value):
    """``value`` for the rule field ``name`` whose preset value is ``current``: a number
    where the preset has one, refused in one line otherwise."""
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise InvalidParameterError(f"LRP parameter {name} must be true or false, got {value!r}.")
        return value
    if isinstance(current, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidParameterError(f"LRP parameter {name} must be a number, got {value!r}.")
        return type(current)(value) if isinstance(current, float) else value
    return value


def get(preset: str | Composite, **params) -> Composite:
    """The composite of a named preset with ``params`` (see :func:`parameters`) replacing
    the fields of its rules; a :class:`Composite` is returned as is."""
    if isinstance(preset, Composite):
        if params:
            raise InvalidParameterError("rule parameters go into the rules of a custom Composite, not to lrp().")
        return preset
    composite = PRESETS.check(preset, params).composite

    def replaced(rule):
        if rule is None:
            return None
        own = {f.name for f in dataclasses.fields(rule)}
        return dataclasses.replace(rule, **{k: _like(getattr(rule, k), k, v) for k, v in params.items() if k in own})

    return dataclasses.replace(composite, dense=replaced(composite.dense), conv=replaced(composite.conv),
                               first=replaced(composite.first))
