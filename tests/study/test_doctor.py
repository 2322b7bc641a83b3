"""`mlrs doctor`: what a bug report needs, each value as the environment has it."""

import json
import os
from importlib.metadata import version

import huggingface_hub
import keras
import tensorflow as tf
from typer.testing import CliRunner

from keras_mlrs.cli.main import app


def test_doctor_reports_what_a_bug_report_needs():
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["keras-mlrs"] == version("keras-mlrs")
    assert (info["keras"], info["keras backend"], info["tensorflow"]) == (
        keras.__version__, keras.backend.backend(), tf.__version__)
    assert info["XLA (jit_compile) works"] == "yes"
    gpus = tf.config.list_physical_devices("GPU")
    assert (info["GPUs"] == "none visible") == (not gpus)
    assert info["CPU cores"] == str(os.cpu_count())
    assert info["iNNvestigate engine"].startswith("installed (2.1.2")  # the test command installs it
    assert info["Hugging Face cache"] == str(huggingface_hub.constants.HF_HUB_CACHE)
    assert info["Hugging Face offline (HF_HUB_OFFLINE)"] == ("yes" if huggingface_hub.constants.HF_HUB_OFFLINE else "no")
