"""JAX without TensorFlow: on a JAX GPU machine TensorFlow is often absent. With its import
blocked in the process, the commands run end to end under JAX: prepare (TFRecord framing of
its own), train on the numpy pipeline (and its end-of-training evaluation), evaluate, predict,
explain, calibrate, compare and push, and the exported model loads back, from its folder and
as hf://."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers import NO_TENSORFLOW, TINY_MODEL_CODE


@pytest.mark.backend_free  # the commands run under JAX in their own process; this one reads their files
def test_the_commands_run_under_jax_with_tensorflow_blocked(tmp_path):
    hub = tmp_path / "hub"  # the Hugging Face cache, seeded with the pushed model before it is pulled
    script = f"import os; os.environ.update(HF_HUB_CACHE={str(hub)!r}, HF_HUB_OFFLINE='1')\n" + NO_TENSORFLOW + \
        TINY_MODEL_CODE + textwrap.dedent(f"""
        import json
        sys.path.insert(0, {str(Path(__file__).parents[1])!r})
        from helpers import seed_hub_cache
        from typer.testing import CliRunner
        from keras_mlrs import data
        from keras_mlrs.cli.main import app
        w = {str(tmp_path)!r}
        patch = str(sorted(p for p in data.sample_path().iterdir() if p.is_dir())[0])
        commands = [
            ["data", "prepare", str(data.sample_path()), "--out", w + "/shards", "--split", "random"],
            ["train", "--data", w + "/shards", "--loss", "bce", "--epochs", "1", "--batch-size", "2",
             "--model", "tiny", "--run-dir", w + "/run"],
            ["evaluate", w + "/run", "--split", "validation", "--json", w + "/report.json"],
            ["predict", w + "/run", patch],
            ["explain", patch, "--model", w + "/run", "-c", "0", "--out", w + "/explained"],
            ["calibrate", w + "/run"],
            ["evaluate", w + "/run", "--split", "validation", "--thresholds", "calibrated", "--json", w + "/cal.json"],
            ["compare", w + "/run", "--split", "validation", "--resamples", "50", "--out", w + "/comparison"],
            ["push", w + "/run", "--repo", "o/m", "--to", w + "/export"],
            ["predict", w + "/export", patch],
            ["predict", "hf://o/m", patch],
        ]
        outputs = []
        for args in commands:
            if args[1] == "hf://o/m":
                seed_hub_cache(w + "/export", "o/m", {str(hub)!r})
            result = CliRunner().invoke(app, args)
            if result.exit_code != 0:
                sys.exit(f"mlrs {{' '.join(args)}} failed: {{result.output[-2000:]}} {{result.exception!r}}")
            outputs.append(result.output)
        import keras
        assert keras.backend.backend() == "jax" and sys.modules["tensorflow"] is None
        print(json.dumps(outputs))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "KERAS_BACKEND": "jax", "COLUMNS": "200"})
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    outputs = json.loads(done.stdout.strip().splitlines()[-1])
    assert "writes no TensorBoard logs" in outputs[1] and not (tmp_path / "run" / "tensorboard").exists()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())  # the end-of-training evaluation
    assert 0.0 <= metrics["samples"]["f1"] <= 1.0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["decision"]["name"] == "sigmoid" and report["patches"] == 1
    assert json.loads((tmp_path / "cal.json").read_text())["decision"]["name"] == "calibrated"
    comparison = json.loads((tmp_path / "comparison" / "report.json").read_text())
    assert comparison["uncertainty"]["intervals"]["run"]["f1_samples"]["value"] == pytest.approx(report["samples"]["f1"], abs=1e-6)
    relevance = np.load(next((tmp_path / "explained").glob("*_lrp.npy")))
    assert np.isfinite(relevance).all() and np.abs(relevance).sum() > 0
    assert outputs[3].splitlines() and outputs[3] == outputs[-2]  # the export predicts as the run does
    assert outputs[-1] == outputs[3]  # and so does the model pulled from the (offline) Hub
