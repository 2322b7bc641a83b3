"""`mlrs doctor`: what a bug report needs, each value as the environment has it."""

import importlib.util
import json
import os
import subprocess
import sys
from importlib.metadata import version

import huggingface_hub
import keras
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from helpers import MLRS, one_line_error
from keras_mlrs.cli.main import app


@pytest.mark.graph  # its XLA check compiles a tf.function
def test_doctor_reports_what_a_bug_report_needs():
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["keras-mlrs"] == version("keras-mlrs")
    assert (info["keras"], info["keras backend"], info["tensorflow"]) == (
        keras.__version__, keras.backend.backend(), tf.__version__)
    assert info["XLA (jit_compile) works"] == "yes"
    assert info["torch"] == (version("torch") if importlib.util.find_spec("torch") else "not installed")
    gpus = tf.config.list_physical_devices("GPU")
    assert (info["GPUs"] == "none visible") == (not gpus)
    assert info["CPU cores"] == str(os.cpu_count())
    assert info["iNNvestigate engine"].startswith("installed (2.1.2")  # the test command installs it
    assert info["Hugging Face cache"] == str(huggingface_hub.constants.HF_HUB_CACHE)
    assert info["Hugging Face offline (HF_HUB_OFFLINE)"] == ("yes" if huggingface_hub.constants.HF_HUB_OFFLINE else "no")


@pytest.mark.parametrize("backend, blocked, fragments", [
    ("torch", "torch", ["the Keras backend torch (KERAS_BACKEND) is not installed", "`pip install torch`"]),
    ("jaxx", None, ["KERAS_BACKEND='jaxx' is not a backend keras-mlrs runs on", "tensorflow, jax or torch"]),
])
def test_a_backend_that_is_missing_or_unknown_is_one_line(backend, blocked, fragments, tmp_path):
    hide = f"import sys; sys.modules[{blocked!r}] = None; " if blocked else ""  # as if not installed
    done = subprocess.run([sys.executable, "-c", hide + MLRS, "predict", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": backend})
    one_line_error(done, *fragments)
