"""The benchmarks: their timing arithmetic with an injected clock, their real code paths at
tiny sizes with injected measurements, and the tables the commands print."""

import os
import statistics
import tempfile

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import TINY
from keras_mlrs import data, models
from keras_mlrs.cli.main import app
from keras_mlrs.explain import fold_batchnorm
from keras_mlrs.study import bench
from keras_mlrs.study.bench import common
from keras_mlrs.study.bench import data as bench_data_module
from keras_mlrs.study.bench import explain as bench_explain_module

runner = CliRunner()


class Clock:
    """A fake ``time.perf_counter``: each call returns the next of ``ticks``."""

    def __init__(self, ticks):
        self.ticks = iter(ticks)

    def __call__(self):
        return next(self.ticks)


def test_interleave_takes_turns_and_divides_by_repeats():
    calls = []
    times = common.interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=2, repeats=2,
                              clock=Clock([0, 4, 4, 10, 10, 12, 12, 20]))
    assert calls == ["a", "a", "b", "b", "a", "a", "b", "b"]
    assert times == {"a": [2.0, 1.0], "b": [3.0, 4.0]}
    assert common.paired_ratio([2.0, 1.0], [3.0, 4.0]) == statistics.median([2 / 3, 1 / 4])


def test_bench_losses_times_each_loss_against_bce():
    # bce's timed steps take 2 s, sparsemax's 3 s, in both rounds
    rows = bench.bench_losses(names=["sparsemax"], batch_size=16, features=8, hidden=8, rounds=2, steps_per_round=1,
                              clock=Clock([0, 2, 2, 5, 5, 7, 7, 10]))
    assert [r["loss"] for r in rows] == ["bce", "sparsemax"]
    assert rows[0]["step_ms"] == 2000 and rows[0]["ratio"] == 1.0
    assert rows[1]["step_ms"] == 3000 and rows[1]["ratio"] == 1.5


def test_bench_data_measures_every_contender_on_real_data(tmp_path):
    def loader_rate(path, batch_size, epochs=1, limit=None, shuffle=False, pipeline="tf.data"):
        rate = {"prepared": 400.0, "official": 100.0, "archive": 20.0}[path.name] / (2 if shuffle else 1)
        return rate * (0.9 if pipeline == "numpy" else 1)

    result = bench.bench_data(patches=50, batch_size=16, rounds=1, workdir=tmp_path, loader_rate=loader_rate,
                              peak_rss=lambda archive, out: 100.0 if archive.name == "archive" else 130.0)
    assert result["load_patches_per_s"] == {"ours": 400.0, "official": 100.0, "raw": 20.0, "ours_shuffled": 200.0,
                                            "official_shuffled": 50.0, "numpy_shuffled": 180.0}
    ratios = result["ratios"]
    assert ratios["numpy_vs_tf_data_shuffled"] == pytest.approx(0.9)
    assert (ratios["load_vs_official"], ratios["load_vs_raw"], ratios["load_shuffled_vs_official_shuffled"]) == (
        4.0, 20.0, 4.0)
    assert ratios["prepare_memory_4x_vs_1x"] == pytest.approx(1.3)
    assert result["prepare_patches_per_s"]["ours"] > 0 and result["prepare_patches_per_s"]["rasterio"] > 0
    assert ratios["prepare_vs_rasterio"] > 0
    # the official-format copy the loader is timed on holds the archive's 50 patches; a given
    # work folder is kept, for later runs
    assert sum(1 for _ in data.load(tmp_path / "official", "train", batch_size=1, shuffle=False)) == 50
    assert result["workdir"] == str(tmp_path)


def test_loader_rate_reads_the_whole_split(prepared):
    assert bench_data_module.loader_rate(prepared, batch_size=2) > 0
    assert bench_data_module.loader_rate(prepared, batch_size=2, shuffle=True, pipeline="numpy") > 0


def test_bench_explain_compares_the_engines_with_an_injected_reference(monkeypatch):
    # The reference answers the native engine's own heatmaps, scaled by 1 + 1e-6 (tracing a
    # second LRP of the K-Branch CNN would double the test's cost), so the reported
    # difference must be 1e-6 and the reference's timings pass through.
    seen = []

    class Recording(bench_explain_module.LRP):
        def __call__(self, *args, **kwargs):
            seen.append(super().__call__(*args, **kwargs))
            return seen[-1]

    monkeypatch.setattr(bench_explain_module, "LRP", Recording)

    def reference(model, x, classes, preset):
        assert classes == [0, 1] and preset == "lrp.epsilon" and x[next(iter(x))].shape[0] == 1
        return {g: r * (1 + 1e-6) for g, r in seen[0].items()}, {"build_s": 1.0, "analyze_s": 2.0}

    result = bench.bench_explain(batch_size=1, classes=2, rounds=1, reference=reference, model_params={"units": 128})
    assert len(seen) == 2  # the first call and one timed round
    assert result["innvestigate"] == {"heatmaps_per_s": 1.0, "first_call_s": 1.0}
    assert result["native"]["heatmaps_per_s"] > 0
    # the work of one call: every kernel layer's multiply-adds, forward once per patch and
    # transposed once per heatmap (1 patch, 2 classes: 3 times the model's), two FLOP each
    model = fold_batchnorm(models.kbranch_cnn(units=128))
    macs = sum(int(np.prod(layer.output.shape[1:])) * int(np.prod(layer.kernel.shape[:-1]))
               for layer in model.layers if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense))
    assert result["native"]["gflop_per_call"] == pytest.approx(2 * 3 * macs / 1e9)
    assert result["peak_gflop_per_s"] > 0 and 0 < result["fraction_of_peak"]
    assert result["max_relative_difference"] == pytest.approx(1e-6, rel=0.05)  # float32 rounding of the scaled copy


