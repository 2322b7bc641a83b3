"""``mlrs bench explain``: LRP heatmaps/s of the native engine and of iNNvestigate, side by side."""

import time

import keras
import numpy as np

from keras_mlrs.data import read_patch, sample_path
from keras_mlrs.explain import LRP, fold_batchnorm
from keras_mlrs.explain.bridge import innvestigate_lrp
from keras_mlrs.models import kbranch_cnn
from keras_mlrs.study.bench.common import device_name


def bench_explain(batch_size: int = 8, classes: int = 19, preset: str = "lrp.epsilon", rounds: int = 3,
                  reference=innvestigate_lrp, model_params: dict | None = None) -> dict:
    """LRP heatmaps/s of the native engine and of iNNvestigate 2.1.2 (in its own process)
    on the same K-Branch CNN (the study's, random weights, batch normalisation folded so
    both engines compute the same thing), the same real patches (the bundled sample,
    repeated to ``batch_size``) and preset. Also the largest difference between the two
    engines' heatmaps, relative to each input's largest relevance. ``reference`` computes
    iNNvestigate's relevance and timing (injected by tests); ``model_params`` change the
    K-Branch CNN's (e.g. ``units=128``)."""
    keras.utils.set_random_seed(0)
    model = fold_batchnorm(kbranch_cnn(**(model_params or {})))
    patches = [read_patch(p) for p in sorted(sample_path().iterdir()) if p.is_dir()]
    x = {g: np.stack([patches[i % len(patches)].groups[g] for i in range(batch_size)]) for g in patches[0].groups}
    wanted = list(range(classes))
    start = time.perf_counter()
    analyzer = LRP(model, preset)
    native = analyzer(x, wanted, batch_size=batch_size)
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        analyzer(x, wanted, batch_size=batch_size)
        best = min(best, time.perf_counter() - start)
    expected, timing = reference(model, x, wanted, preset=preset)
    difference = max(
        float(np.abs(native[g] - expected[g]).max() / max(np.abs(native[g]).max(), 1e-30)) for g in native
    )
    heatmaps = batch_size * classes
    return {
        "device": device_name(),
        "backend": keras.backend.backend(),
        "native": {"heatmaps_per_s": heatmaps / best, "first_call_s": first},
        "innvestigate": {"heatmaps_per_s": heatmaps / timing["analyze_s"], "first_call_s": timing["build_s"]},
        "max_relative_difference": difference,
    }
