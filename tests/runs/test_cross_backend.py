"""Saved runs move between the three Keras backends. A run trained under PyTorch (with
TensorFlow blocked in its process, and Keras' own RMSprop, whose PyTorch subclass Keras
would name in the file) evaluates, predicts, explains and pushes the same under TensorFlow
and JAX; under PyTorch it calibrates, `mlrs doctor` reports PyTorch, and an interrupted
copy resumes exactly; runs trained under
TensorFlow and JAX do the same under PyTorch. An interrupted run's resume under another
backend is refused in one line (its dropout masks would come from another generator).

TensorFlow is hidden in the JAX and PyTorch processes, as on a GPU machine without it; the
JAX process that trains also runs every other command there (prepare, explain, calibrate,
compare, push, and the export predicts from its folder and through hf://)."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from helpers import NO_TENSORFLOW, TINY_MODEL_CODE
from keras_mlrs import data

#: What each process does, stage by stage: (backend, the run it trains, the runs it checks).
#: The PyTorch run is checked under TensorFlow and JAX; theirs under PyTorch. The processes of
#: a stage run side by side: they write different runs.
PLAN = [[("tensorflow", "tensorflow", []), ("jax", "jax", [])], [("torch", "torch", ["tensorflow", "jax"])],
        [("tensorflow", None, ["torch"])], [("jax", None, ["torch"])]]

WORKER = TINY_MODEL_CODE + textwrap.dedent("""
    import json, os
    import numpy as np
    from typer.testing import CliRunner
    from keras_mlrs import data, hub, runs
    from keras_mlrs.cli.main import app
    from keras_mlrs.explain import lrp

    work, trains, checks = sys.argv[1], sys.argv[2], sys.argv[3].split(",") if sys.argv[3] else []
    backend = keras.backend.backend()
    shards = work + "/shards"

    def mlrs(*args):
        result = CliRunner().invoke(app, list(args))
        if result.exit_code != 0:
            sys.exit(f"mlrs {' '.join(args)} failed under {backend}: {result.output[-2000:]} {result.exception!r}")
        return result.output

    class Interrupt(keras.callbacks.Callback):  # Ctrl-C as the second epoch ends, before it is recorded
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    batch = data.load(shards, "validation", batch_size=8, pipeline="numpy")[0][0]
    patch = str(sorted(p for p in data.sample_path().iterdir() if p.is_dir())[0])
    out = {}
    if trains:
        run = f"{work}/{trains}"
        out["train"] = mlrs("train", "--data", shards, "--loss", "bce", "--epochs", "2" if backend == "torch" else "1",
                            "--batch-size", "2", "--model", "tiny", "--optimizer", "rmsprop", "--run-dir", run)
    if trains == "jax":  # TensorFlow is hidden here, as on a JAX GPU machine without it: every command runs
        sys.path.insert(0, sys.argv[4])
        from helpers import seed_hub_cache

        out["prepare"] = mlrs("data", "prepare", str(data.sample_path()), "--out", work + "/prepared-without-tf",
                              "--split", "random")
        out["without tensorflow"] = [
            mlrs("explain", patch, "--model", run, "-c", "0", "--out", work + "/explained"), mlrs("calibrate", run),
            mlrs("evaluate", run, "--split", "validation", "--thresholds", "calibrated", "--json", work + "/cal.json"),
            mlrs("compare", run, "--split", "validation", "--resamples", "50", "--out", work + "/comparison"),
            mlrs("push", run, "--repo", "o/m", "--to", work + "/export"), mlrs("predict", work + "/export", patch)]
        seed_hub_cache(work + "/export", "o/m", os.environ["HF_HUB_CACHE"])
        out["without tensorflow"].append(mlrs("predict", "hf://o/m", patch))
    if trains == "torch":
        # the same run cut short twice: one for the other backends to refuse to resume, one
        # resumed here, which must end as the uninterrupted run did
        for cut in ("-cut", "-resumed"):
            try:
                runs.train(runs.RunDirectory(run).config(), run + cut, callbacks=[Interrupt()])
            except KeyboardInterrupt:
                pass
        runs.resume(run + "-resumed")
        straight, resumed = runs.load_model(run), runs.load_model(run + "-resumed")
        out["resumed exactly"] = all(np.array_equal(a, b) for a, b in zip(straight.get_weights(), resumed.get_weights()))
        mlrs("calibrate", run)
        out["doctor"] = json.loads(mlrs("doctor", "--json"))
        out["calibrated"] = mlrs("evaluate", run, "--split", "validation", "--thresholds", "calibrated")
    for name in [trains, *checks] if trains else checks:
        run = f"{work}/{name}"
        mlrs("evaluate", run, "--split", "validation", "--json", f"{work}/{name}-under-{backend}.json")
        model, rule = hub.load_model_and_rule(run)
        relevance = lrp(model, batch, [0, 3])
        np.savez(f"{work}/{name}-under-{backend}.npz", scores=keras.ops.convert_to_numpy(model.predict_on_batch(batch)),
                 **relevance)
        out[name] = {"predict": mlrs("predict", run, patch)}
        if name == "torch" and backend != "torch":
            result = CliRunner().invoke(app, ["train", "--resume", run + "-cut"])
            out[name]["resume"] = (result.exit_code, str(result.exception))
            if backend == "tensorflow":
                mlrs("push", run, "--repo", "o/torch", "--to", f"{work}/torch-pushed-under-{backend}")
    assert backend == "tensorflow" or sys.modules["tensorflow"] is None
    print(json.dumps(out))
