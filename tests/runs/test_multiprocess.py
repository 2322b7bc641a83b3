"""Multi-process data parallelism on JAX (``--distribute multiprocess``), for real: processes
on localhost joined by ``jax.distributed`` and exchanging through JAX's CPU collectives
(Gloo), each reading its part of every global batch.

The runs are ``mlrs train`` with a tiny model registered (``helpers.TINY_MLRS``): what is tested is
how the batches and the gradients travel, and JAX compiles the tiny model's steps in a
fraction of the K-Branch CNN's time. TensorFlow's import is blocked in them, as on a JAX
machine without it (and it spares each process TensorFlow's start-up). The processes share
JAX's persistent compilation cache (a folder of this module). ``tests/run.sh`` runs this
module on its own, after the JAX suite, beside the end of the TensorFlow suite.
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import NO_TENSORFLOW, TINY_MLRS, one_line_error
from keras_mlrs import data

pytestmark = pytest.mark.backend_free  # the runs are JAX processes of their own; this one reads their files


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """2 train and 2 validation patches (a global batch of 2 splits over 2 processes), and
    the environment of the processes."""
    root = tmp_path_factory.mktemp("multiprocess")
    shards = root / "shards"
    data.prepare(data.sample_path(), shards, split="random", seed=0, fractions=(0.4, 0.4, 0.2), workers=1)
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}, "KERAS_BACKEND": "jax", "JAX_COMPILATION_CACHE_DIR": str(root / "jax-cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
           "COLUMNS": "200"}
    return {"shards": shards, "env": env, "root": root}


def _port() -> int:
    """A free port whose successor is free too (the lifeline listens there)."""
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("localhost", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("localhost", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two consecutive free ports")


MLRS_ARGS = [sys.executable, "-c", NO_TENSORFLOW + TINY_MLRS]
TINY_FLAGS = ["--model", "tiny"]
#: plain gradient steps, large enough that two epochs move the weights far beyond float32 rounding
SGD = ["--optimizer", "sgd", "--lr", "0.5"]


def _processes(setting, args, count=2, timeout=300):
    """Run ``mlrs`` ``args`` as ``count`` processes of one multiprocess run: their
    ``(stdout, stderr, exit status)`` (through files: a full pipe would stall a process, and
    with it the others, in a collective)."""
    port, logs = _port(), setting["root"] / f"logs-{time.monotonic_ns()}"
    logs.mkdir()
    distribute = [] if "--resume" in args else ["--distribute", "multiprocess"]  # a resumed run keeps its own
    procs = []
    for i in range(count):
        with open(logs / f"{i}.out", "w") as out, open(logs / f"{i}.err", "w") as err:
            procs.append(subprocess.Popen([*MLRS_ARGS, *map(str, args), *distribute, "--coordinator",
                                           f"localhost:{port}", "--num-processes", str(count), "--process-id", str(i)],
                                          env=setting["env"], stdout=out, stderr=err, text=True))
    try:
        for p in procs:
            p.wait(timeout=timeout)
    finally:
        for p in procs:
            p.kill()
    return [((logs / f"{i}.out").read_text(), (logs / f"{i}.err").read_text(), p.returncode)
            for i, p in enumerate(procs)]


def _weights(model):
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(model) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as f:
        out = {}
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _assert_close(a, b):
    """The weights of two .keras files agree to float32 rounding (the sums of a batch's
    gradients are added in another order across devices)."""
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and len(wa) > 5
    for name in wa:
        np.testing.assert_allclose(wa[name], wb[name], rtol=1e-5, atol=1e-6, err_msg=name)


def _assert_moved(run, tolerance=1e-3):
    """The second epoch changed the weights by far more than :func:`_assert_close` allows."""
    first, last = _weights(run / "checkpoints" / "epoch-0001.keras"), _weights(run / "last.keras")
    assert max(float(np.abs(first[k] - last[k]).max()) for k in first if k.startswith("layers/")) > tolerance


#: the runs compared: two epochs of two steps of plain gradient descent
COMMON = ["--loss", "bce", "--epochs", "2", "--batch-size", "2", "--model", "tiny", *SGD, "--pipeline", "numpy",
          "--keep-every", "1"]


@pytest.fixture(scope="module")
def reference(setting):
    """The reference, the run on one device of one process, and beside it (at once, a core
    each) the same run on two devices of one process (``data_parallel``, JAX's host devices
    split by XLA_FLAGS): their run directories."""
    runs = {"one": ([], ""), "two": (["--distribute", "data_parallel"], "--xla_force_host_platform_device_count=2")}
    procs = {name: subprocess.Popen([*MLRS_ARGS, "train", "--data", str(setting["shards"]), *COMMON, *more,
                                     "--run-dir", str(setting["root"] / name)], env={**setting["env"], "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flags}"},
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, (more, flags) in runs.items()}
    outputs = {name: p.communicate(timeout=300) + (p.returncode,) for name, p in procs.items()}
    for name, (_, err, code) in outputs.items():
        assert code == 0, (name, err[-3000:])
    assert "2 replicas (data_parallel)" in outputs["two"][0]
    return {name: setting["root"] / name for name in runs}


def test_two_processes_train_and_resume_as_one_process_does(setting, reference, tmp_path):
    one_device = reference["one"]
    common = ["train", "--data", setting["shards"], *COMMON]
    results = _processes(setting, [*common, "--run-dir", tmp_path / "two"])
    for i, (_, err, code) in enumerate(results):
        assert code == 0, (i, err[-3000:])
    assert "process 1 of 2" in results[1][0] and "process 0 wrote the run directory" in results[1][0]
    assert "Final model" in results[0][0]
    run = tmp_path / "two"
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in one_device.iterdir())
    _assert_close(one_device / "last.keras", run / "last.keras")
    _assert_moved(run)
    first, second = (json.loads((r / "state.json").read_text())["history"] for r in (one_device, run))
    assert [round(r["val_loss"], 5) for r in first] == [round(r["val_loss"], 5) for r in second]

    # killed after its first epoch: the state says epoch 1 and the second checkpoint is not there
    state = json.loads((run / "state.json").read_text())
    state.update(epoch=1, history=state["history"][:1], finished=False,
                 best={**state["best"], "epoch": 1, "value": state["history"][0]["val_f1_samples"]},
                 # and the dropout generator as after epoch 1: one step, one draw, one [0, 1] added
                 rng=[[a, b - 1] for a, b in state["rng"]])
    (run / "state.json").write_text(json.dumps(state))
    (run / "checkpoints" / "epoch-0002.keras").unlink()
    resumed = _processes(setting, ["train", "--resume", run])
    assert [code for *_, code in resumed] == [0, 0], resumed[0][1][-3000:] + resumed[1][1][-3000:]
    _assert_close(one_device / "last.keras", run / "last.keras")


def test_one_process_on_two_devices_trains_as_one_device_does(reference):
    """``data_parallel``: each of the two devices computes half of every batch."""
    _assert_close(reference["one"] / "last.keras", reference["two"] / "last.keras")
    _assert_moved(reference["two"])


def _slurm(process: int, port: int) -> dict:
    """What SLURM tells each task of a two-task job on this host (JAX's cluster detection
    puts the coordinator on the first node, at a port derived from the job id)."""
    job = port - (65535 - 2**12 + 1)
    return {"SLURM_JOB_ID": str(job), "SLURM_STEP_NODELIST": "localhost", "SLURM_NTASKS": "2",
            "SLURM_PROCID": str(process), "SLURM_LOCALID": str(process), "SLURM_STEP_NUM_NODES": "1"}


def _slurm_port() -> int:
    """A free port of the range JAX's SLURM detection picks from, whose successor is free too."""
    for port in np.random.default_rng(time.monotonic_ns()).permutation(np.arange(65535 - 2**12 + 1, 65535)):
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("localhost", int(port)))
                b.bind(("localhost", int(port) + 1))
            except OSError:
                continue
            return int(port)
    raise RuntimeError("no two consecutive free ports")


