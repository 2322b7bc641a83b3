"""Benchmarks: commands that print numbers, run on demand (``mlrs bench ...``); see
:mod:`~.common` for how they time."""

from keras_mlrs.study.bench.data import bench_data
from keras_mlrs.study.bench.explain import bench_explain
from keras_mlrs.study.bench.losses import bench_losses
from keras_mlrs.study.bench.train import bench_train

__all__ = ["bench_data", "bench_explain", "bench_losses", "bench_train"]
