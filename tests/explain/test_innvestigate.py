"""The native LRP engine against iNNvestigate 2.1.2, the study's library: K-Branch CNN and a
residual CNN, every preset, random weights, real sample patches; in float32 and float64."""

import contextlib
import hashlib
import os
from pathlib import Path

import keras
import numpy as np
import pytest
from filelock import FileLock

from helpers import (
    BACKEND,
    TEST_CACHE,
    float64_mode,
    mlp,
    relative_difference,
    residual_net,
    small_kbranch,
)
from keras_mlrs import data
from keras_mlrs.errors import InvalidParameterError
from keras_mlrs.explain import LRP, bridge, fold_batchnorm, lrp
from keras_mlrs.explain.bridge import run_many

pytestmark = pytest.mark.backends


AGREEMENT_PRESETS = [
    "lrp.z", "lrp.epsilon", "lrp.alpha_1_beta_0", "lrp.alpha_2_beta_1", "lrp.z_plus",
    "lrp.sequential_preset_a", "lrp.sequential_preset_b", "lrp.sequential_preset_a_flat",
]
#: presets with an alpha-beta rule that counts the bias, where iNNvestigate puts the whole
#: bias into both denominators (our full_bias=True)

FULL_BIAS = {"lrp.alpha_1_beta_0", "lrp.alpha_2_beta_1", "lrp.sequential_preset_a", "lrp.sequential_preset_b",
             "lrp.sequential_preset_a_flat"}

CLASSES = [0, 11, 18]
#: presets where iNNvestigate's bias placement (the whole bias in both the activator's and
#: the inhibitor's denominator) is ill-conditioned: with beta > 0 the inhibitor's sum of
#: negative contributions plus a positive bias can pass through zero, and iNNvestigate does
#: not stabilise it. In float32 the two engines then differ where a denominator nearly
#: cancels (measured on 8 patches: within 1e-4 on 5, 1e-4 to 9e-4 on 2, 1.4e-2 on one), so
#: they are compared in float64, where every heatmap agrees to about 1e-12.

ILL_CONDITIONED = {"lrp.alpha_2_beta_1", "lrp.sequential_preset_b"}
#: compared in float64: the ill-conditioned presets (lrp.epsilon, well conditioned, is
#: compared in float32 above and on the residual CNN)

FLOAT64_PRESETS = sorted(ILL_CONDITIONED)
#: the patches compared in float64 (of the 8 the float32 tests compare)
FLOAT64_PATCHES = 4
#: compared on the residual CNN in float32 (well conditioned there), under both backends:
#: with the K-Branch presets above, every preset of each backend's engine meets iNNvestigate
RESIDUAL_PRESETS = ["lrp.epsilon", *sorted(ILL_CONDITIONED)]

def _dtype(case) -> str:
    return "float64" if case[0].endswith("float64") else "float32"


#: Where iNNvestigate's relevance is kept between runs of the suite: outside the clone (a
#: fresh clone on a machine that computed it once reuses it, as uv reuses its downloads), each
#: file named by a digest of everything the relevance depends on: the preset, classes and
#: dtype, the weights and inputs, the exporting and analysing code (the bridge and its worker
#: script) and the versions of iNNvestigate, TensorFlow and tf-keras. Computing it takes about
#: 100 s of both cores (11 analyzer builds of 8-13 s each).
REFERENCE_CACHE = TEST_CACHE / "innvestigate"


def _reference_digest():
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for path in (bridge.WORKER, Path(bridge.__file__)):
        digest.update(path.read_bytes())
    for dist in ("innvestigate", "tf-keras", "tensorflow-cpu", "tensorflow"):
        try:
            digest.update(f"{dist}=={version(dist)};".encode())
        except PackageNotFoundError:
            digest.update(f"{dist} absent;".encode())
    return digest


