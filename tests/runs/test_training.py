"""Training runs in the library: exact resume after an interruption, two-replica
distribution, the multi-worker refusal, and the run directory's layout."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from helpers import TINY_MODEL_CODE, tiny_model
from keras_mlrs import data, runs
from keras_mlrs.errors import MlrsError
from keras_mlrs.runs import RunDirectory, TrainConfig


def read_history(run):
    return RunDirectory(run).state()["history"]


class _InterruptAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_exactly_as_if_uninterrupted(tiny_runs, tmp_path):
    """The session's bce run (2 epochs of 2 steps, dropout 0.5) against the same configuration
    interrupted by Ctrl-C during its second epoch, then resumed."""
    straight = tiny_runs["bce"][0]
    config = RunDirectory(straight).config()
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C during the second epoch
        runs.train(config, tmp_path / "cut", callbacks=[_InterruptAtEpoch(1)])
    assert runs.read_state(tmp_path / "cut")["epoch"] == 1
    assert len(read_history(tmp_path / "cut")) == 1
    runs.resume(tmp_path / "cut")
    assert [r["epoch"] for r in read_history(tmp_path / "cut")] == [1, 2]
    for a, b in zip(read_history(straight), read_history(tmp_path / "cut")):
        assert a["loss"] == b["loss"] and a["val_loss"] == b["val_loss"]
    a = keras.saving.load_model(straight / runs.LAST)
    b = keras.saving.load_model(tmp_path / "cut" / runs.LAST)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)  # dropout masks, data order and optimizer state all restored
    assert RunDirectory(tmp_path / "cut").kept_epochs() == RunDirectory(straight).kept_epochs() == [1, 2]  # keep_every 1
    with pytest.raises(MlrsError, match="already finished"):
        runs.resume(tmp_path / "cut")


@pytest.mark.backends  # to run in the JAX lane; TensorFlow's resume is the test above, PyTorch's the cross-backend one
@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX's own path: the other backends read no extra batch")
def test_resume_under_jax_on_the_tf_data_pipeline_is_exact(prepared, tmp_path, monkeypatch):
    """The same under JAX with the tf.data pipeline and the tests' tiny model (a K-Branch CNN,
    even one filter wide, took 40-84 s to compile for the three runs). Keras under JAX reads a
    batch of a loaded model's first epoch to build its metrics: that extra pass over the
    epoch's dataset must not change its order (it did: the resumed epoch trained on another
    permutation, tf.data reshuffling on each pass)."""
    from keras_mlrs import models

    monkeypatch.setitem(models.MODELS._entries, "tiny", tiny_model)  # registered for this test only
    config = TrainConfig(loss="bce", data=str(prepared), epochs=2, batch_size=2, pipeline="tf.data", model="tiny")
    runs.train(config, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        runs.train(config, tmp_path / "cut", callbacks=[_InterruptAtEpoch(1)])
    runs.resume(tmp_path / "cut")
    assert read_history(tmp_path / "straight")[1]["loss"] == read_history(tmp_path / "cut")[1]["loss"]
    a, b = (runs.load_model(tmp_path / r / runs.LAST) for r in ("straight", "cut"))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_a_run_being_trained_is_neither_resumed_nor_replaced_by_another(tiny_runs, tmp_path):
    """Another process holds the run's lock (here: this test, as a training process would):
    `resume` and `train(..., overwrite=True)` refuse in one line, and the run stays whole."""
    from keras_mlrs.files import folder_lock

    run = tmp_path / "run"
    shutil.copytree(tiny_runs["ranking"][0], run)
    before = sorted(p.name for p in run.rglob("*"))
    state = runs.read_state(run)
    runs.directory.RunDirectory(run).write_state({**state, "finished": False})
    with folder_lock(run, "training"):
        with pytest.raises(MlrsError, match=rf"{run} is in use by process {os.getpid()} \(training\)"):
            runs.resume(run)
        with pytest.raises(MlrsError, match="is in use by process"):
            runs.train(RunDirectory(run).config(), run, overwrite=True)
    assert sorted(p.name for p in run.rglob("*")) == before


def test_the_run_directory_names_its_files(tiny_runs):
    run = RunDirectory(tiny_runs["bce"][0])
    assert run.exists() and run.finished() is run
    assert run.checkpoint(12).name == "epoch-0012.keras" and run.checkpoint(12).parent.name == runs.CHECKPOINTS
    assert run.evaluation("test").name == "evaluation-test"
    assert runs.model_file(run.path) == run.path / runs.LAST  # the study's: the final epoch's model
    state = run.state()
    assert run.resolve_checkpoint() == (run.path / runs.LAST, {"name": "last", "epoch": 2})
    assert run.resolve_checkpoint("best") == (run.path / runs.BEST, {"name": "best", "epoch": state["best"]["epoch"]})
    assert run.resolve_checkpoint("epoch-1") == (run.checkpoint(1), {"name": "epoch-1", "epoch": 1})
    assert run.evaluation("test", "epoch-1").name == "evaluation-test-epoch-1"
    assert run.training_checkpoints() == [1, 2]  # keep_every 1
    assert runs.directory.periodic_epochs(20, 80) == [1, 20, 40, 60, 80]  # the thesis's grid, and the final epoch
    assert runs.directory.periodic_epochs(20, 50) == [1, 20, 40] and runs.directory.periodic_epochs(0, 80) == []
    with pytest.raises(MlrsError, match=r"kept no checkpoint of epoch 7 \(kept: epoch-1, epoch-2\)"):
        run.resolve_checkpoint("epoch-7")
    with pytest.raises(MlrsError, match="unknown checkpoint 'final'; give last"):
        run.resolve_checkpoint("final")
    with pytest.raises(MlrsError, match="can be chosen in run directories only"):
        runs.model_file(run.path / runs.LAST, checkpoint="best")
    assert run.config().loss == "bce" and run.state()["finished"]
    with pytest.raises(MlrsError, match="is not a run directory"):
        RunDirectory(run.path.parent).finished()


@pytest.mark.backend_free  # TensorFlow's strategy runs in its own process; this one only reads the files
def test_mirrored_training_on_two_logical_cpu_devices(tmp_path):
    prepared = tmp_path / "data"  # 2 train, 2 validation patches: every batch splits over 2 replicas
    data.prepare(data.sample_path(), prepared, split="random", seed=0, fractions=(0.4, 0.4, 0.2), workers=1)
    script = TINY_MODEL_CODE + textwrap.dedent(f"""
        import json, os
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from keras_mlrs import runs
        seen = {{}}
        config = runs.TrainConfig(loss="sparsemax", data={str(prepared)!r}, epochs=1, batch_size=2,
                                  distribute="mirrored", model="tiny")
        result = runs.train(config, {str(tmp_path / "run")!r}, on_start=seen.update)
        print(json.dumps({{"replicas": seen["replicas"], "f1": result["samples"]["f1"]}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert 0.0 <= result["f1"] <= 1.0
    history = read_history(tmp_path / "run")
    assert len(history) == 1 and all(np.isfinite(r["loss"]) for r in history)


def test_multiworker_is_gone_with_the_reason_and_what_to_use(prepared, tmp_path):
    """Keras 3 does not support TensorFlow's MultiWorkerMirroredStrategy (keras-team/keras#20585)."""
    with pytest.raises(MlrsError, match="keras-team/keras#20585.*multiprocess"):
        runs.train(TrainConfig(data=str(prepared), epochs=1, distribute="multiworker"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


