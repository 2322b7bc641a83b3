"""Figures of the study: learning curves (its Figure 6.2) and per-class F1 bars (Figure 6.1).

Drawn with matplotlib's non-interactive Agg backend and written atomically as PNG.
"""

from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.files import pyplot, save_figure


def learning_curve(history, path, best_epoch: int | None = None, title: str = "Validation F1 per epoch"):
    """Validation F1 (micro, macro, samples) against the epoch, from ``history`` rows
    (dicts with ``epoch`` and ``val_f1_*``); the best epoch is marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    epochs = [row["epoch"] for row in history]
    for average in ("samples", "micro", "macro"):
        key = f"val_f1_{average}"
        ax.plot(epochs, [row.get(key, float("nan")) for row in history], marker="o" if len(epochs) < 30 else None,
                markersize=3, label=f"F1 ({average})")
    if best_epoch:
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best (epoch {best_epoch})")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation F1")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    save_figure(fig, path)


def learning_curves(histories: dict, path, key: str = "val_f1_samples", target: float | None = None,
                    title: str = "Validation F1 per epoch"):
    """One line per run of ``histories`` (name -> history rows) for the metric ``key``, with
    an optional horizontal line at ``target`` (the study's Figure 6.2)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    longest = max((len(h) for h in histories.values()), default=0)
    for name, history in histories.items():
        ax.plot([row["epoch"] for row in history], [row.get(key, float("nan")) for row in history],
                marker="o" if longest < 30 else None, markersize=3, label=name)
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", label=f"target {target:g}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key.replace("val_", "validation ").replace("_", " "))
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)


def per_class_f1(reports: dict, path, title: str = "F1 per class"):
    """Grouped horizontal bars of per-class F1, one group per class and one bar per entry
    of ``reports`` (name -> a report from :func:`keras_mlrs.runs.evaluation.evaluate`)."""
    plt = pyplot()
    n = len(reports)
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(CLASS_NAMES) * max(1, n) ** 0.5 + 1.5))
    height = 0.8 / n
    for i, (name, report) in enumerate(reports.items()):
        values = [report["per_class"][c]["f1"] for c in CLASS_NAMES]
        ax.barh([k + i * height for k in range(len(CLASS_NAMES))], values, height=height, label=name)
    ax.set_yticks([k + 0.4 - height / 2 for k in range(len(CLASS_NAMES))], CLASS_NAMES, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    if n > 1:
        ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)
