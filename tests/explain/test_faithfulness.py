"""Region perturbation (pixel flipping) against answers known by construction: linear models
whose logit drops by exactly the relevance removed, the coarse groups' footprint rule by hand,
the blur against a matrix form, random orders by seed, batching, and refusals."""

import json
import math

import keras
import numpy as np
import pytest

from keras_mlrs.bigearthnet import (
    BAND_MEAN,
    BAND_STD,
    CLASS_NAMES,
    GROUP_SIZES,
    GROUPS,
    STACKED_BANDS,
)
from keras_mlrs.core.layers import BandNormalization
from keras_mlrs.errors import InvalidParameterError, MlrsError, ShapeMismatchError, UnknownNameError
from keras_mlrs.explain import lrp
from keras_mlrs.explain.faithfulness import (
    band_statistics,
    baseline_inputs,
    gaussian_blur,
    mean_curves,
    perturb,
    region_order,
    region_perturbation,
    region_relevance,
    summarise,
)
from keras_mlrs.explain.heatmaps import to_10m_grid

pytestmark = pytest.mark.backends

FACTOR = {g: 120 // GROUP_SIZES[g] for g in GROUPS}


def _stats(rng, bands):
    """Integer means (so the mean baseline is exact in uint16) and positive stds."""
    return rng.integers(400, 3000, len(bands)).astype(float), rng.uniform(200, 1500, len(bands))


def linear_stacked(rng):
    """uint16 [120, 120, 12] -> BandNormalization -> Flatten -> Dense(19, no bias); with its
    means, stds and kernel ``[120, 120, 12, 19]``."""
    mean, std = _stats(rng, STACKED_BANDS)
    inputs = keras.Input((120, 120, 12), dtype="uint16", name="bands")
    x = keras.layers.Flatten()(BandNormalization(STACKED_BANDS, mean=list(mean), std=list(std))(inputs))
    dense = keras.layers.Dense(19, use_bias=False, kernel_initializer="zeros")  # set below (random ones compile slowly on JAX)
    model = keras.Model(inputs, dense(x))
    w = rng.normal(0, 0.02, (120 * 120 * 12, 19)).astype("float32")
    dense.set_weights([w])
    return model, mean, std, w.astype("float64").reshape(120, 120, 12, 19)


def linear_groups(rng):
    """The band groups, each normalised and flattened, concatenated into Dense(19, no bias)."""
    inputs, flat, stats, kernels = {}, [], {}, {}
    for group, bands in GROUPS.items():
        s = GROUP_SIZES[group]
        inputs[group] = keras.Input((s, s, len(bands)), dtype="uint16", name=group)
        stats[group] = _stats(rng, bands)
        norm = BandNormalization(bands, mean=list(stats[group][0]), std=list(stats[group][1]))
        flat.append(keras.layers.Flatten()(norm(inputs[group])))
    dense = keras.layers.Dense(19, use_bias=False, kernel_initializer="zeros")  # set below (random ones compile slowly on JAX)
    model = keras.Model(inputs, dense(keras.layers.Concatenate()(flat)))
    sizes = [GROUP_SIZES[g] ** 2 * len(b) for g, b in GROUPS.items()]
    w = rng.normal(0, 0.02, (sum(sizes), 19)).astype("float32")
    dense.set_weights([w])
    parts = np.split(w.astype("float64"), np.cumsum(sizes)[:-1])
    for (group, bands), part in zip(GROUPS.items(), parts):
        kernels[group] = part.reshape(GROUP_SIZES[group], GROUP_SIZES[group], len(bands), 19)
    return model, stats, kernels


def conv_groups(seed):
    """A small convolutional model of the band groups, weights drawn by NumPy."""
    inputs, feats = {}, []
    for group, bands in GROUPS.items():
        s = GROUP_SIZES[group]
        inputs[group] = keras.Input((s, s, len(bands)), dtype="uint16", name=group)
        y = keras.layers.Conv2D(4, 3, padding="same", activation="relu", kernel_initializer="zeros")(
            BandNormalization(bands)(inputs[group]))
        feats.append(keras.layers.Flatten()(keras.layers.MaxPooling2D(2)(y)))
    model = keras.Model(inputs, keras.layers.Dense(19, kernel_initializer="zeros")(keras.layers.Concatenate()(feats)))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            fan_in = int(np.prod(layer.kernel.shape[:-1]))
            layer.set_weights([rng.normal(0, np.sqrt(2 / fan_in), layer.kernel.shape).astype("float32"),
                               rng.normal(0, 0.05, layer.bias.shape).astype("float32")])
    return model


def reference_region_sums(r10, region):
    """Region sums by explicit slicing (region row by row), ``[classes, regions]``."""
    per = 120 // region
    out = np.zeros((r10.shape[0], per * per))
    for p in range(per):
        for q in range(per):
            out[:, p * per + q] = r10[:, p * region:(p + 1) * region, q * region:(q + 1) * region].sum(axis=(1, 2, 3))
    return out


def reference_curve(f0, sums, order, steps):
    """``f(x_0)`` minus the relevance of the first ``ceil(k n / L)`` regions of ``order``."""
    n = len(sums)
    return np.array([f0 - sums[list(order[: math.ceil(k * n / steps)])].sum() for k in range(steps + 1)])


def check_curves(result, relevance_per_patch, classes, region, steps, rng_seeds):
    """Every curve of ``result`` against the float64 reference, with AOPC and the ordering."""
    items = iter(result.items)
    for i, (r10, cls) in enumerate(zip(relevance_per_patch, classes)):
        sums = reference_region_sums(r10, region)
        for j, c in enumerate(cls):
            item = next(items)
            assert (item["patch"], item["class"]) == (i, c)
            f0 = r10[j].sum()
            scale = np.abs(r10[j]).sum() * 2e-5 + 1e-4
            morf = sorted(range(len(sums[j])), key=lambda k: (-sums[j][k], k))
            lerf = sorted(range(len(sums[j])), key=lambda k: (sums[j][k], k))
            assert lerf == morf[::-1]  # no ties in continuous relevance
            expected = {"morf": reference_curve(f0, sums[j], morf, steps),
                        "lerf": reference_curve(f0, sums[j], lerf, steps)}
            for order, curve in expected.items():
                np.testing.assert_allclose(item[order], curve, rtol=0, atol=scale)
                assert item[f"aopc_{order}"] == pytest.approx(np.mean(curve[0] - curve), abs=scale)
            assert len(item["random"]) == len(rng_seeds)
            for seed, curve in zip(rng_seeds, item["random"]):
                perm = np.random.default_rng(seed).permutation(len(sums[j]))
                np.testing.assert_allclose(curve, reference_curve(f0, sums[j], perm, steps), rtol=0, atol=scale)
                # the most relevant regions first remove the most, pointwise
                assert np.all(np.asarray(item["morf"]) <= np.asarray(curve) + scale)
                assert np.all(np.asarray(curve) <= np.asarray(item["lerf"]) + scale)
            assert item["aopc_morf"] >= item["aopc_random"] >= item["aopc_lerf"]
            assert item["aopc_random"] == pytest.approx(np.mean(item["aopc_random_seeds"]))


def test_linear_stacked_model_drops_by_exactly_the_relevance_removed(rng):
    model, mean, std, w = linear_stacked(rng)
    x = np.clip(mean + rng.integers(-400, 400, (2, 120, 120, 12)), 0, None).astype("uint16")
    z = (x.astype("float64") - mean) / std
    classes = [[1, 7], [4]]
    relevance = [w[..., cls].transpose(3, 0, 1, 2) * z[i][None] for i, cls in enumerate(classes)]  # LRP-0 of a linear model
    for i, cls in enumerate(classes):  # the engine agrees
        got = lrp(model, x[i : i + 1], cls, preset="lrp.z")[0]
        np.testing.assert_allclose(got, relevance[i], rtol=1e-3, atol=1e-5 * np.abs(relevance[i]).max())
        order = region_order(region_relevance(relevance[i], 4)[0], "morf")
        sums = reference_region_sums(relevance[i], 4)[0]
        assert list(order) == sorted(range(900), key=lambda k: (-sums[k], k))
    seeds = (0, 5)
    result = region_perturbation(model, x, relevance, classes, random_seeds=seeds, batch_size=96)
    assert (result.steps, result.region, result.n_regions, len(result.fractions)) == (25, 4, 900, 26)
    assert result.fractions[0] == 0 and result.fractions[-1] == 1 and result.fractions[1] == 36 / 900
    # the logit of a bias-free linear model is the sum of its LRP-0 relevance; float32 sums of
    # 172,800 terms in another order (another backend, another batch size) differ by ~1e-8 of
    # the terms' absolute sum
    terms = [relevance[0][0], relevance[0][1], relevance[1][0]]
    for item, t in zip(result.items, terms):
        assert item["logit"] == pytest.approx(t.sum(), abs=1e-7 * np.abs(t).sum())
    check_curves(result, relevance, classes, 4, 25, seeds)
    # one random sequence per seed serves both classes of patch 0: 2 + (2 C + seeds) (L - 1) per patch
    assert result.timing["forward_passes"] == 2 * 2 + (2 * 3 + 2 * 2) * 24
    assert result.timing["passes_per_second"] > 0 and result.timing["seconds"] >= result.timing["forward_seconds"]


@pytest.mark.parametrize("seed", [0, 1])
def test_linear_groups_model_footprints_act_in_proportion_to_area(seed):
    """4 x 4 regions do not tile the 6 x 6 footprint of a 60 m pixel; with inputs a multiple
    of 36 from the mean, the blend is exact in uint16 and the logit still drops by exactly
    the 10 m-grid relevance of the regions removed."""
    rng = np.random.default_rng(seed)
    model, stats, kernels = linear_groups(rng)
    n = 2
    x, z = {}, {}
    for group in GROUPS:
        mean, std = stats[group]
        shape = (n, GROUP_SIZES[group], GROUP_SIZES[group], len(GROUPS[group]))
        x[group] = (mean + 36 * rng.integers(-10, 11, shape)).astype("uint16")
        z[group] = (x[group] - mean) / std
    classes = [[2], [0, 9]]
    relevance = []
    for i, cls in enumerate(classes):
        parts = []
        for group in GROUPS:
            r = kernels[group][..., cls].transpose(3, 0, 1, 2) * z[group][i][None]
            f = FACTOR[group]
            parts.append(np.repeat(np.repeat(r, f, axis=1), f, axis=2) / f**2)
        relevance.append(np.concatenate(parts, axis=-1))
        np.testing.assert_allclose(relevance[i].sum(axis=(1, 2, 3)), np.asarray(model.predict_on_batch(
            {g: v[i : i + 1] for g, v in x.items()}))[0, cls], rtol=0, atol=2e-5 * np.abs(relevance[i]).sum())
    got = lrp(model, {g: v[1:] for g, v in x.items()}, classes[1], preset="lrp.z")
    np.testing.assert_allclose(to_10m_grid({g: v[0] for g, v in got.items()}, "groups"), relevance[1],
                               rtol=1e-3, atol=1e-5 * np.abs(relevance[1]).max())
    result = region_perturbation(model, x, relevance, classes, steps=10, random_seeds=(3,), batch_size=64)
    check_curves(result, relevance, classes, 4, 10, (3,))


def test_footprint_rule_by_hand():
    patch = {"b10m": np.full((120, 120, 4), 500, "uint16"), "b20m": np.full((60, 60, 6), 1001, "uint16"),
             "b60m": np.full((20, 20, 2), 1000, "uint16")}
    base = {"b10m": np.full((120, 120, 4), -50.0), "b20m": np.zeros((60, 60, 6)), "b60m": np.full((20, 20, 2), 100.0)}
    mask = np.zeros((120, 120), bool)
    mask[4:8, 4:8] = True  # one 4 x 4 region: a 2 x 2 block of 20 m pixels, a quarter of four 60 m pixels' ninth
    mask[10, 13] = True  # one 10 m pixel: a quarter of 20 m pixel (5, 6)
    out = perturb(patch, mask, base, "groups")
    assert {g: v.shape for g, v in out.items()} == {g: (1, *v.shape) for g, v in patch.items()}
    assert all(v.dtype == np.uint16 for v in out.values())
    b10 = out["b10m"][0]
    assert (b10[mask] == 0).all() and (b10[~mask] == 500).all()  # -50 clipped to 0
    b20 = out["b20m"][0]
    assert (b20[2:4, 2:4] == 0).all() and (b20[5, 6] == 751).all()  # 0.75 * 1001 = 750.75
    untouched = np.ones((60, 60), bool)
    untouched[2:4, 2:4] = untouched[5, 6] = False
    assert (b20[untouched] == 1001).all()
    b60 = out["b60m"][0]
    assert (b60[:2, :2] == 900).all()  # 4 of 36 footprint pixels: 8/9 * 1000 + 1/9 * 100
    assert b60[1, 2, 0] == 975  # the single pixel is 1 of 36 of 60 m pixel (1, 2): 35/36 * 1000 + 100/36
    untouched = np.ones((20, 20), bool)
    untouched[:2, :2] = untouched[1, 2] = False
    assert (b60[untouched] == 1000).all()
    high = perturb(patch, mask, {**base, "b60m": np.full((20, 20, 2), 70000.0)}, "groups")["b60m"][0]
    assert high[0, 0, 0] == round(8 / 9 * 1000 + 1 / 9 * 70000)
    assert (perturb(patch, np.ones((120, 120), bool), {**base, "b60m": np.full((20, 20, 2), 70000.0)},
                    "groups")["b60m"] == 65535).all()


def test_footprint_rule_on_random_masks(rng):
    patch = {g: rng.integers(0, 5000, (GROUP_SIZES[g], GROUP_SIZES[g], len(b))).astype("uint16") for g, b in GROUPS.items()}
    base = {g: rng.uniform(-100, 6000, v.shape) for g, v in patch.items()}
    masks = rng.random((3, 120, 120)) < rng.uniform(0.05, 0.6, (3, 1, 1))
    out = perturb(patch, masks, base, "groups")
    for group, f in FACTOR.items():
        s = GROUP_SIZES[group]
        share = np.zeros((3, s, s))
        for da in range(f):  # the footprint's pixels, one offset at a time
            for db in range(f):
                share += masks[:, da::f, db::f] / f**2
        for k in range(3):
            for a, b in ((0, 0), (s - 1, s - 1), (s // 2, 1), *rng.integers(0, s, (40, 2))):
                value = (1 - share[k, a, b]) * patch[group][a, b].astype(float) + share[k, a, b] * base[group][a, b]
                np.testing.assert_array_equal(out[group][k, a, b], np.clip(np.rint(value), 0, 65535))
            value = (1 - share[k, ..., None]) * patch[group] + share[k, ..., None] * base[group]
            np.testing.assert_array_equal(out[group][k], np.clip(np.rint(value), 0, 65535))
    stacked = rng.integers(0, 5000, (120, 120, 12)).astype("uint16")
    sbase = rng.uniform(0, 6000, stacked.shape)
    got = perturb(stacked, masks, sbase, "stacked")
    np.testing.assert_array_equal(got, np.where(masks[..., None], np.rint(sbase)[None], stacked[None]))


def test_blur_equals_its_matrix_form_and_keeps_constants(rng):
    for size, sigma in ((20, 2.0), (60, 3.0), (12, 1.3)):
        image = rng.uniform(0, 4000, (size, size, 3))
        radius = math.ceil(4 * sigma)
        taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        taps /= taps.sum()
        matrix = np.zeros((size, size))
        for i in range(size):
            for t, weight in zip(range(-radius, radius + 1), taps):
                j = i + t
                j = -j - 1 if j < 0 else (2 * size - j - 1 if j >= size else j)  # mirrored edge
                matrix[i, j] += weight
        expected = np.einsum("ij,jkb,lk->ilb", matrix, image, matrix)
        np.testing.assert_allclose(gaussian_blur(image, sigma), expected, rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(gaussian_blur(np.full((size, size, 2), 7.0), sigma), 7.0)


def test_baselines_mean_from_the_model_noise_seeded(rng):
    model, mean, std, _ = linear_stacked(rng)
    got_mean, got_std = band_statistics(model)
    assert [got_mean[b] for b in STACKED_BANDS] == list(mean) and [got_std[b] for b in STACKED_BANDS] == pytest.approx(std)
    inputs = keras.Input((120, 120, 12), dtype="uint16")
    default = keras.Model(inputs, keras.layers.Dense(19, kernel_initializer="zeros")(BandNormalization(STACKED_BANDS)(inputs)))
    assert band_statistics(default) == (BAND_MEAN, BAND_STD)
    x = rng.integers(0, 4000, (120, 120, 12)).astype("uint16")
    stats = band_statistics(model)
    np.testing.assert_array_equal(baseline_inputs(x, "stacked", "mean", stats=stats), np.broadcast_to(mean, x.shape))
    noise = baseline_inputs(x, "stacked", "noise", stats=stats, noise_seed=(4, 1))
    assert ((noise >= mean - 2 * std) & (noise <= mean + 2 * std)).all()
    np.testing.assert_allclose(noise.mean(axis=(0, 1)), mean, atol=0.05 * 4 * std.max())
    np.testing.assert_array_equal(noise, baseline_inputs(x, "stacked", "noise", stats=stats, noise_seed=(4, 1)))
    assert not np.array_equal(noise, baseline_inputs(x, "stacked", "noise", stats=stats, noise_seed=(5, 1)))
    groups = {g: rng.integers(0, 4000, (GROUP_SIZES[g], GROUP_SIZES[g], len(b))).astype("uint16") for g, b in GROUPS.items()}
    blurred = baseline_inputs(groups, "groups", "blur", blur_sigma=1.5)
    for g in GROUPS:  # each group on its own grid
        np.testing.assert_allclose(blurred[g], gaussian_blur(groups[g], 1.5))


@pytest.mark.parametrize("baseline", ["blur", "noise"])
def test_linear_model_with_other_baselines(baseline):
    """With any baseline ``b``, a linear model's logit drops by ``w (x - round(b)) / std``
    summed over the pixels perturbed."""
    rng = np.random.default_rng(11)
    model, mean, std, w = linear_stacked(rng)
    x = np.clip(mean + rng.integers(-600, 600, (2, 120, 120, 12)), 0, None).astype("uint16")
    stats = band_statistics(model)
    result = region_perturbation(model, x, [np.zeros((1, 120, 120, 12))] * 2, [[3], [3]], region=10, steps=6,
                                 baseline=baseline, random_seeds=(1,), blur_sigma=1.5, noise_seed=7)
    for i in range(2):
        b = baseline_inputs(x[i], "stacked", baseline, stats=stats, blur_sigma=1.5, noise_seed=(7, i))
        b = np.clip(np.rint(b), 0, 65535)
        drop = w[..., 3] * (x[i] - b) / std
        sums = reference_region_sums(drop[None], 10)[0]
        f0 = (w[..., 3] * (x[i] - mean) / std).sum()
        item = result.items[i]
        scale = np.abs(drop).sum() * 2e-5 + 1e-4
        # all-zero relevance: every order falls back to region order
        np.testing.assert_allclose(item["morf"], reference_curve(f0, sums, range(144), 6), atol=scale, rtol=0)
        np.testing.assert_allclose(item["lerf"], item["morf"], atol=scale, rtol=0)
        perm = region_order(144, "random", seed=1)
        np.testing.assert_allclose(item["random"][0], reference_curve(f0, sums, perm, 6), atol=scale, rtol=0)


def test_orders_ties_and_random_seeds():
    scores = [1.0, 2.0, 2.0, 0.0, 2.0]
    assert list(region_order(scores, "morf")) == [1, 2, 4, 0, 3]
    assert list(region_order(scores, "lerf")) == [3, 0, 1, 2, 4]
    a, b, c = (region_order(900, "random", seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert sorted(a) == list(range(900)) and not np.array_equal(a, c)
    with pytest.raises(InvalidParameterError, match="seed"):
        region_order(900, "random")
    with pytest.raises(UnknownNameError, match="perturbation order"):
        region_order(scores, "best")


def test_batching_does_not_change_results_and_summaries(patches):
    model = conv_groups(3)
    x = {g: v[:2] for g, v in patches.items()}
    classes = [[0, 3], [5]]
    rng = np.random.default_rng(2)  # relevance in the structure `lrp` returns (its values do not matter here)
    both = {g: rng.normal(size=(2, 3, *v.shape[1:])) for g, v in x.items()}
    grid = [to_10m_grid({g: v[i] for g, v in both.items()}, "groups") for i in range(2)]
    relevance = [grid[0][:2], grid[1][2:]]
    settings = {"region": 20, "steps": 6, "random_seeds": (0, 1)}
    small = region_perturbation(model, x, relevance, classes, batch_size=5, **settings)
    large = region_perturbation(model, x, relevance, classes, batch_size=128, **settings)
    assert small.timing["forward_passes"] == large.timing["forward_passes"] == 2 * 2 + (2 * 3 + 2 * 2) * 5
    for a, b in zip(small.items, large.items):
        assert (a["patch"], a["class"]) == (b["patch"], b["class"])
        for order in ("morf", "lerf", "random"):
            np.testing.assert_allclose(a[order], b[order], rtol=1e-4, atol=1e-4)
        assert a["morf"][0] == pytest.approx(a["lerf"][0]) and a["morf"][-1] == pytest.approx(a["random"][1][-1])
    # the relevance as `lrp` returns it, the same classes for every patch
    from_dict = {(it["patch"], it["class"]): it for it in region_perturbation(model, x, both, [0, 3, 5], **settings).items}
    for item in large.items:
        np.testing.assert_allclose(from_dict[item["patch"], item["class"]]["morf"], item["morf"], rtol=1e-5, atol=1e-5)

    summary = summarise(large)
    json.dumps(summary), json.dumps(large.to_dict())
    assert list(summary["per_class"]) == [CLASS_NAMES[0], CLASS_NAMES[3], CLASS_NAMES[5]]
    first = summary["per_class"][CLASS_NAMES[0]]
    assert first["patches"] == 1 and first["aopc_lrp"] == pytest.approx(large.items[0]["aopc_morf"])
    mean = summary["mean"]
    assert (mean["patches"], mean["pairs"]) == (2, 3)
    for key, item_key in (("aopc_lrp", "aopc_morf"), ("aopc_random", "aopc_random"), ("aopc_lerf", "aopc_lerf")):
        assert mean[key] == pytest.approx(np.mean([it[item_key] for it in large.items]))
    curves = mean_curves(large.to_dict())
    assert set(curves) == {"morf", "lerf", "random"} and all(len(c) == 7 for c in curves.values())
    assert np.mean(curves["morf"]) == pytest.approx(mean["aopc_lrp"]) and curves["morf"][0] == 0
    assert np.mean(curves["random"]) == pytest.approx(mean["aopc_random"])
    assert summary == summarise(large.to_dict())


def test_bad_parameters_are_one_line_errors():
    model, mean, _, _ = linear_stacked(np.random.default_rng(0))
    x = np.broadcast_to(mean, (1, 120, 120, 12)).astype("uint16")
    relevance = np.zeros((1, 1, 120, 120, 12))
    cases = [
        ({"baseline": "median"}, UnknownNameError, "baseline"),
        ({"region": 7}, InvalidParameterError, "region"),
        ({"region": 0}, InvalidParameterError, "region"),
        ({"region": 4.0}, InvalidParameterError, "region"),
        ({"steps": 0}, InvalidParameterError, "steps"),
        ({"steps": 901}, InvalidParameterError, "steps"),
        ({"region": 60, "steps": 5}, InvalidParameterError, "steps"),
        ({"batch_size": 0}, InvalidParameterError, "batch_size"),
        ({"blur_sigma": -1.0}, InvalidParameterError, "blur_sigma"),
        ({"random_seeds": (-1,)}, InvalidParameterError, "seed"),
        ({"random_seeds": (2, 2)}, InvalidParameterError, "random_seeds"),
        ({"relevance": np.zeros((1, 1, 60, 60, 12))}, ShapeMismatchError, "relevance"),
        ({"relevance": np.zeros((1, 2, 120, 120, 12))}, ShapeMismatchError, "relevance"),
        ({"relevance": np.zeros((2, 1, 120, 120, 12))}, ShapeMismatchError, "relevance"),
        ({"relevance": np.full((1, 1, 120, 120, 12), np.nan)}, InvalidParameterError, "not finite"),
        ({"classes": [[0], [1]]}, ShapeMismatchError, "classes"),
        ({"classes": [40]}, InvalidParameterError, "out of range"),
        ({"inputs": np.zeros((1, 60, 60, 12), "uint16")}, ShapeMismatchError, "stacked bands"),
    ]
    for params, kind, fragment in cases:
        args = {"inputs": x, "relevance": relevance, "classes": [0]}
        args.update({k: params.pop(k) for k in list(params) if k in args})
        with pytest.raises(kind) as caught:
            region_perturbation(model, args["inputs"], args["relevance"], args["classes"], **params)
        message = str(caught.value)
        assert isinstance(caught.value, MlrsError) and "\n" not in message and "--" not in message
        assert fragment in message, (params, message)
