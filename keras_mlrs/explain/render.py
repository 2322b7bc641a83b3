"""Drawing and writing explanations: the study's figure (the RGB composite beside one
heatmap per class, one row per model, as in its Tables 6.5–6.8), LRP during training
(Tables 6.12–6.13) and the files of ``mlrs explain``.

:func:`save` writes four files per explanation:

* ``<name>_lrp.png`` and ``<name>_lrp.pdf``: :func:`heatmap_figure` of it (PNG at 300 dpi,
  and the vector copy);
* ``<name>_lrp.npy``: ``float32 [classes, 120, 120, 12]``, the relevance of every band on
  the 10 m grid (stacked band order, see :data:`keras_mlrs.bigearthnet.STACKED_BANDS`);
  summing the last axis gives the heatmaps;
* ``<name>_lrp.tif``: a GeoTIFF with one float32 band per class (the heatmaps), in the
  input's CRS and transform when it is georeferenced.

The figures and the GeoTIFF show the heatmaps of the explanation's band set (RGB by
default, as in the study); the ``.npy`` keeps every band.

Heatmaps use a diverging blue–white–red map centred at zero (red: evidence for the class,
blue: evidence against) on one symmetric scale shared by every panel of a figure, from
minus to plus the largest absolute relevance of them all, with one colour bar labelled
"LRP relevance"; ``per_panel_scale=True`` scales each panel to its own largest absolute
relevance instead, with a colour bar each. Every row of a figure shows the same classes.
The RGB composite is B04, B03, B02 with one linear stretch between the 2nd and 98th
percentiles of the three bands' values together
(:data:`~keras_mlrs.explain.heatmaps.RGB_STRETCH`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_mlrs.data.tiff import write_geotiff
from keras_mlrs.explain.heatmaps import RGB_STRETCH_LABEL
from keras_mlrs.files import FigureFiles, atomic_output, pyplot, save_figure, wrap_text

#: The diverging colour map of every heatmap (white at zero on a symmetric scale).
COLOUR_MAP = "bwr"
#: The label of the heatmaps' colour bars.
COLOUR_BAR_LABEL = "LRP relevance"


def colour_limits(heatmaps, per_panel: bool = False) -> list[float]:
    """The limit ``L`` of the symmetric colour scale ``[-L, L]`` of each of ``heatmaps``:
    the largest absolute relevance of them all (one scale shared by every panel), or of
    each one (``per_panel``); 1 for a scale whose heatmaps are zero everywhere."""
    peaks = [float(np.abs(h).max()) if np.size(h) else 0.0 for h in heatmaps]
    if not per_panel:
        peaks = [max(peaks, default=0.0)] * len(peaks)
    return [p or 1.0 for p in peaks]


def _title_lines(title: str, width: int) -> str:
    """``title`` in lines of at most ``width`` characters, a long line broken after its
    first ": " when both halves fit (the subject, then the runs), else at spaces."""
    lines = []
    for line in title.split("\n"):
        head, sep, rest = line.partition(": ")
        if len(line) > width and sep and len(head) < width and len(rest) <= width:
            lines += [head + ":", rest]
        else:
            lines.append(wrap_text(line, width))
    return "\n".join(lines)


def _grid(cells, row_labels, column_titles, rgb_rows, title, note, per_panel_scale, path) -> FigureFiles:
    """Draw one row per entry of ``cells`` (lists of ``(heatmap, caption)`` or None for a
    panel left empty), each after the RGB composite of ``rgb_rows``, and save it."""
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter  # with pyplot, on its backend

    columns = 1 + len(column_titles)
    width = 2.35 * columns + (0.7 * len(column_titles) if per_panel_scale else 1.0)
    fig, axes = plt.subplots(len(cells), columns, figsize=(width, 2.6 * len(cells) + 1.2), squeeze=False,
                             layout="constrained")
    limits = iter(colour_limits([cell[0] for row in cells for cell in row if cell is not None], per_panel_scale))
    short = FuncFormatter(lambda value, _: f"{value:.2g}")
    images, drawn, bars = [], [], []
    for r, (row, axs, rgb, label) in enumerate(zip(cells, axes, rgb_rows, row_labels)):
        axs[0].imshow(rgb, interpolation="nearest")
        axs[0].set_ylabel(label, fontsize=9)
        if r == 0:
            axs[0].set_title("RGB composite\n" + wrap_text(RGB_STRETCH_LABEL, 24), fontsize=8.5)
        drawn.append([])
        for ax, cell, heading in zip(axs[1:], row, column_titles):
            if r == 0:
                ax.set_title(heading, fontsize=9)
            if cell is None:
                ax.text(0.5, 0.5, "not explained", ha="center", va="center", fontsize=8, color="0.4",
                        transform=ax.transAxes)
                ax.set_frame_on(False)
                drawn[-1].append(None)
                continue
            heat, caption = cell
            limit = next(limits)
            image = ax.imshow(heat, cmap=COLOUR_MAP, vmin=-limit, vmax=limit, interpolation="nearest")
            ax.set_xlabel(caption, fontsize=8)
            images.append(image)
            drawn[-1].append(tuple(float(v) for v in image.get_clim()))
            if per_panel_scale:
                bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
                bar.ax.tick_params(labelsize=6.5)
                bar.ax.yaxis.set_major_formatter(short)  # no offset text over the neighbouring panel
                bar.set_label(COLOUR_BAR_LABEL, fontsize=7)
                bars.append(bar.ax.get_ylabel())
        for ax in axs:
            ax.set_xticks([])
            ax.set_yticks([])
    if images and not per_panel_scale:
        heat_axes = [ax for axs in axes for ax in axs[1:]]
        bar = fig.colorbar(images[0], ax=heat_axes, shrink=min(0.9, 0.45 + 0.15 * len(cells)), aspect=25, pad=0.02)
        bar.set_label(COLOUR_BAR_LABEL, fontsize=9)
        bar.ax.tick_params(labelsize=7.5)
        bar.formatter.set_powerlimits((-2, 3))
        bars.append(bar.ax.get_ylabel())
    scale = ("each panel on its own symmetric scale" if per_panel_scale
             else "one symmetric colour scale shared by every panel")
    fig.supxlabel(wrap_text(f"red: evidence for the class, blue: against; {scale}" + (f"; {note}" if note else ""),
                        int(width * 16)), fontsize=8, color="0.25")
    fig.suptitle(_title_lines(title, int(width * 12)), fontsize=10.5)
    return save_figure(fig, path, title=title, info={
        "rows": list(row_labels), "columns": [c.replace("\n", " ") for c in column_titles], "limits": drawn,
        "colour_bars": bars, "per_panel_scale": per_panel_scale})


def heatmap_figure(explanations, path, title: str | None = None, per_panel_scale: bool = False) -> FigureFiles:
    """One row per explanation (the same patch, e.g. by several models): its RGB composite,
    then one heatmap per class. The columns are the classes of the explanations (in the
    order first explained), the same in every row; a class a row did not explain is left
    empty and says so. Every panel shares one symmetric colour scale unless
    ``per_panel_scale`` (see the module docstring). Written as PNG and PDF (see
    :func:`keras_mlrs.files.save_figure`).

    ``info``: ``{"rows": [row labels], "columns": [class names], "limits": [[(vmin, vmax) or
    None per column] per row], "colour_bars": [their labels], "per_panel_scale"}``.
    """
    explanations = list(explanations)
    classes = list(dict.fromkeys(c for e in explanations for c in e.classes))
    first = explanations[0]
    names = {c: n for e in explanations for c, n in zip(e.classes, e.class_names)}
    cells = []
    for e in explanations:
        maps = e.heatmaps
        row = []
        for c in classes:
            if c not in e.classes:
                row.append(None)
                continue
            i = e.classes.index(c)
            truth = "" if e.in_truth is None else ("in labels · " if e.in_truth[i] else "not in labels · ")
            decision = "predicted" if e.predicted[i] else "not predicted"
            row.append((maps[i], f"{truth}score {e.scores[i]:.3f}\n{decision}"))
        cells.append(row)
    models = ", ".join(dict.fromkeys(e.model for e in explanations))
    title = title or f"LRP ({first.preset}) of patch {first.patch} by {models}"
    return _grid(cells, [f"{e.model}\n{e.preset}" for e in explanations], [wrap_text(names[c], 22) for c in classes],
                 [e.rgb for e in explanations], title, f"heatmaps: relevance summed over the {first.bands_label}",
                 per_panel_scale, path)


def training_grid(rows: dict, epochs, path, title: str | None = None, per_panel_scale: bool = False) -> FigureFiles:
    """LRP during training (the thesis's Tables 6.12–6.13): one row per run, one column per
    epoch, each cell the heatmap of the same patch and class by that epoch's checkpoint.
    ``rows`` maps a run's name to its explanations in the order of ``epochs`` (each of one
    class). Every panel shares one symmetric colour scale unless ``per_panel_scale``, so a
    change of sign or strength from epoch to epoch, or from run to run, shows as it is.
    ``info`` as :func:`heatmap_figure`'s, with the epochs as columns."""
    first = next(iter(rows.values()))[0]
    cells = []
    for views in rows.values():
        cells.append([(v.heatmaps[0], f"score {v.scores[0]:.3f}\n{'predicted' if v.predicted[0] else 'not predicted'}")
                      for v in views])
    title = title or (f"{first.class_names[0]}: LRP ({first.preset}) during training, patch {first.patch}")
    return _grid(cells, [f"{name}\n{first.preset}" for name in rows], [f"epoch {e}" for e in epochs],
                 [first.rgb] * len(rows), title, f"heatmaps: relevance summed over the {first.bands_label}",
                 per_panel_scale, path)


def save(explanation, out_dir, name: str | None = None, title: str | None = None,
         per_panel_scale: bool = False) -> list[Path]:
    """Write ``<name>_lrp.png``, ``.pdf``, ``.npy`` and ``.tif`` of an
    :class:`~keras_mlrs.explain.heatmaps.Explanation` (see the module docstring) into
    ``out_dir``, each atomically; ``title`` and ``per_panel_scale`` go to
    :func:`heatmap_figure`. Returns the paths."""
    out_dir = Path(out_dir)
    stem = name or explanation.patch
    png, npy, tif = (out_dir / f"{stem}_lrp.{ext}" for ext in ("png", "npy", "tif"))
    figure = heatmap_figure([explanation], png, title=title, per_panel_scale=per_panel_scale)
    with atomic_output(npy) as tmp, open(tmp, "wb") as f:
        np.save(f, explanation.relevance.astype("float32"))
    write_geotiff(tif, np.moveaxis(explanation.heatmaps, 0, -1).astype("float32"), explanation.geo)
    return [*figure.paths, npy, tif]


__all__ = ["COLOUR_BAR_LABEL", "COLOUR_MAP", "colour_limits", "heatmap_figure", "save", "training_grid"]
