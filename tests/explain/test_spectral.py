"""Spectral relevance profiles: shares per class sum to 1, groups are the sums of their bands,
streaming equals one shot, band-group input equals the 10 m grid, hand-built relevance gives
the known answer under both weightings, the figure is written and labelled, bad input is
refused in one line."""

import json

import numpy as np
import pytest

from helpers import figure_title
from keras_mlrs.bigearthnet import CLASS_NAMES, GROUP_SIZES, GROUPS, STACKED_BANDS
from keras_mlrs.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError
from keras_mlrs.explain import spectral
from keras_mlrs.explain.heatmaps import to_10m_grid

pytestmark = pytest.mark.backends

SIZE = 120


def random_relevance(rng, patches=3, classes=2):
    """Relevance of mixed sign with band-dependent scales, so profiles are not uniform."""
    scale = rng.uniform(0.1, 2.0, len(STACKED_BANDS))
    shift = rng.uniform(-0.5, 0.5, len(STACKED_BANDS))
    return ((rng.normal(size=(patches, classes, SIZE, SIZE, len(STACKED_BANDS))) + shift) * scale).astype("float32")


def check_shares(result):
    for name, entry in result["per_class"].items():
        for sign in ("positive", "negative"):
            shares = entry[sign]
            assert list(shares) == list(STACKED_BANDS), name
            assert sum(shares.values()) == pytest.approx(1.0, abs=1e-12)
            assert min(shares.values()) >= 0
            groups = entry[f"{sign}_groups"]
            assert list(groups) == list(GROUPS)
            for group, bands in GROUPS.items():
                assert groups[group] == pytest.approx(sum(shares[b] for b in bands), abs=1e-12)
            assert sum(groups.values()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("weighting", spectral.WEIGHTINGS)
def test_shares_sum_to_one_and_groups_are_the_sums_of_their_bands(rng, weighting):
    relevance = random_relevance(rng)
    result = spectral.spectral_profile(relevance, [4, 11], weighting=weighting)
    assert list(result["per_class"]) == [CLASS_NAMES[4], CLASS_NAMES[11]]
    assert result["heatmaps"] == 6 and result["weighting"] == weighting
    assert result["bands"] == list(STACKED_BANDS) and result["groups"] == {g: list(b) for g, b in GROUPS.items()}
    check_shares(result)
    assert json.loads(json.dumps(result)) == result
    # relevance-weighted: the shares of the summed relevance, computed here directly in float64
    if weighting == "relevance":
        r = relevance[:, 1].astype("float64")
        positive = np.maximum(r, 0).sum(axis=(0, 1, 2))
        negative = -np.minimum(r, 0).sum(axis=(0, 1, 2))
        entry = result["per_class"][CLASS_NAMES[11]]
        np.testing.assert_allclose(list(entry["positive"].values()), positive / positive.sum(), rtol=1e-9)
        np.testing.assert_allclose(list(entry["negative"].values()), negative / negative.sum(), rtol=1e-9)
        assert entry["positive_total"] == pytest.approx(positive.sum(), rel=1e-9)
        assert entry["negative_total"] == pytest.approx(negative.sum(), rel=1e-9)


@pytest.mark.parametrize("weighting", spectral.WEIGHTINGS)
def test_streaming_equals_one_shot_and_selection_equals_leaving_heatmaps_out(rng, weighting):
    relevance = random_relevance(rng, patches=4, classes=3)
    classes = [0, 5, 18]
    selected = rng.uniform(size=(4, 3)) > 0.4
    selected[0] = True  # every class appears
    streaming = spectral.SpectralProfile(weighting)
    for r, keep in zip(relevance, selected):
        streaming.add(r[keep], [c for c, k in zip(classes, keep) if k])
    one_shot = spectral.spectral_profile(relevance, classes, selected=selected, weighting=weighting)
    assert streaming.heatmaps == int(selected.sum())
    result = streaming.result()
    assert result.keys() == one_shot.keys() and result["per_class"].keys() == one_shot["per_class"].keys()
    for name, entry in result["per_class"].items():
        for key, value in entry.items():
            if isinstance(value, dict):
                for band, share in value.items():
                    assert share == pytest.approx(one_shot["per_class"][name][key][band], abs=1e-12)
            else:
                assert value == pytest.approx(one_shot["per_class"][name][key], rel=1e-12)
    # a list of patches, each with its own classes, gives the same
    listed = spectral.spectral_profile([r[keep] for r, keep in zip(relevance, selected)],
                                       [[c for c, k in zip(classes, keep) if k] for keep in selected],
                                       weighting=weighting)
    assert listed["per_class"].keys() == result["per_class"].keys()
    for name in result["per_class"]:
        np.testing.assert_allclose(list(listed["per_class"][name]["positive"].values()),
                                   list(result["per_class"][name]["positive"].values()), rtol=1e-12)


def test_band_groups_at_their_resolution_give_the_profile_of_the_10m_grid(rng):
    groups = {g: rng.normal(size=(2, GROUP_SIZES[g], GROUP_SIZES[g], len(b))).astype("float32")
              for g, b in GROUPS.items()}
    grid = to_10m_grid(groups, "groups")
    a = spectral.spectral_profile([groups], [[2, 9]])
    b = spectral.spectral_profile(grid[None], [2, 9])
    for name in a["per_class"]:
        for key in ("positive", "negative", "positive_groups", "negative_groups"):
            np.testing.assert_allclose(list(a["per_class"][name][key].values()),
                                       list(b["per_class"][name][key].values()), rtol=1e-5)
        assert a["per_class"][name]["positive_total"] == pytest.approx(b["per_class"][name]["positive_total"],
                                                                      rel=1e-5)


def hand_built():
    """Two heatmaps of class 0 and one of class 18 whose profiles are known:
    patch 1, class 0: +3 in B04, +1 in B11, -2 in B01; patch 2, class 0: +4 in B03 (no
    negative relevance); class 18: -1 in B05, -1 in B06, -2 in B08, +5 in B09."""
    band = STACKED_BANDS.index
    first = np.zeros((2, SIZE, SIZE, 12), "float32")
    first[0, 3, 4, band("B04")] = 2.0
    first[0, 50, 60, band("B04")] = 1.0
    first[0, 7, 7, band("B11")] = 1.0
    first[0, 9, 9, band("B01")] = -2.0
    first[1, 0, 0, band("B05")] = -1.0
    first[1, 1, 1, band("B06")] = -1.0
    first[1, 2, 2, band("B08")] = -2.0
    first[1, 3, 3, band("B09")] = 5.0
    second = np.zeros((1, SIZE, SIZE, 12), "float32")
    second[0, 100, 100, band("B03")] = 4.0
    return [first, second], [[0, 18], [0]]


def nonzero(shares):
    return {b: v for b, v in shares.items() if v}


def test_hand_built_relevance_gives_the_known_profiles():
    relevance, classes = hand_built()
    result = spectral.spectral_profile(relevance, classes)
    urban, marine = result["per_class"]["Urban fabric"], result["per_class"]["Marine waters"]
    assert urban["heatmaps"] == 2 and marine["heatmaps"] == 1
    assert nonzero(urban["positive"]) == pytest.approx({"B04": 3 / 8, "B03": 4 / 8, "B11": 1 / 8})
    assert nonzero(urban["negative"]) == {"B01": 1.0}
    assert urban["positive_groups"] == pytest.approx({"b10m": 7 / 8, "b20m": 1 / 8, "b60m": 0.0})
    assert urban["negative_groups"] == {"b10m": 0.0, "b20m": 0.0, "b60m": 1.0}
    assert (urban["positive_total"], urban["negative_total"]) == (8.0, 2.0)
    assert nonzero(marine["positive"]) == {"B09": 1.0}
    assert nonzero(marine["negative"]) == pytest.approx({"B05": 0.25, "B06": 0.25, "B08": 0.5})
    assert marine["negative_groups"] == pytest.approx({"b10m": 0.5, "b20m": 0.5, "b60m": 0.0})

    # each heatmap weighs the same: the mean of (3/4 B04, 1/4 B11) and (1 B03); the second
    # heatmap has no negative relevance, so the negative profile is the first's alone
    mean = spectral.spectral_profile(relevance, classes, weighting="heatmap")["per_class"]["Urban fabric"]
    assert nonzero(mean["positive"]) == pytest.approx({"B04": 0.375, "B03": 0.5, "B11": 0.125})
    assert nonzero(mean["negative"]) == {"B01": 1.0}


def test_a_class_without_relevance_of_a_sign_has_no_shares_of_it():
    relevance = np.zeros((1, SIZE, SIZE, 12), "float32")
    relevance[0, 5, 5, 0] = 1.0
    entry = spectral.spectral_profile([relevance], [["Inland waters"]], class_names=None)["per_class"]["Inland waters"]
    assert entry["index"] == 17 and entry["positive"]["B04"] == 1.0
    assert set(entry["negative"].values()) == {None} and set(entry["negative_groups"].values()) == {None}
    named = spectral.spectral_profile([relevance], [[17]], class_names={17: "water"})
    assert list(named["per_class"]) == ["water"]


def test_the_profile_figure_labels_classes_bands_and_colour_bars(tmp_path):
    relevance, classes = hand_built()
    result = spectral.spectral_profile(relevance, classes)
    title = "Spectral relevance profiles: hand-built heatmaps"
    figure = spectral.profile_figure(result, tmp_path / "profile.png", title=title)
    assert figure.png == tmp_path / "profile.png" and figure.vector.exists()
    assert figure_title(figure.png) == title
    assert figure.info["classes"] == ["Urban fabric", "Marine waters"]
    assert figure.info["bands"] == list(STACKED_BANDS)
    assert figure.info["vmax"] == pytest.approx(1.0)
    assert figure.info["colour_bars"] == ["share of positive relevance (0–1)", "share of negative relevance (0–1)"]
    with pytest.raises(InvalidParameterError, match="no heatmap") as err:
        spectral.profile_figure(spectral.SpectralProfile().result(), tmp_path / "empty.png")
    assert "\n" not in str(err.value)


def test_bad_input_is_refused_in_one_line(rng):
    profile = spectral.SpectralProfile()
    good = np.zeros((2, SIZE, SIZE, 12), "float32")
    cases = [
        (lambda: profile.add(np.zeros((2, SIZE, SIZE, 11)), [0, 1]), ShapeMismatchError, "\\[classes, height, width, 12\\]"),
        (lambda: profile.add(good, [0]), ShapeMismatchError, "2 heatmap\\(s\\) but 1 class"),
        (lambda: profile.add(good, [0, 19]), InvalidParameterError, "class index 19 is out of range"),
        (lambda: profile.add(good, ["urban fabrik", 0]), Exception, "urban fabrik"),
        (lambda: profile.add({"b10m": good[..., :4]}, [0, 1]), ShapeMismatchError, "needs the groups"),
        (lambda: spectral.SpectralProfile("mean"), UnknownNameError, "unknown profile weighting 'mean'"),
        (lambda: spectral.spectral_profile(good, [0, 1]), ShapeMismatchError, "\\[patches, classes, height, width, 12\\]"),
        (lambda: spectral.spectral_profile(good[None], [0, 1], selected=np.ones((2, 2), bool)), ShapeMismatchError,
         "selected has 2 rows for 1 patches"),
        (lambda: spectral.spectral_profile(good[None], [0, 1], selected=np.ones((1, 3), bool)), ShapeMismatchError,
         "selected row 0 has 3 values for 2 classes"),
        (lambda: spectral.spectral_profile([good, good], [[0, 1]]), ShapeMismatchError, "1 lists for 2 patches"),
        (lambda: spectral.spectral_profile(good[None], [0, 1], class_names=["a"]), InvalidParameterError,
         "class_names names no class 1"),
    ]
    for call, kind, fragment in cases:
        with pytest.raises(kind, match=fragment) as err:
            call()
        assert "\n" not in str(err.value) and "--" not in str(err.value)