def test_a_killed_process_stops_the_others_in_one_line(setting, tmp_path):
    """Under SLURM, as JAX detects it (no coordinator given): the processes watch each other
    as they do with one."""
    port, run = _slurm_port(), tmp_path / "run"
    args = ["train", "--data", setting["shards"], "--loss", "bce", "--epochs", "200", "--batch-size", "2",
            *TINY_FLAGS, "--run-dir", run, "--distribute", "multiprocess", "--connect-timeout", "60"]
    # process 0 warns that it writes no TensorBoard logs (TensorFlow is hidden), as its user asked not to hear
    quiet = {"PYTHONWARNINGS": "ignore:TensorFlow is not installed"}
    procs = [subprocess.Popen([*MLRS_ARGS, *map(str, args)], env={**setting["env"], **_slurm(i, port), **quiet},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in (0, 1)]
    try:
        deadline = time.monotonic() + 240
        while not (run / "state.json").exists():  # a completed epoch: the run is resumable
            assert time.monotonic() < deadline and procs[0].poll() is None, procs[0].communicate()[1][-3000:]
            time.sleep(0.5)
        procs[1].kill()
        start = time.monotonic()
        out, err = procs[0].communicate(timeout=60)
        waited = time.monotonic() - start
    finally:
        for p in procs:
            p.kill()
    result = subprocess.CompletedProcess(args, procs[0].returncode, out, err)
    one_line_error(result, "another process of the multiprocess run stopped", "--resume")
    assert waited < 30  # at once, not after JAX's heartbeat timeout
    state = json.loads((run / "state.json").read_text())
    assert not state.get("finished") and state["epoch"] >= 1  # resumable, not complete


def test_an_unreachable_coordinator_or_disagreeing_processes_are_one_line_errors(setting, tmp_path):
    """At once: a process whose coordinator nobody runs (1 s timeout); and a process 0 for 2
    processes with a process 1 started for 3. Nothing is written."""
    port, nobody = _port(), _port()
    cases = [(port, 0, 2, 4), (port, 1, 3, 4), (nobody, 1, 2, 1)]  # coordinator port, process, count, timeout
    procs = [subprocess.Popen([*MLRS_ARGS, "train", "--data", str(setting["shards"]), "--model", "tiny", "--run-dir",
                               str(tmp_path / "run"), "--distribute", "multiprocess", "--coordinator",
                               f"localhost:{at}", "--num-processes", str(count), "--process-id", str(index),
                               "--connect-timeout", str(timeout)], env=setting["env"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for at, index, count, timeout in cases]
    outputs = [p.communicate(timeout=120) for p in procs]
    results = [subprocess.CompletedProcess(p.args, p.returncode, *out) for p, out in zip(procs, outputs)]
    one_line_error(results[0], "waited 4 s for process(es) 1 of 2")
    one_line_error(results[1], "was started for 3 processes, the run has 2", "--num-processes")
    one_line_error(results[2], "could not reach process 0", "within 1 s")
    assert not (tmp_path / "run").exists()
