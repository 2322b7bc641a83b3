"""keras-mlrs: multi-label remote-sensing image classification with Keras 3.

The package is layered; each layer imports only those below it::

    errors, version    user errors and the registry helper; the installed version
    files              atomic outputs, owned output folders, figures
    bigearthnet        BigEarthNet-19 as data: nomenclature, bands, statistics, split lists
    core               ops, layers, losses, decision rules, metrics, optimizers (keras.ops only)
    data               patches, sources on disk, shards, the loader
    models             the K-Branch CNN, backbones, the model registry, model inputs
    explain            LRP: rules, composites, canonizers, engine, patch heatmaps
    runs               training runs: configuration, run directory, training, evaluation
    hub                the Hugging Face Hub and the zoo's recipes
    study              the comparison report, the demo, doctor, benchmarks
    cli                the ``mlrs`` command

Importing the package is cheap: its modules load on first use, and the most used ones are
attributes here (``keras_mlrs.losses`` is :mod:`keras_mlrs.core.losses`, and so on for
``metrics``, ``layers``, ``decision``, ``ops`` and ``optimizers``). Its Keras objects
(losses, metrics, layers, decision rules, the optimizer) are registered with Keras' serialization as soon as Keras is
loaded, before or after ``import keras_mlrs``, so ``keras.saving.load_model`` restores
models that use them.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys

from keras_mlrs.errors import MlrsError
from keras_mlrs.version import __version__

#: Attribute -> the module it names.
_MODULES = {
    "decision": "keras_mlrs.core.decision",
    "layers": "keras_mlrs.core.layers",
    "losses": "keras_mlrs.core.losses",
    "metrics": "keras_mlrs.core.metrics",
    "ops": "keras_mlrs.core.ops",
    "optimizers": "keras_mlrs.core.optimizers",
    **{name: f"keras_mlrs.{name}" for name in ("bigearthnet", "core", "data", "explain", "hub", "models", "runs",
                                               "study")},
}


def __getattr__(name):
    if name in _MODULES:
        module = importlib.import_module(_MODULES[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'keras_mlrs' has no attribute '{name}'")


def __dir__():
    return sorted({*globals(), *_MODULES})


def from_pretrained(source: str, revision: str | None = None, compile: bool = True):
    """A published keras-mlrs model from the Hugging Face Hub (``"ORG/NAME"`` or
    ``"hf://ORG/NAME"``) or an exported folder; see :func:`keras_mlrs.hub.from_pretrained`."""
    from keras_mlrs.hub import from_pretrained as load  # the Hub layer loads on first use

    return load(source, revision=revision, compile=compile)


#: whether the user set TensorFlow's C++ log level before keras-mlrs was imported
_USER_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ


def _quietly(load):
    """``load()`` with the process's stderr closed, unless the user set TensorFlow's log level.

    TensorFlow 2.21 prints C++ start-up lines (oneDNN, CPU features) through absl while it is
    imported, whatever ``TF_CPP_MIN_LOG_LEVEL`` says; a library should not. Python errors of the
    import still propagate as exceptions. A user who set ``TF_CPP_MIN_LOG_LEVEL`` before importing
    keras-mlrs sees everything TensorFlow prints at that level (the variable is read then: JAX
    and the ``mlrs`` command set it later for their own reasons)."""
    if _USER_LOG_LEVEL:
        return load()
    try:
        sys.stderr.flush()
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no file descriptor 2 to close (an embedded interpreter)
        return load()
    os.dup2(null, 2)
    try:
        return load()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class _QuietKeras(importlib.abc.MetaPathFinder):
    """Imports TensorFlow and Keras quietly (see :func:`_quietly`) and imports
    :mod:`keras_mlrs.core` (which registers keras-mlrs' objects with Keras' serialization) right
    after Keras itself, so that ``import keras_mlrs`` loads neither.

    It stays on ``sys.meta_path``: TensorFlow asks for Keras' spec without importing it, and
    under JAX TensorFlow may be imported after Keras."""

    WATCHED = ("keras", "tensorflow")

    def __init__(self):
        self.finding = False

    def find_spec(self, name, path=None, target=None):
        if name not in self.WATCHED or self.finding:
            return None
        self.finding = True  # the module's own spec, from the finders after this one
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _Quiet(spec.loader, register=name == "keras")
        return spec


class _Quiet(importlib.abc.Loader):
    """A module's own loader, run quietly, followed by the import of :mod:`keras_mlrs.core` for Keras."""

    def __init__(self, loader, register: bool):
        self.loader, self.register = loader, register

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        _quietly(lambda: self.loader.exec_module(module))
        if self.register:
            importlib.import_module("keras_mlrs.core")

    def __getattr__(self, name):  # the rest of the loader's interface (resources, source...)
        return getattr(self.loader, name)


if "keras" in sys.modules:
    importlib.import_module("keras_mlrs.core")
elif not any(isinstance(finder, _QuietKeras) for finder in sys.meta_path):
    sys.meta_path.insert(0, _QuietKeras())


__all__ = ["MlrsError", "__version__", "from_pretrained", *_MODULES]
