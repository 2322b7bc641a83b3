"""What ``mlrs doctor`` reports: the software and devices keras-mlrs runs on, in the form a
user pastes into a bug report."""

import importlib.util
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
    """Compile and run a tiny function with XLA on the default device."""
    try:
        import tensorflow as tf  # reported, not required: doctor says what is missing

        value = tf.function(lambda x: tf.reduce_sum(x * 2.0), jit_compile=True)(tf.ones((4,)))
        return "yes" if float(value) == 8.0 else f"wrong result {float(value)}"
    except Exception as err:  # noqa: BLE001 - reported, not raised
        return f"no ({type(err).__name__}: {str(err).splitlines()[0][:120]})"


def _innvestigate() -> str:
    if importlib.util.find_spec("innvestigate") is None:
        return "not installed (optional; see docs/explanations.md)"
    if importlib.util.find_spec("tf_keras") is None:
        return "installed, but tf-keras is missing (pip install tf-keras==2.21.0)"
    return f"installed ({_version('innvestigate')}, tf-keras {_version('tf-keras')}); runs in its own process"


def report() -> dict:
    """Versions, devices, XLA, the iNNvestigate engine and the Hugging Face cache."""
    import tensorflow as tf  # reported, not required: doctor says what is missing

    devices = describe_devices()
    return {
        "keras-mlrs": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "keras": keras.__version__,
        "keras backend": keras.backend.backend(),
        "tensorflow": tf.__version__,
        "tensorflow built with CUDA": str(tf.test.is_built_with_cuda()),
        "jax": _version("jax") or "not installed",
        "numpy": _version("numpy"),
        "GPUs": ", ".join(devices["gpus"]) or "none visible",
        "CPU cores": str(os.cpu_count()),
        "XLA (jit_compile) works": _xla_works(),
        "iNNvestigate engine": _innvestigate(),
        "huggingface_hub": _version("huggingface-hub"),
        "Hugging Face cache": str(constants.HF_HUB_CACHE),
        "Hugging Face offline (HF_HUB_OFFLINE)": "yes" if constants.HF_HUB_OFFLINE else "no",
    }
