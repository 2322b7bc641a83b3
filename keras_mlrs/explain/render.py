"""Figures of explanations: the RGB composite beside one heatmap per class, one row per
model, as in the study's LRP tables (Tables 6.5–6.8).

Heatmaps use a diverging blue–white–red map centred at zero (red: evidence for the class,
blue: evidence against), each scaled to its own largest absolute relevance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_mlrs.plots import _pyplot, _save


def heatmap_figure(explanations, path, title: str | None = None) -> Path:
    """One row per explanation (same patch, e.g. several models): RGB, then each class."""
    plt = _pyplot()
    columns = 1 + max(len(e.classes) for e in explanations)
    rows = len(explanations)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.9 * rows), squeeze=False)
    for row, e in zip(axes, explanations):
        row[0].imshow(e.rgb, interpolation="nearest")
        row[0].set_title(f"{e.patch}\nRGB (B04, B03, B02)", fontsize=7)
        row[0].set_ylabel(f"{e.model}\n{e.preset}", fontsize=8)
        for i, ax in enumerate(row[1:]):
            if i >= len(e.classes):
                ax.axis("off")
                continue
            heat = e.heatmaps[i]
            limit = float(np.abs(heat).max()) or 1.0
            image = ax.imshow(heat, cmap="bwr", vmin=-limit, vmax=limit, interpolation="nearest")
            ax.set_title(e.title(i), fontsize=7)
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=5)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return Path(path)