@contextlib.contextmanager
def _every_core():
    """The workers started inside may run on every core, even where tests/run.sh pins this
    process's lane to one."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count()))
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)


@pytest.fixture(scope="module")
def innvestigate_reference(patches):
    """iNNvestigate's relevance for every agreement case, from two worker processes. The
    results are cached on disk (:data:`REFERENCE_CACHE`, under a lock), so the TensorFlow and
    JAX runs of the suite share one computation, and later runs reuse it."""
    stacked = np.concatenate(
        [data.read_patch(p).stacked()[None] for p in sorted(data.sample_path().iterdir()) if p.is_dir()][:3]
    )
    # Flat areas of the real patches give exactly tied maxima in the residual net's
    # overlapping max pooling; which tied unit wins then hangs on the last bit of the
    # normalisation's rounding, which the two engines compute differently (measured: 7 %
    # of the heatmap's max at one tied window out of 11,637). 0-2 DN of noise breaks the ties.
    stacked = stacked + np.random.default_rng(0).integers(0, 3, stacked.shape).astype("uint16")
    kbranch = fold_batchnorm(small_kbranch(0))
    cases = {("kbranch", p): (kbranch, patches, p) for p in AGREEMENT_PRESETS if p not in ILL_CONDITIONED}
    for p in FLOAT64_PRESETS:
        cases[("kbranch-float64", p)] = (kbranch, patches, p)
    for p in RESIDUAL_PRESETS:
        cases[("residual", p)] = (residual_net(2), stacked, p)
    cache = REFERENCE_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    code = _reference_digest()
    paths = {}
    for key, (model, x, preset) in cases.items():
        digest = code.copy()
        digest.update(preset.encode() + repr(CLASSES).encode() + _dtype(key).encode())
        for w in model.get_weights():
            digest.update(np.ascontiguousarray(w).tobytes())
        for a in keras.tree.flatten(x):
            digest.update(np.ascontiguousarray(a).tobytes())
        paths[key] = cache / f"{digest.hexdigest()[:32]}.npz"
    with FileLock(cache / "lock"):  # the suite of the other backend may be computing them right now
        missing = [key for key, path in paths.items() if not path.exists()]
        if missing:
            # Two workers: the other backend's suite waits on the lock meanwhile, so its core
            # would otherwise idle for the whole computation (about 100 s of analyzer builds).
            with float64_mode(), _every_core():  # float64_mode: the bridge normalises float64 cases so
                computed = run_many([(cases[k][0], cases[k][1], CLASSES, cases[k][2], {"dtype": _dtype(k)})
                                     for k in missing], processes=2)
            for key, (relevance, _) in zip(missing, computed):
                relevance = relevance if isinstance(relevance, dict) else {"bands": relevance}
                partial = paths[key].with_suffix(".partial")  # whole files only, should this run be killed
                with open(partial, "wb") as f:
                    np.savez(f, **relevance)
                os.replace(partial, paths[key])
    results = {}
    for key, path in paths.items():
        with np.load(path) as npz:
            results[key] = {k: npz[k] for k in npz.files}
    return {key: (cases[key][0], cases[key][1], results[key]) for key in cases}


@pytest.mark.parametrize("preset", [p for p in AGREEMENT_PRESETS if p not in ILL_CONDITIONED])
def test_native_engine_agrees_with_innvestigate_on_kbranch(preset, innvestigate_reference):
    """float32, every heatmap (patch x class x resolution group) within 1e-4 relative.
    Measured (TensorFlow): 3e-7 to 1e-5. A wrong rule differs by O(1) on every patch."""
    model, x, reference = innvestigate_reference[("kbranch", preset)]
    params = {"full_bias": True} if preset in FULL_BIAS else {}
    native = lrp(model, x, CLASSES, preset=preset, **params)
    for group in native:
        assert np.abs(reference[group]).max() > 0
        for i in range(len(native[group])):
            for c in range(len(CLASSES)):
                assert relative_difference(native[group][i, c], reference[group][i, c]) <= 1e-4, (group, i, c)

@pytest.mark.skipif(BACKEND == "jax", reason="K-Branch in float64 is TensorFlow's check: XLA's CPU backend takes "
                    "~11 s to compile each float64 alpha-beta relevance function; the JAX engine meets iNNvestigate "
                    "on these presets on the residual CNN")
@pytest.mark.parametrize("preset", FLOAT64_PRESETS)
def test_in_float64_the_engines_agree_on_every_heatmap(preset, innvestigate_reference):
    """Both engines in float64 (weights and normalised bands alike): every heatmap agrees to
    1e-10, on the ill-conditioned presets too. So the engines compute the same function;
    their float32 differences there are rounding, amplified where a denominator nearly
    cancels. Measured (TensorFlow): at most 8.4e-13 (lrp.epsilon: 3e-14)."""
    model, x, reference = innvestigate_reference[("kbranch-float64", preset)]
    params = {"full_bias": True} if preset in FULL_BIAS else {}
    # the first four patches: the question (do the engines compute the same function?) needs
    # no more
    x = {group: array[:FLOAT64_PATCHES] for group, array in x.items()}
    with float64_mode():
        native = lrp(model, x, CLASSES, preset=preset, dtype="float64", **params)
    for group in native:
        assert native[group].dtype == np.float64 and reference[group].dtype == np.float64
        for i in range(len(native[group])):
            for c in range(len(CLASSES)):
                assert relative_difference(native[group][i, c], reference[group][i, c]) <= 1e-10, (group, i, c)

def test_float64_on_jax_without_64_bit_mode_is_refused_in_one_line():
    model = mlp(0)
    if keras.backend.backend() == "jax":
        with pytest.raises(InvalidParameterError, match="needs 64-bit mode; set JAX_ENABLE_X64=1"):
            LRP(model, dtype="float64")
        with pytest.raises(InvalidParameterError, match="needs 64-bit mode; set JAX_ENABLE_X64=1"):
            run_many([(model, np.ones((1, 10)), 0, "lrp.epsilon", {"dtype": "float64"})])
    else:
        assert LRP(model, dtype="float64")(np.ones((1, 10)), 0).dtype == np.float64
    with pytest.raises(InvalidParameterError, match="float32 or float64, not 'float16'"):
        LRP(model, dtype="float16")

@pytest.mark.parametrize("preset", ["lrp.alpha_1_beta_0", "lrp.alpha_2_beta_1"])
def test_alpha_beta_bias_placements_agree_without_bias(preset, patches):
    """Without bias, the default placement (each bias part on the paths of its sign) equals
    iNNvestigate's (the whole bias in both halves, ``full_bias=True``, which the tests above
    check against iNNvestigate itself). The two alpha-beta rules of every preset that has one
    (the sequential presets put them on their convolutions)."""
    model = fold_batchnorm(small_kbranch(1, zero_bias=True))
    same_sign = lrp(model, patches, CLASSES, preset=preset)
    full = lrp(model, patches, CLASSES, preset=preset, full_bias=True)
    for group in same_sign:
        assert np.abs(full[group]).max() > 0
        assert relative_difference(same_sign[group], full[group]) <= 1e-5, group

def test_the_bias_placement_matters_when_there_is_a_bias(innvestigate_reference):
    """Our default placement against iNNvestigate's (in float64): far more apart than any
    rounding of the float32 native engine."""
    model, x, reference = innvestigate_reference[("kbranch-float64", "lrp.alpha_2_beta_1")]
    same_sign = lrp(model, x, CLASSES, preset="lrp.alpha_2_beta_1")
    assert relative_difference(same_sign["b10m"], reference["b10m"]) > 1e-3

@pytest.mark.parametrize("preset", RESIDUAL_PRESETS)
def test_native_engine_agrees_with_innvestigate_on_a_residual_cnn(preset, innvestigate_reference):
    model, x, reference = innvestigate_reference[("residual", preset)]
    native = lrp(model, x, CLASSES, preset=preset, **({"full_bias": True} if preset in FULL_BIAS else {}))
    assert relative_difference(native, reference["bands"]) <= 1e-4
