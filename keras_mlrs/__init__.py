"""keras-mlrs: multi-label remote-sensing image classification with Keras 3.

Importing the package registers every loss, metric, layer and decision rule with
Keras' serialization, so ``keras.saving.load_model`` restores models that use them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("keras-mlrs")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from keras_mlrs import data, decision, layers, losses, metrics, models, ops  # noqa: E402
from keras_mlrs.errors import MlrsError  # noqa: E402


def from_pretrained(source: str, revision: str | None = None, compile: bool = True):
    """A published keras-mlrs model from the Hugging Face Hub (``"ORG/NAME"`` or
    ``"hf://ORG/NAME"``) or an exported folder; see :func:`keras_mlrs.hub.from_pretrained`."""
    from keras_mlrs import hub

    return hub.from_pretrained(source, revision=revision, compile=compile)


__all__ = ["MlrsError", "__version__", "from_pretrained", "data", "decision", "layers", "losses", "metrics", "models", "ops"]
