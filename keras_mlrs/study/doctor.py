"""What ``mlrs doctor`` reports: the software and devices keras-mlrs runs on, in the form a
user pastes into a bug report."""

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

import keras
from huggingface_hub import constants

from keras_mlrs.runs import describe_devices
from keras_mlrs.version import __version__


def _version(module: str) -> str | None:
    try:
        return version(module)
    except PackageNotFoundError:
        return None


def _xla_works() -> str:
    """Compile and run a tiny function with XLA on the default device, through the backend's
    compiler (``tf.function(jit_compile=True)`` or ``jax.jit``; PyTorch uses none)."""
    try:
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf  # the backend in use

            value = tf.function(lambda x: tf.reduce_sum(x * 2.0), jit_compile=True)(tf.ones((4,)))
        elif keras.backend.backend() == "jax":
            import jax  # the backend in use

            value = jax.jit(lambda x: (x * 2.0).sum())(jax.numpy.ones((4,)))
        else:
            return f"not used by the {keras.backend.backend()} backend"
        return "yes" if float(value) == 8.0 else f"wrong result {float(value)}"
    except Exception as err:  # noqa: BLE001 - reported, not raised
        return f"no ({type(err).__name__}: {str(err).splitlines()[0][:120]})"


def _torch(gpus: list) -> str:
    """PyTorch's version and, when it is the backend, what it computes on (``gpus``: the
    backend's GPUs, from :func:`keras_mlrs.runs.describe_devices`)."""
    installed = _version("torch")
    if installed is None:
        return "not installed"
    if keras.backend.backend() != "torch":
        return installed
    import torch  # the backend in use

    return f"{installed} (CUDA {torch.version.cuda}, {len(gpus)} GPU(s))" if gpus else f"{installed} (CPU only)"


def _innvestigate() -> str:
    if _version("innvestigate") is None:  # installed packages' metadata: nothing is imported
        return "not installed (optional; see docs/explanations.md)"
    if _version("tf-keras") is None:
        return "installed, but tf-keras is missing (pip install tf-keras==2.21.0)"
    return f"installed ({_version('innvestigate')}, tf-keras {_version('tf-keras')}); runs in its own process"


def report() -> dict:
    """Versions, devices, XLA, the iNNvestigate engine and the Hugging Face cache. Only the
    backend in use is imported; the other frameworks are reported by their installed version."""
    devices = describe_devices()
    tensorflow = _version("tensorflow") or _version("tensorflow-cpu")
    cuda = "not installed" if tensorflow is None else f"not checked (the backend is {keras.backend.backend()})"
    if tensorflow is not None and keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # the backend in use

        tensorflow, cuda = tf.__version__, str(tf.test.is_built_with_cuda())
    return {
        "keras-mlrs": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "keras": keras.__version__,
        "keras backend": keras.backend.backend(),
        "tensorflow": tensorflow or "not installed",
        "tensorflow built with CUDA": cuda,
        "jax": _version("jax") or "not installed",
        "torch": _torch(devices["gpus"]),
        "numpy": _version("numpy"),
        "GPUs": ", ".join(devices["gpus"]) or "none visible",
        "CPU cores": str(os.cpu_count()),
        "XLA (jit_compile) works": _xla_works(),
        "iNNvestigate engine": _innvestigate(),
        "huggingface_hub": _version("huggingface-hub"),
        "Hugging Face cache": str(constants.HF_HUB_CACHE),
        "Hugging Face offline (HF_HUB_OFFLINE)": "yes" if constants.HF_HUB_OFFLINE else "no",
    }
