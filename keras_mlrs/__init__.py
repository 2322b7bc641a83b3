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

__all__ = ["MlrsError", "__version__", "data", "decision", "layers", "losses", "metrics", "models", "ops"]
