"""Figures of runs and of the study: learning curves (its Figure 6.2) and per-class F1 bars
(Figure 6.1).

Drawn with matplotlib's non-interactive Agg backend. Each figure is written atomically as
PNG (300 dpi) and as PDF beside it (:func:`keras_mlrs.files.save_figure`), titled with the
run(s), split and checkpoint it shows, and returned as :class:`~keras_mlrs.files.FigureFiles`
whose ``info`` says what was drawn.
"""

import math

from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.core.metrics import STUDY_AVERAGES
from keras_mlrs.errors import choose
from keras_mlrs.files import FigureFiles, pyplot, save_figure, wrap_text

#: How the learning curves draw the two splits.
TRAINING_STYLE, VALIDATION_STYLE = "--", "-"


def run_colours(plt, n: int) -> list:
    """One colour per run: matplotlib's ten, or twenty for more runs."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _values(history, key) -> list[float]:
    return [float(row[key]) if row.get(key) is not None else math.nan for row in history]


def _epochs_sentence(histories: dict, best_epochs: dict) -> str:
    if len(histories) == 1:
        (name, history), = histories.items()
        last = history[-1]["epoch"] if history else 0
        best = best_epochs.get(name)
        return f"model: final epoch {last}" + (f" (best on validation: epoch {best})" if best else "")
    return "each run's model: its final epoch"


def learning_curves(histories: dict, path, average: str = "samples", target: float | None = None,
                    best_epochs: dict | None = None, title: str | None = None) -> FigureFiles:
    """Loss (left) and F1 under ``average`` (right) per epoch, on the training split (dashed)
    and the validation split (solid), for every run of ``histories`` (name -> history rows
    as in ``state.json``: ``epoch``, ``loss``, ``val_loss``, ``f1_<average>``,
    ``val_f1_<average>``); one colour per run, named in the legend. ``best_epochs`` (name ->
    epoch) marks each run's best validation epoch with a star; ``target`` draws the
    learning-efficiency target F1 as a dotted line (the study's Figure 6.2 reads 0.55 off
    it). Series a history lacks (training F1 of runs older than that column) are left out.
    The loss axis is logarithmic when the losses span more than a factor of ten (losses
    differ in scale from one another).

    ``info``: ``{"runs", "series": {run: [drawn series keys]}, "target", "loss_scale"}``.
    """
    choose("average", average, STUDY_AVERAGES)
    plt = pyplot()
    from matplotlib.lines import Line2D  # with pyplot, on its backend

    best_epochs = {k: v for k, v in (best_epochs or {}).items() if v}
    fig, (loss_ax, f1_ax) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    longest = max((len(h) for h in histories.values()), default=0)
    marker = "o" if longest < 30 else None
    drawn, losses = {}, []
    for colour, (name, history) in zip(run_colours(plt, len(histories)), histories.items()):
        epochs = [row["epoch"] for row in history]
        drawn[name] = []
        for ax, keys in ((loss_ax, ("loss", "val_loss")), (f1_ax, (f"f1_{average}", f"val_f1_{average}"))):
            for key, style in zip(keys, (TRAINING_STYLE, VALIDATION_STYLE)):
                values = _values(history, key)
                if not any(math.isfinite(v) for v in values):
                    continue
                ax.plot(epochs, values, linestyle=style, color=colour, marker=marker, markersize=3.5,
                        fillstyle="none" if style == TRAINING_STYLE else "full", linewidth=1.6)
                drawn[name].append(key)
                if ax is loss_ax:
                    losses += [v for v in values if math.isfinite(v)]
        best = best_epochs.get(name)
        if best in epochs:
            value = _values(history, f"val_f1_{average}")[epochs.index(best)]
            f1_ax.plot([best], [value], marker="*", markersize=13, color=colour, markeredgecolor="black",
                       markeredgewidth=0.6, linestyle="none", zorder=5, clip_on=False)
    if target is not None:
        f1_ax.axhline(target, color="0.35", linestyle=":", linewidth=1.3)
    log = bool(losses) and min(losses) > 0 and max(losses) / min(losses) > 10
    if log:
        loss_ax.set_yscale("log")
    for ax, label in ((loss_ax, "loss" + (" (log scale)" if log else "")), (f1_ax, f"F1 ({average})")):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    loss_ax.set_title("loss", fontsize=10)
    f1_ax.set_title(f"F1 ({average})", fontsize=10)
    f1_ax.set_ylim(-0.02, 1.02)

    runs = [Line2D([], [], color=c, linewidth=2.5, label=n) for c, n in zip(run_colours(plt, len(histories)), histories)]
    fig.legend(handles=runs, loc="outside right upper", fontsize=9, frameon=False, title="run", title_fontsize=9)
    handles = [Line2D([], [], color="black", linestyle=TRAINING_STYLE, marker=marker, fillstyle="none",
                      label="training split"),
               Line2D([], [], color="black", linestyle=VALIDATION_STYLE, marker=marker, label="validation split")]
    if best_epochs:
        handles.append(Line2D([], [], color="white", marker="*", markersize=12, markerfacecolor="0.6",
                              markeredgecolor="black", label="best validation epoch"))
    if target is not None:
        handles.append(Line2D([], [], color="0.35", linestyle=":", label=f"target F1 ({average}) {target:g}"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9, frameon=False)
    names = ", ".join(histories)
    title = title or (f"Learning curves of {names}\ntraining and validation splits, every epoch; "
                      f"{_epochs_sentence(histories, best_epochs)}")
    fig.suptitle("\n".join(wrap_text(line, 120) for line in title.split("\n")), fontsize=11)
    return save_figure(fig, path, title=title, info={
        "runs": list(histories), "series": drawn, "target": target, "loss_scale": "log" if log else "linear"})


def learning_curve(history, path, best_epoch: int | None = None, run: str = "run", average: str = "samples",
                   title: str | None = None) -> FigureFiles:
    """:func:`learning_curves` of one run (named ``run``), its best validation epoch marked:
    the ``learning_curve.png`` of a run directory and of a model card."""
    return learning_curves({run: history}, path, average=average, best_epochs={run: best_epoch}, title=title)


def _support_table(support) -> dict | None:
    if support is None:
        return None
    if isinstance(support, dict):
        return {c: int(support[c]) for c in CLASS_NAMES}
    return dict(zip(CLASS_NAMES, map(int, support)))


def per_class_f1(reports: dict, path, train_support=None, title: str | None = None) -> FigureFiles:
    """F1 per class as grouped horizontal bars, one bar per entry of ``reports`` (name -> a
    report of :func:`keras_mlrs.runs.evaluation.evaluate`), as the study's Figure 6.1.

    Classes are ordered by ``train_support`` (patches per class in the training split: a
    dict by class name or a sequence in nomenclature order), most first, else by the
    reports' own (test) support; each class is annotated with both supports. A class with
    no patch in a report's split has no F1 and gets no bar: it is marked "no test patch".

    ``info``: ``{"classes": [drawn order], "ordered_by", "no_test_patch": [classes marked
    for every report], "support_labels"}``.
    """
    plt = pyplot()
    names = list(reports)
    train = _support_table(train_support)
    test = {n: {c: int(r["per_class"][c]["support"]) for c in CLASS_NAMES} for n, r in reports.items()}
    ordered_by = "training support" if train else "test support"
    key = train or test[names[0]]
    order = sorted(CLASS_NAMES, key=lambda c: (-key[c], CLASS_NAMES.index(c)))
    splits = {r.get("split") for r in reports.values()}
    split = splits.pop() if len(splits) == 1 and None not in splits else None
    split_word = split or "evaluated"

    n = len(names)
    per_class = 0.28 + 0.16 * n
    fig, ax = plt.subplots(figsize=(9.5, per_class * len(CLASS_NAMES) + 1.9), layout="constrained")
    height = 0.82 / n
    empty = []
    for i, (name, colour) in enumerate(zip(names, run_colours(plt, n))):
        ys, values = [], []
        for pos, c in enumerate(order):
            y = pos - 0.41 + height * (i + 0.5)
            if test[name][c] == 0:
                if any(test[m][c] for m in names):  # this run alone has no patch of it
                    ax.text(0.005, y, f"no {split_word} patch", va="center", fontsize=7, style="italic", color="0.4")
                continue
            ys.append(y)
            values.append(reports[name]["per_class"][c]["f1"])
        bars = ax.barh(ys, values, height=height * 0.9, color=colour, label=name)
        ax.bar_label(bars, fmt="%.2f", padding=2, fontsize=7.5 if n <= 3 else 6)
    for pos, c in enumerate(order):
        if not any(test[m][c] for m in names):
            ax.text(0.01, pos, f"no {split_word} patch: F1 undefined", va="center", fontsize=8, style="italic",
                    color="0.35")
            empty.append(c)
    ax.set_yticks(range(len(order)), [wrap_text(c, 38) for c in order], fontsize=8)
    for label, c in zip(ax.get_yticklabels(), order):
        if c in empty:
            label.set_color("0.45")
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_ylabel(f"class, by {ordered_by} (most first)")
    ax.grid(axis="x", alpha=0.3)

    def support(c):
        tests = sorted({test[m][c] for m in names})
        text = f"{split_word} {'/'.join(f'{t:,}' for t in tests)}"
        return (f"train {train[c]:,} · " + text) if train else text

    labels = [support(c) for c in order]
    right = ax.secondary_yaxis("right")
    right.set_yticks(range(len(order)), labels, fontsize=7.5)
    right.set_ylabel("support (patches)", fontsize=9)
    if n > 1:
        fig.legend(loc="outside lower center", ncol=min(n, 4), fontsize=9, frameon=False)
    title = title or (f"F1 per class: {', '.join(names)}" + (f" on the {split} split" if split else ""))
    fig.suptitle("\n".join(wrap_text(line, 110) for line in title.split("\n")), fontsize=11)
    drawn = [t.get_text().replace("\n", " ") for t in ax.get_yticklabels()]
    return save_figure(fig, path, title=title, info={
        "classes": drawn, "ordered_by": ordered_by, "no_test_patch": empty, "support_labels": labels})


__all__ = ["learning_curve", "learning_curves", "per_class_f1"]
