"""Models: every model takes BigEarthNet inputs as uint16 and returns logits.

:data:`MODELS` is the registry of architectures (``mlrs train --model``); :func:`get` builds
one by name. :mod:`~keras_mlrs.models.inputs` says how a model takes patches.
"""

from keras_mlrs.errors import InvalidParameterError, MlrsError, Registry, keyword_defaults
from keras_mlrs.models.backbones import resnet50
from keras_mlrs.models.inputs import input_layout, patch_inputs
from keras_mlrs.models.kbranch import kbranch_cnn

#: Registered architectures: name -> builder (each takes ``num_classes`` and keywords).
MODELS = Registry("model", parameters=lambda builder: keyword_defaults(builder, skip=("num_classes", "name")))
MODELS.add("kbranch", kbranch_cnn)
MODELS.add("resnet50", resnet50)


def names() -> list[str]:
    """Names accepted by :func:`get`."""
    return MODELS.names()


def parameters(name: str) -> dict:
    """The keyword parameters of a registered architecture, with their defaults."""
    return MODELS.parameters(name)


def get(name: str, **params):
    """Build the registered architecture ``name`` with ``params`` (see :func:`parameters`)."""
    builder = MODELS.check(name, params)
    try:
        return builder(**params)
    except (TypeError, ValueError) as err:
        if isinstance(err, MlrsError):
            raise
        raise InvalidParameterError(f"cannot build model '{name}' with {params}: {err}") from None


__all__ = ["MODELS", "get", "input_layout", "kbranch_cnn", "names", "parameters", "patch_inputs", "resnet50"]
