"""What the benchmarks share: interleaved timing, paired ratios, a larger archive made from
the bundled sample, the work folder, and the name of the device.

Timings are measured side by side in one process and interleaved (round-robin over the
contenders, many rounds, median per contender), so that the machine's noise hits every
contender alike; report the ratios, not the absolute times.
"""

import os
import shutil
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from keras import ops

from keras_mlrs.bigearthnet import excluded_patches
from keras_mlrs.data import sample_path
from keras_mlrs.runs import describe_devices


def interleave(contenders: dict, rounds: int, repeats: int = 1, clock=time.perf_counter) -> dict[str, list[float]]:
    """Time each of ``contenders`` (name -> callable) ``rounds`` times, taking turns, each
    time over ``repeats`` calls: seconds per call, per round, by name. ``clock`` is the
    timer (injected by tests)."""
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            start = clock()
            for _ in range(repeats):
                run()
            times[name].append((clock() - start) / repeats)
    return times


@contextmanager
def work_folder(workdir, prefix: str):
    """The folder a benchmark writes its data to: ``workdir`` when given (kept, and reused
    by a later run), else a temporary folder removed when the benchmark ends, also on an
    error or Ctrl-C."""
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        yield Path(workdir)
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def paired_ratio(ours, baseline) -> float:
    """The median over rounds of ``ours / baseline``, each pair measured back to back:
    steadier on a shared machine than a ratio of medians taken minutes apart."""
    return statistics.median(a / b for a, b in zip(ours, baseline))


def replicate_sample(root, patches: int) -> Path:
    """A v1 archive of ``patches`` patches under ``root``: the usable sample patches copied
    (hard-linked where possible) under new names. Returns the archive folder."""
    sources = [p for p in sorted(sample_path().iterdir()) if p.is_dir() and p.name not in excluded_patches()]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for k in range(patches):
        src = sources[k % len(sources)]
        name = f"{src.name}_x{k:06d}"
        dst = root / name
        dst.mkdir(exist_ok=True)
        for f in src.iterdir():
            target = dst / f.name.replace(src.name, name)
            if not target.exists():
                try:
                    os.link(f, target)
                except OSError:
                    shutil.copy(f, target)
    return root


def matmul_rate(size: int = 2048, dtype: str = "float32"):
    """A callable timing one ``size`` × ``size`` matrix product on the backend's device:
    each call returns its GFLOP/s (2·size³ operations). The largest rate seen over calls is
    the device's practical peak for dense arithmetic, what the benchmarks' work is measured
    against in the same run."""
    a = ops.convert_to_tensor(np.random.default_rng(0).standard_normal((size, size)).astype(dtype))
    ops.convert_to_numpy(ops.matmul(a, a)[:1, :1])  # warm up (and compile where the backend does)

    def rate() -> float:
        start = time.perf_counter()
        ops.convert_to_numpy(ops.matmul(a, a)[:1, :1])  # waits for the product: its corner depends on all of it
        return 2 * size**3 / (time.perf_counter() - start) / 1e9

    return rate


def device_name() -> str:
    """The accelerator Keras computes on, in words (the first GPU the backend sees, else the CPU)."""
    gpus = describe_devices()["gpus"]
    return f"GPU {gpus[0]}" if gpus else f"CPU ({os.cpu_count()} cores)"
