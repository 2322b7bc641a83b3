"""``mlrs bench explain``: LRP heatmaps/s of the native engine and of iNNvestigate, side by
side, and the native engine's arithmetic rate against the machine's own peak."""

import statistics
import time

import keras
import numpy as np

from keras_mlrs.data import read_patch, sample_path
from keras_mlrs.explain import LRP, fold_batchnorm
from keras_mlrs.explain.bridge import innvestigate_lrp
from keras_mlrs.models import kbranch_cnn
from keras_mlrs.study.bench.common import device_name, matmul_rate


def bench_explain(batch_size: int = 8, classes: int = 19, preset: str = "lrp.epsilon", rounds: int = 3,
                  reference=innvestigate_lrp, model_params: dict | None = None, peak_size: int = 2048) -> dict:
    """LRP heatmaps/s of the native engine and of iNNvestigate 2.1.2 (in its own process)
    on the same K-Branch CNN (the study's, random weights, batch normalisation folded so
    both engines compute the same thing), the same real patches (the bundled sample,
    repeated to ``batch_size``) and preset. Also the largest difference between the two
    engines' heatmaps, relative to each input's largest relevance. ``reference`` computes
    iNNvestigate's relevance and timing (injected by tests); ``model_params`` change the
    K-Branch CNN's (e.g. ``units=128``).

    The native engine's work is the multiply-adds of its kernel layers' products (the
    forward pass once per patch, the transposed products once per heatmap, at their nominal
    cost: :attr:`keras_mlrs.explain.LRP.multiply_adds_per_call`); its GFLOP/s (two
    operations per multiply-add) are set against the peak of the same device measured in
    the same run, a ``peak_size`` float32 matrix product timed between the LRP calls
    (``fraction_of_peak``: the median over rounds of the two rates' ratio, each pair
    measured back to back)."""
    keras.utils.set_random_seed(0)
    model = fold_batchnorm(kbranch_cnn(**(model_params or {})))
    patches = [read_patch(p) for p in sorted(sample_path().iterdir()) if p.is_dir()]
    x = {g: np.stack([patches[i % len(patches)].groups[g] for i in range(batch_size)]) for g in patches[0].groups}
    wanted = list(range(classes))
    start = time.perf_counter()
    analyzer = LRP(model, preset)
    native = analyzer(x, wanted, batch_size=batch_size)
    first = time.perf_counter() - start
    flop = 2 * analyzer.multiply_adds_per_call
    peak = matmul_rate(peak_size)
    times, peaks = [], []
    for _ in range(rounds):
        peaks.append(max(peak() for _ in range(3)))
        start = time.perf_counter()
        analyzer(x, wanted, batch_size=batch_size)
        times.append(time.perf_counter() - start)
    expected, timing = reference(model, x, wanted, preset=preset)
    difference = max(
        float(np.abs(native[g] - expected[g]).max() / max(np.abs(native[g]).max(), 1e-30)) for g in native
    )
    heatmaps = batch_size * classes
    best = min(times)
    return {
        "device": device_name(),
        "backend": keras.backend.backend(),
        "native": {"heatmaps_per_s": heatmaps / best, "first_call_s": first, "gflop_per_call": flop / 1e9,
                   "gflop_per_s": flop / best / 1e9},
        "innvestigate": {"heatmaps_per_s": heatmaps / timing["analyze_s"], "first_call_s": timing["build_s"]},
        "peak_gflop_per_s": max(peaks),
        "fraction_of_peak": statistics.median(flop / t / 1e9 / p for t, p in zip(times, peaks)),
        "max_relative_difference": difference,
    }
