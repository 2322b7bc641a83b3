"""The heatmap figures: one symmetric colour scale shared by every panel (per panel only
when asked), a labelled colour bar, the same classes in every row, the documented RGB
stretch; each written as a 300 dpi PNG and a PDF with its title. Explanations are made
by hand: what is drawn does not depend on how relevance was computed."""

import numpy as np
import pytest

from helpers import figure_title
from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.explain import heatmaps, render
from keras_mlrs.explain.heatmaps import Explanation


def explanation(model, classes, peak, seed=0):
    rng = np.random.default_rng(seed)
    relevance = rng.uniform(-1, 1, (len(classes), 120, 120, 12)).astype("float32")
    relevance[..., :3] *= peak / np.abs(relevance[..., :3].sum(-1)).max(axis=(1, 2))[:, None, None, None]
    return Explanation(patch="P", model=model, preset="lrp.epsilon", engine="native", classes=list(classes),
                       relevance=relevance, scores=[0.5] * len(classes), predicted=[True] * len(classes),
                       in_truth=None, rgb=np.zeros((120, 120, 3)))


def test_every_panel_shares_one_symmetric_scale_and_every_row_the_same_classes(tmp_path):
    """Two models far apart in relevance, one of which explained another class: the columns
    are the classes of both, the class a row did not explain is left empty, and every
    drawn panel has the scale of the largest absolute relevance of all."""
    small, large = explanation("bce", [0, 11], 0.01), explanation("sparsemax", [11, 18], 5.0, seed=1)
    peak = max(float(np.abs(e.heatmaps).max()) for e in (small, large))
    figure = render.heatmap_figure([small, large], tmp_path / "lrp.png", title="LRP of P: bce, sparsemax (final epoch 2)")
    assert figure_title(figure.png) == "LRP of P: bce, sparsemax (final epoch 2)"
    assert figure.info["columns"] == [CLASS_NAMES[0], CLASS_NAMES[11], CLASS_NAMES[18]]
    assert figure.info["limits"] == [[(-peak, peak), (-peak, peak), None], [None, (-peak, peak), (-peak, peak)]]
    assert figure.info["colour_bars"] == [render.COLOUR_BAR_LABEL] == ["LRP relevance"]


def test_lrp_during_training_gets_a_scale_per_panel_only_when_asked(tmp_path):
    """One row per run, one column per epoch; with ``per_panel_scale`` each panel has its own
    symmetric scale and colour bar (the shared scale is the default, as above: one drawing
    code for both figures)."""
    rows = {"bce": [explanation("bce", [18], p) for p in (0.1, 0.2)],
            "sparsemax": [explanation("sparsemax", [18], p) for p in (0.3, 4.0)]}
    figure = render.training_grid(rows, [1, 2], tmp_path / "grid.png", per_panel_scale=True)
    assert figure.info["columns"] == ["epoch 1", "epoch 2"] and figure.info["rows"][1].startswith("sparsemax")
    peaks = [[float(np.abs(v.heatmaps).max()) for v in views] for views in rows.values()]
    assert figure.info["limits"] == [[(-p, p) for p in row] for row in peaks]
    assert peaks[1][1] == pytest.approx(4.0) and figure.info["colour_bars"] == ["LRP relevance"] * 4
    assert "Marine waters: LRP (lrp.epsilon) during training, patch P" == figure_title(figure.png)


def test_the_rgb_composite_is_the_documented_joint_percentile_stretch():
    patch = heatmaps.example_patch()
    rgb = heatmaps.rgb_composite(patch)
    b10 = patch.groups["b10m"][..., :3].astype("float64")
    low, high = np.percentile(b10, heatmaps.RGB_STRETCH)
    np.testing.assert_allclose(rgb, np.clip((b10 - low) / (high - low), 0, 1))
    assert heatmaps.RGB_STRETCH == (2, 98) and "2–98 % stretch" in heatmaps.RGB_STRETCH_LABEL