def test_bench_train_measures_compute_and_input_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where its temporary work folder goes
    result = bench.bench_train(batch_size=4, steps=1, rounds=1, model_params=TINY)
    assert list(tmp_path.iterdir()) == []  # no work folder given: its temporary one is removed
    assert result["parameters"] == models.get("kbranch", **TINY).count_params()
    assert result["compute_patches_per_s"] > 0 and result["loader_patches_per_s"] > 0
    assert 0 <= result["input_wait_share"] < 1


def test_the_bench_commands_print_their_tables(monkeypatch):
    monkeypatch.setattr(bench, "bench_losses", lambda **kw: [
        {"loss": "bce", "step_ms": 10.0, "ratio": 1.0}, {"loss": "sparsemax", "step_ms": 12.5, "ratio": 1.25}])
    result = runner.invoke(app, ["bench", "losses", "--loss", "sparsemax"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "12.5" in result.output and "1.250x" in result.output
    numbers = {"prepare_patches_per_s": {"ours": 300.0, "rasterio": 100.0},
               "load_patches_per_s": {"ours": 4000.0, "official": 1000.0, "raw": 200.0, "ours_shuffled": 3000.0,
                                      "official_shuffled": 500.0, "numpy_shuffled": 2700.0},
               "prepare_peak_rss_mib": {"1x": 100.0, "4x": 120.0},
               "ratios": {"prepare_vs_rasterio": 3.0, "load_vs_official": 4.0, "load_vs_raw": 20.0,
                          "load_shuffled_vs_official_shuffled": 6.0, "prepare_memory_4x_vs_1x": 1.2,
                          "numpy_vs_tf_data_shuffled": 0.9},
               "workdir": "/tmp/x"}
    monkeypatch.setattr(bench, "bench_data", lambda **kw: numbers)
    result = runner.invoke(app, ["bench", "data"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for row, ratio in (("vs rasterio", "3.0x"), ("vs official int64", "4.0x"), ("vs raw archive", "20.0x"),
                       ("vs official, shuffle buffer", "6.0x"), ("peak memory", "1.20x"),
                       ("numpy pipeline", "0.90x")):
        line = next(line for line in result.output.splitlines() if row in line)
        assert ratio in line, line
    monkeypatch.setattr(bench, "bench_explain", lambda **kw: {
        "device": "CPU", "backend": "tensorflow", "native": {"heatmaps_per_s": 30.0, "first_call_s": 2.0,
                                                             "gflop_per_call": 9.5, "gflop_per_s": 170.0},
        "innvestigate": {"heatmaps_per_s": 10.0, "first_call_s": 5.0}, "max_relative_difference": 1e-6,
        "peak_gflop_per_s": 200.0, "fraction_of_peak": 0.85})
    result = runner.invoke(app, ["bench", "explain"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "3.0x" in result.output and "1.00e-06" in result.output
    assert "170 GFLOP/s" in result.output and "200 GFLOP/s" in result.output and "85 %" in result.output
    seen = {}
    monkeypatch.setattr(bench, "bench_train", lambda **kw: seen.update(kw) or {
        "backend": "tensorflow", "device": "CPU", "batch_size": 4, "parameters": 16_524_115, "compute_step_s": 0.5,
        "compute_patches_per_s": 8.0, "loader_step_s": 1.0, "loader_patches_per_s": 4.0, "input_wait_share": 0.5})
    result = runner.invoke(app, ["bench", "train", "--batch-size", "4", "--model-param", "units=128"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "50.0 %" in result.output and "8.0" in result.output and "16,524,115" in result.output
    assert seen["model_params"] == {"units": 128}


def test_replicate_sample_makes_distinct_patches(tmp_path):
    archive = common.replicate_sample(tmp_path / "a", 7)
    names = sorted(p.name for p in archive.iterdir())
    assert len(names) == 7 and len(set(names)) == 7
    assert all(len(list((archive / n).glob("*.tif"))) == 12 for n in names)


@pytest.mark.backend_free  # the command runs in its own process
def test_a_terminated_benchmark_removes_its_work_folder(tmp_path):
    """SIGTERM (timeout, docker stop, a scheduler) ends a command as an error does: its
    temporary folder goes, and it exits with 143."""
    import signal
    import subprocess
    import sys
    import time

    from helpers import MLRS

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", MLRS, "bench", "data", "--patches", "2000", "--rounds", "3"],
                            env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.startswith("mlrs-bench-data-") for p in tmp.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
            time.sleep(0.05)
        time.sleep(0.5)  # into the work
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143
    assert not any(p.name.startswith("mlrs-") for p in tmp.iterdir()), list(tmp.iterdir())
