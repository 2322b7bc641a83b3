"""``mlrs bench train``: training throughput of a model, and the share of time waiting for input."""

import importlib.util
import statistics
import time

import keras
import numpy as np

from keras_mlrs import models
from keras_mlrs.core import losses
from keras_mlrs.core.optimizers import TF1RMSprop
from keras_mlrs.data import load, prepare
from keras_mlrs.study.bench.common import device_name, replicate_sample, work_folder


def bench_train(batch_size: int = 1024, steps: int = 3, rounds: int = 2, model: str = "kbranch",
                mixed_precision: bool = False, loss: str = "bce", workdir=None, model_params: dict | None = None) -> dict:
    """Training throughput of a registered model at ``batch_size`` (the study's TF1 RMSProp, ``loss``).

    Two measurements, interleaved over ``rounds``, each the median step time over
    ``steps`` steps after a warm-up: one batch held in memory (compute only), and batches
    streamed from prepared shards by :func:`keras_mlrs.data.load` (the real pipeline; the
    bundled sample replicated to two batches' worth). The share of step time spent
    waiting for input is ``1 - compute / streamed``. Without TensorFlow (e.g. the JAX
    backend on a GPU machine) only the in-memory figure is measured. The shards go to
    ``workdir`` (kept) or to a temporary folder removed at the end.
    """
    keras.utils.set_random_seed(0)
    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        net = models.get(model, **(model_params or {}))
        net.compile(optimizer=TF1RMSprop(1e-4), loss=losses.get(loss))
    finally:
        keras.config.set_dtype_policy(previous)
    layout = models.input_layout(net)
    rng = np.random.default_rng(0)
    shapes = {t.name.split(":")[0]: tuple(t.shape[1:]) for t in net.inputs}
    x = {k: rng.integers(0, 4000, (batch_size, *s), dtype=np.uint16) for k, s in shapes.items()}
    x = x if layout == "groups" else next(iter(x.values()))
    y = (rng.random((batch_size, 19)) < 0.15).astype("float32")

    with work_folder(workdir, "mlrs-bench-train-") as root:
        stream = None
        if importlib.util.find_spec("tensorflow") is not None:
            prepared = root / "prepared"
            if not (prepared / "manifest.json").exists():
                archive = replicate_sample(root / "archive", 2 * batch_size)
                prepare(archive, prepared, split="random", fractions=(1.0, 0.0, 0.0), seed=0)
            ds = load(prepared, "train", batch_size=batch_size, layout=layout, shuffle=True, seed=0,
                      repeat=True, drop_remainder=True)
            stream = iter(ds)

        def time_steps(next_batch):
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                bx, by = next_batch()
                net.train_on_batch(bx, by)
                times.append(time.perf_counter() - start)
            return times

        time_steps(lambda: (x, y))  # warm-up: build and compile the step
        compute, streamed = [], []
        for _ in range(rounds):
            compute += time_steps(lambda: (x, y))
            if stream is not None:
                streamed += time_steps(lambda: next(stream))
        stream = None  # the loader's open files, before the work folder goes
    result = {
        "backend": keras.backend.backend(),
        "device": device_name(),
        "batch_size": batch_size,
        "parameters": net.count_params(),
        "compute_step_s": statistics.median(compute),
        "compute_patches_per_s": batch_size / statistics.median(compute),
        "loader_step_s": None,
    }
    if streamed:
        s = statistics.median(streamed)
        result.update(loader_step_s=s, loader_patches_per_s=batch_size / s,
                      input_wait_share=max(0.0, 1 - result["compute_step_s"] / s))
    return result
