"""Models: every model takes BigEarthNet inputs as uint16 and returns logits.

Two input layouts exist (see :func:`keras_mlrs.data.load`): ``"groups"``, a dict of the
10 m, 20 m and 60 m band groups (the K-Branch CNN), and ``"stacked"``, one 12-band
tensor (standard backbones). :func:`input_layout` reads a model's layout off its inputs,
so a saved model tells the loader how to feed it.
"""

import inspect

from keras_mlrs.data.bands import GROUP_SIZES, GROUPS, STACKED_BANDS
from keras_mlrs.data.nomenclature import NUM_CLASSES
from keras_mlrs.errors import InvalidParameterError, MlrsError, UnknownNameError, did_you_mean
from keras_mlrs.models.backbones import resnet50
from keras_mlrs.models.kbranch import kbranch_cnn

#: Registered architectures: name -> builder (each takes ``num_classes`` and keywords).
BUILDERS = {"kbranch": kbranch_cnn, "resnet50": resnet50}


def names() -> list[str]:
    """Names accepted by :func:`get` (and ``mlrs train --model``)."""
    return list(BUILDERS)


def parameters(name: str) -> dict:
    """The keyword parameters of a registered architecture, with their defaults."""
    builder = _builder(name)
    return {
        p.name: p.default
        for p in inspect.signature(builder).parameters.values()
        if p.name not in ("num_classes", "name") and p.default is not inspect.Parameter.empty
    }


def _builder(name: str):
    if name not in BUILDERS:
        raise UnknownNameError(f"unknown model '{name}'; choose one of {', '.join(BUILDERS)}.{did_you_mean(name, BUILDERS)}")
    return BUILDERS[name]


def get(name: str, **params):
    """Build the registered architecture ``name`` with ``params`` (see :func:`parameters`)."""
    builder = _builder(name)
    allowed = parameters(name)
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise InvalidParameterError(
            f"model '{name}' has no parameter {', '.join(unknown)}; its parameters: {', '.join(allowed)}."
        )
    try:
        return builder(**params)
    except (TypeError, ValueError) as err:
        if isinstance(err, MlrsError):
            raise
        raise InvalidParameterError(f"cannot build model '{name}' with {params}: {err}") from None


def input_layout(model) -> str:
    """``"groups"`` or ``"stacked"``: how ``model`` takes BigEarthNet bands. Raises
    :class:`MlrsError` when the model fits neither or does not output the 19 classes."""
    out = model.outputs[0].shape if getattr(model, "outputs", None) else None
    if out is None or out[-1] != NUM_CLASSES:
        raise MlrsError(
            f"model '{model.name}' outputs {out[-1] if out is not None else 'no'} classes but the data has "
            f"{NUM_CLASSES} (BigEarthNet-19); use a model trained on BigEarthNet-19."
        )
    shapes = {t.name.split(":")[0]: tuple(t.shape[1:]) for t in model.inputs}
    groups = {g: (GROUP_SIZES[g], GROUP_SIZES[g], len(b)) for g, b in GROUPS.items()}
    if shapes == groups:
        return "groups"
    stacked = (GROUP_SIZES["b10m"], GROUP_SIZES["b10m"], len(STACKED_BANDS))
    if len(shapes) == 1 and next(iter(shapes.values())) == stacked:
        return "stacked"
    raise MlrsError(
        f"model '{model.name}' takes inputs {shapes}, which match neither BigEarthNet layout: "
        f"band groups {groups} or one stacked tensor {stacked}."
    )


__all__ = ["BUILDERS", "get", "input_layout", "kbranch_cnn", "names", "parameters", "resnet50"]