""")


@pytest.mark.backend_free  # the backends run in processes of their own; this one compares their files
@pytest.mark.skipif(importlib.util.find_spec("torch") is None or importlib.util.find_spec("jax") is None,
                    reason="needs torch and jax installed: `sh tests/run.sh` installs both")
def test_runs_trained_under_each_backend_load_evaluate_explain_and_push_under_the_others(tmp_path):
    data.prepare(data.sample_path(), tmp_path / "shards", split="random", workers=1)
    outputs = {}
    for stage in PLAN:
        procs = {(backend, trains): subprocess.Popen(
            [sys.executable, "-c", (NO_TENSORFLOW if backend != "tensorflow" else "") + WORKER, str(tmp_path),
             trains or "", ",".join(checks), str(Path(__file__).parents[1])], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**os.environ, "KERAS_BACKEND": backend, "COLUMNS": "200",
                                                    "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")})
            for backend, trains, checks in stage}
        for key, proc in procs.items():
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, (key, (out + err)[-3000:])
            outputs[key] = json.loads(out.strip().splitlines()[-1])
    pairs = [("torch", "tensorflow"), ("torch", "jax"), ("tensorflow", "torch"), ("jax", "torch")]
    for trained, other in pairs:
        own, seen = tmp_path / f"{trained}-under-{trained}", tmp_path / f"{trained}-under-{other}"
        report, again = (json.loads(p.with_suffix(".json").read_text()) for p in (own, seen))
        assert report["patches"] == again["patches"] == 1
        for average in ("micro", "macro", "samples"):
            assert again[average] == pytest.approx(report[average], abs=1e-6), (trained, other)
        arrays, theirs = np.load(own.with_suffix(".npz")), np.load(seen.with_suffix(".npz"))
        # the same logits and LRP heatmaps, to float32 rounding (sums taken in another order)
        np.testing.assert_allclose(theirs["scores"], arrays["scores"], atol=2e-5 * np.abs(arrays["scores"]).max())
        for group in ("b10m", "b20m", "b60m"):
            assert np.abs(arrays[group]).sum() > 0
            np.testing.assert_allclose(theirs[group], arrays[group], atol=2e-5 * np.abs(arrays[group]).max())
        predicted = outputs[other, None if other != "torch" else "torch"][trained]["predict"]
        assert predicted.splitlines() and predicted == outputs[trained, trained][trained]["predict"]
    for other in ("tensorflow", "jax"):  # the PyTorch run cut short is refused elsewhere, in one line
        code, text = outputs[other, None]["torch"]["resume"]
        assert code == 1 and "\n" not in text, text
        assert "was trained under torch: resume it with KERAS_BACKEND=torch" in text
    assert outputs["torch", "torch"]["resumed exactly"]  # weights, optimizer, data order and dropout masks
    assert "calibrated" in outputs["torch", "torch"]["calibrated"]
    doctor = outputs["torch", "torch"]["doctor"]  # what PyTorch runs on, with TensorFlow absent
    assert doctor["keras backend"] == "torch" and doctor["torch"].startswith(version("torch"))
    assert doctor["torch"].endswith(("(CPU only)", "GPU(s))"))
    assert doctor["tensorflow built with CUDA"] == "not checked (the backend is torch)"  # not imported
    assert doctor["XLA (jit_compile) works"] == "not used by the torch backend"
    state = json.loads((tmp_path / "torch-cut" / "state.json").read_text())
    assert not state["finished"] and state["epoch"] == 1 and state["backend"] == "torch"  # left as it was
    card = (tmp_path / "torch-pushed-under-tensorflow" / "README.md").read_text()
    assert "o/torch" in card and Path(tmp_path / "torch-pushed-under-tensorflow" / "model.weights.h5").is_file()
    _check_jax_without_tensorflow(tmp_path, outputs["jax", "jax"])


def _check_jax_without_tensorflow(work, out):
    """What the JAX process did with TensorFlow hidden: prepare (TFRecord framing of its own,
    the same files as with TensorFlow), train on the numpy pipeline (and its end-of-training
    evaluation) without TensorBoard logs, explain, calibrate, compare and push, and the
    exported model predicts as the run does, from its folder and as hf:// (offline)."""
    ours, theirs = work / "prepared-without-tf", work / "shards"
    shards = sorted(p.relative_to(ours) for p in ours.rglob("*.tfrecord"))
    assert shards and shards == sorted(p.relative_to(theirs) for p in theirs.rglob("*.tfrecord"))
    assert all((ours / p).read_bytes() == (theirs / p).read_bytes() for p in shards)
    assert "writes no TensorBoard logs" in out["train"] and not (work / "jax" / "tensorboard").exists()
    metrics = json.loads((work / "jax" / "metrics.json").read_text())
    assert 0.0 <= metrics["samples"]["f1"] <= 1.0
    relevance = np.load(next((work / "explained").glob("*_lrp.npy")))
    assert np.isfinite(relevance).all() and np.abs(relevance).sum() > 0
    report = json.loads((work / "jax-under-jax.json").read_text())
    assert report["decision"]["name"] == "sigmoid" and report["patches"] == 1
    assert json.loads((work / "cal.json").read_text())["decision"]["name"] == "calibrated"
    comparison = json.loads((work / "comparison" / "report.json").read_text())
    assert comparison["uncertainty"]["intervals"]["jax"]["f1_samples"]["value"] == pytest.approx(report["samples"]["f1"],
                                                                                                abs=1e-6)
    predicted = out["jax"]["predict"]
    assert predicted.splitlines() and out["without tensorflow"][-2] == out["without tensorflow"][-1] == predicted
