"""The command line's static description of the registries is the registries, and lets
`mlrs train --help` and a mistyped name answer without loading Keras."""

import subprocess
import sys

from helpers import MLRS
from keras_mlrs import models
from keras_mlrs.cli import registry
from keras_mlrs.core import losses


def test_the_static_registry_equals_the_real_ones():
    from keras_mlrs import runs
    from keras_mlrs.core import decision
    from keras_mlrs.explain import composites, heatmaps

    assert registry.LOSSES == {name: losses.spec(name).hyperparameters for name in losses.names()}
    assert list(registry.MODELS) == models.names()
    assert list(registry.PRESETS) == composites.PRESETS.names()
    assert list(registry.DECISIONS) == decision.names()
    assert registry.THRESHOLDS == runs.THRESHOLDS and registry.OBJECTIVES == runs.OBJECTIVES == decision.OBJECTIVES
    assert list(registry.BAND_SETS) == list(heatmaps.BAND_SETS)


def test_train_help_a_mistyped_name_and_a_missing_path_answer_without_keras():
    watch = ("import atexit, sys; atexit.register(lambda: print('HEAVY', sorted(m for m in ('keras', 'tensorflow', "
             "'jax') if m in sys.modules)))\n")
    for args, code, text in ((["train", "--help"], 0, "--pair-reduction"),
                             (["train", "--loss", "focall", "--data", "sample"], 1, "Did you mean 'focal'?"),
                             (["explain", "p.tif", "--model", "m", "--class", "urban"], 1, "'Urban fabric'"),
                             (["explain", "p.tif", "--model", "m", "-c", "0", "--preset", "lrp.eps"], 1, "lrp.epsilon"),
                             (["compare", "r", "--bands", "rgbn"], 1, "unknown band set 'rgbn'"),
                             (["evaluate", "r", "--decision", "sigmod"], 1, "Did you mean 'sigmoid'?"),
                             (["evaluate", "no-run"], 1, "no-run does not exist; give a run directory"),
                             (["explain", "p.tif", "--model", "hf://o/m", "-c", "0"], 1, "p.tif does not exist; give patch"),
                             (["train", "--data", "no-data"], 1, "no-data does not exist; give the path of BigEarthNet"),
                             (["push", "no-run", "--repo", "o/m"], 1, "no-run does not exist; give a run directory"),
                             (["calibrate", "--help"], 0, "--objective"),
                             (["calibrate", "r", "--objective", "sample_f1"], 1, "Did you mean 'sample-f1'?"),
                             (["evaluate", "r", "--thresholds", "calibrate"], 1, "Did you mean 'calibrated'?")):
        out = subprocess.run([sys.executable, "-c", watch + MLRS, *args], capture_output=True, text=True,
                             env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, timeout=60)
        assert out.returncode == code, out.stderr[-2000:]
        assert text in out.stdout + out.stderr
        assert "HEAVY []" in out.stdout, out.stdout[-500:]
