"""Drawing and writing explanations: the study's figure (the RGB composite beside one
heatmap per class, one row per model, as in its Tables 6.5–6.8) and the files of
``mlrs explain``.

:func:`save` writes three files per explanation:

* ``<name>_lrp.png``: :func:`heatmap_figure` of it;
* ``<name>_lrp.npy``: ``float32 [classes, 120, 120, 12]``, the relevance of every band on
  the 10 m grid (stacked band order, see :data:`keras_mlrs.bigearthnet.STACKED_BANDS`);
  summing the last axis gives the heatmaps;
* ``<name>_lrp.tif``: a GeoTIFF with one float32 band per class (the heatmaps), in the
  input's CRS and transform when it is georeferenced.

The PNG and the GeoTIFF show the heatmaps of the explanation's band set (RGB by default,
as in the study); the ``.npy`` keeps every band.

Heatmaps use a diverging blue–white–red map centred at zero (red: evidence for the class,
blue: evidence against), each scaled to its own largest absolute relevance; the RGB
composite is B04, B03, B02 with a 2–98 % stretch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_mlrs.data.tiff import write_geotiff
from keras_mlrs.files import atomic_output, pyplot, save_figure


def heatmap_figure(explanations, path, title: str | None = None) -> Path:
    """One row per explanation (same patch, e.g. several models): RGB, then each class."""
    plt = pyplot()
    columns = 1 + max(len(e.classes) for e in explanations)
    rows = len(explanations)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.9 * rows), squeeze=False)
    for row, e in zip(axes, explanations):
        row[0].imshow(e.rgb, interpolation="nearest")
        row[0].set_title(f"{e.patch}\nRGB (B04, B03, B02)", fontsize=7)
        row[0].set_ylabel(f"{e.model}\n{e.preset}\n{e.bands_label}", fontsize=7)
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
    return save_figure(fig, path)


def training_grid(rows: dict, epochs, path, title: str | None = None) -> Path:
    """LRP during training (the thesis's Tables 6.12–6.13): one row per run, one column per
    epoch, each cell the heatmap of the same patch and class by that epoch's checkpoint.
    ``rows`` maps a run's name to its explanations in the order of ``epochs`` (each of one
    class). A row shares one colour scale, so a change of sign or strength from epoch to
    epoch shows as it is."""
    plt = pyplot()
    first = next(iter(rows.values()))[0]
    columns = 1 + len(epochs)
    fig, axes = plt.subplots(len(rows), columns, figsize=(2.3 * columns + 0.6, 2.5 * len(rows)), squeeze=False)
    for row, (name, views) in zip(axes, rows.items()):
        row[0].imshow(first.rgb, interpolation="nearest")
        row[0].set_title(f"{first.patch}\nRGB (B04, B03, B02)", fontsize=7)
        row[0].set_ylabel(f"{name}\n{first.preset}\n{first.bands_label}", fontsize=7)
        limit = max(float(np.abs(v.heatmaps[0]).max()) for v in views) or 1.0
        for ax, epoch, view in zip(row[1:], epochs, views):
            image = ax.imshow(view.heatmaps[0], cmap="bwr", vmin=-limit, vmax=limit, interpolation="nearest")
            decision = "predicted" if view.predicted[0] else "not predicted"
            ax.set_title(f"epoch {epoch}\nscore {view.scores[0]:.3f} · {decision}", fontsize=7)
        bar = fig.colorbar(image, ax=list(row[1:]), fraction=0.02, pad=0.01)
        bar.ax.tick_params(labelsize=6)
        bar.set_label("relevance (row's scale)", fontsize=6)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title or f"{first.class_names[0]}: LRP during training ({first.bands_label})", fontsize=9)
    return save_figure(fig, path)


def save(explanation, out_dir, name: str | None = None) -> list[Path]:
    """Write ``<name>_lrp.png``, ``.npy`` and ``.tif`` of an
    :class:`~keras_mlrs.explain.heatmaps.Explanation` (see the module docstring) into
    ``out_dir``, each atomically. Returns the paths."""
    out_dir = Path(out_dir)
    stem = name or explanation.patch
    png, npy, tif = (out_dir / f"{stem}_lrp.{ext}" for ext in ("png", "npy", "tif"))
    heatmap_figure([explanation], png)
    with atomic_output(npy) as tmp, open(tmp, "wb") as f:
        np.save(f, explanation.relevance.astype("float32"))
    write_geotiff(tif, np.moveaxis(explanation.heatmaps, 0, -1).astype("float32"), explanation.geo)
    return [png, npy, tif]


__all__ = ["heatmap_figure", "save", "training_grid"]
