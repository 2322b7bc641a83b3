"""The loss-comparison study for any set of runs (``mlrs compare``).

:func:`compare` reproduces the study's artefacts for trained runs and writes them as a
report: ``report.md`` with PNG figures in ``figures/``, a self-contained ``report.html``
(figures embedded), and ``report.json`` with every number:

* overall precision, recall and F1 under micro, macro and sample averaging, the best run
  of each row highlighted (the study's Table 6.1);
* F1 per class, as a table and a grouped bar chart (Table 6.4, Figure 6.1);
* validation F1 per epoch of every run on one plot (Figure 6.2);
* learning efficiency: the first epoch at which each run reached a target validation F1
  (the thesis reads 0.55 sample-F1 off Figure 6.2), its best epoch and time per epoch;
* LRP heatmaps of the same patches and classes across the runs (Tables 6.5–6.8), on the
  study's RGB bands unless told otherwise;
* LRP during training (Tables 6.12–6.13): one patch and class, one row per run, one column
  per epoch whose checkpoint every run kept (``mlrs train --keep-every N``).

As in the study (80 epochs, no early stopping), each run's number is its final epoch's
model; the epoch that was best on validation is shown beside it in the efficiency table.
Each run is evaluated with its own decision rule on the same split of its own data; a
run's ``evaluation-<split>/report.json`` is reused when it is newer than its model.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.core.metrics import SCORES, STUDY_AVERAGES
from keras_mlrs.data import read_patch
from keras_mlrs.errors import InvalidParameterError, choose
from keras_mlrs.explain import composites, heatmaps, render
from keras_mlrs.explain.engine import class_indices
from keras_mlrs.files import atomic_folder, check_replaceable
from keras_mlrs.runs import (
    RunDirectory,
    checkpoint_title,
    finished_run,
    load_model,
    plots,
    read_state,
    run_report,
)

#: What :func:`compare` writes, as its folders' owner mark names it.
REPORT_KIND = "comparison report"
#: The sections of the report: anchor -> heading.
SECTIONS = {
    "overall": "Overall precision, recall and F1 (Table 6.1)",
    "per-class": "F1 per class (Table 6.4, Figure 6.1)",
    "learning-curves": "Validation F1 during training (Figure 6.2)",
    "efficiency": "Learning efficiency",
    "lrp": "What the models look at: LRP heatmaps (Tables 6.5-6.8)",
    "lrp-training": "LRP during training (Tables 6.12-6.13)",
}


def run_names(run_dirs) -> list[str]:
    """Short unique names for the runs: their folder names, with parents where they clash."""
    paths = [Path(r).resolve() for r in run_dirs]
    names = [p.name for p in paths]
    depth = 1
    while len(set(names)) < len(names) and depth < 8:
        depth += 1
        names = ["/".join(p.parts[-depth:]) for p in paths]
    return names


def _first_epoch_reaching(history, key: str, target: float):
    return next((row["epoch"] for row in history if (row.get(key) or 0) >= target), None)


def compare(run_dirs, out_dir, patches=None, classes=None, split: str = "test", target_f1: float = 0.55,
            average: str = "samples", preset: str = "lrp.epsilon", bands: str = "rgb", say=lambda text: None) -> dict:
    """Write the comparison report of ``run_dirs`` (finished runs) into ``out_dir``.

    Args:
        patches: patch folders, band files or GeoTIFFs for the LRP grid (default: the
            bundled sample patch with the most labels).
        classes: class names or indices to explain (default: each patch's true classes).
        split: the split every run is evaluated on.
        target_f1: the validation F1 whose first reaching epoch measures learning efficiency.
        average: the F1 average of the learning curves and efficiency (micro, macro, samples).
        preset: the LRP preset of the heatmaps.
        bands: the band set the heatmaps sum (``rgb``, the study's; ``10m``; ``all``).

    Returns:
        The content of ``report.json``, plus ``"files"``: the paths written.
    """
    if not run_dirs:
        raise InvalidParameterError("give at least one run directory to compare.")
    choose("average", average, STUDY_AVERAGES)
    if not 0 < target_f1 <= 1:
        raise InvalidParameterError(f"`target_f1` must be in (0, 1], got {target_f1}.")
    composites.get(preset)
    heatmaps.band_indices(bands)
    out_dir = Path(out_dir)
    check_replaceable(out_dir, REPORT_KIND)
    run_dirs = [finished_run(r).path for r in run_dirs]
    names = run_names(run_dirs)
    patch_list = [read_patch(p) for p in patches] if patches else [heatmaps.example_patch()]
    if classes:
        class_indices(classes, len(CLASS_NAMES))  # unknown class: fail before any work

    reports, histories = {}, {}
    for name, run_dir in zip(names, run_dirs):
        say(f"evaluating {name} on the {split} split")
        reports[name] = run_report(run_dir, split)
        histories[name] = read_state(run_dir)["history"]
    key = f"val_f1_{average}"
    efficiency = {}
    for name, history in histories.items():
        values = [row.get(key) or 0.0 for row in history]
        top = max(range(len(values)), key=values.__getitem__) if values else None
        seconds = [row["seconds"] for row in history if row.get("seconds")]
        efficiency[name] = {
            "epochs": len(history), "first_epoch_reaching_target": _first_epoch_reaching(history, key, target_f1),
            "best_value": values[top] if top is not None else None,
            "best_epoch": history[top]["epoch"] if top is not None else None,
            "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
        }

    out_dir = Path(out_dir)
    with atomic_folder(out_dir, REPORT_KIND) as staging:
        figures = _figures(staging / "figures", names, run_dirs, reports, histories, key, target_f1, patch_list,
                           classes, preset, bands, say)
        result = {
            "runs": {n: str(r) for n, r in zip(names, run_dirs)}, "split": split, "average": average,
            "target_f1": target_f1, "preset": preset, "bands": bands,
            "checkpoint": {n: reports[n].get("checkpoint") for n in names},
            "overall": {n: {a: {s: reports[n][a][s] for s in SCORES} for a in STUDY_AVERAGES} for n in names},
            "per_class_f1": {n: {c: reports[n]["per_class"][c]["f1"] for c in CLASS_NAMES} for n in names},
            "support": {c: next(iter(reports.values()))["per_class"][c]["support"] for c in CLASS_NAMES},
            "patches_evaluated": {n: reports[n]["patches"] for n in names},
            "decision": {n: reports[n]["decision"]["name"] for n in names},
            "efficiency": efficiency,
            "lrp": figures["lrp"],
            "lrp_training": figures["training"],
        }
        (staging / "report.json").write_text(json.dumps(result, indent=1))
        (staging / "report.md").write_text(markdown(result, figures))
        (staging / "report.html").write_text(to_html(result, figures, staging))
    result["files"] = {"markdown": str(out_dir / "report.md"), "html": str(out_dir / "report.html"),
                       "json": str(out_dir / "report.json"), "figures": str(out_dir / "figures")}
    return result


def _explained(patch, classes):
    wanted = classes
    if not wanted and patch.labels is not None:
        wanted = heatmaps.true_classes(patch)
    if not wanted:
        raise InvalidParameterError(f"{patch.name} has no known labels; give the `classes` to explain.")
    return wanted


def _figures(folder, names, run_dirs, reports, histories, key, target_f1, patch_list, classes, preset, bands,
             say) -> dict:
    folder.mkdir(parents=True)
    plots.per_class_f1(dict(zip(names, reports.values())), folder / "per_class_f1.png", title="F1 per class")
    plots.learning_curves(histories, folder / "learning_curves.png", key=key, target=target_f1)
    lrp = []
    models = {}
    for patch in patch_list:
        views = []
        for name, run_dir in zip(names, run_dirs):
            if name not in models:
                models[name] = load_model(run_dir)
            say(f"explaining {patch.name} with {name}")
            view = heatmaps.explain_patch(models[name], patch, _explained(patch, classes), preset=preset, bands=bands)
            view.model = name
            views.append(view)
        path = folder / f"lrp_{patch.name}.png"
        render.heatmap_figure(views, path, title=f"{patch.name}: {preset}, final epochs")
        lrp.append({"patch": patch.name, "classes": views[0].class_names, "figure": f"figures/{path.name}",
                    "scores": {v.model: dict(zip(v.class_names, v.scores)) for v in views}})
    training = _training_grid(folder, names, run_dirs, patch_list[0], classes, preset, bands, say)
    return {"per_class": "figures/per_class_f1.png", "curves": "figures/learning_curves.png", "lrp": lrp,
            "training": training}


def _training_grid(folder, names, run_dirs, patch, classes, preset, bands, say) -> dict | None:
    """The LRP-during-training figure of ``patch``'s first class over the epochs whose
    checkpoints every run kept with ``keep_every``; None when the runs share fewer than two."""
    runs = [RunDirectory(r) for r in run_dirs]
    epochs = sorted(set.intersection(*(set(r.training_checkpoints()) for r in runs)))
    if len(epochs) < 2:
        return None
    target = _explained(patch, classes)[:1]
    rows = {}
    for name, run in zip(names, runs):
        say(f"explaining {patch.name} with {name} at epochs {', '.join(map(str, epochs))}")
        rows[name] = [heatmaps.explain_patch(load_model(run.checkpoint(e)), patch, target, preset=preset, bands=bands)
                      for e in epochs]
    path = folder / f"lrp_training_{patch.name}.png"
    first = rows[names[0]][0]
    render.training_grid(rows, epochs, path, title=f"{patch.name}, {first.class_names[0]}: {preset} during training")
    return {"patch": patch.name, "class": first.class_names[0], "epochs": epochs, "figure": f"figures/{path.name}",
            "scores": {n: dict(zip(map(str, epochs), (v.scores[0] for v in views))) for n, views in rows.items()}}


# -- tables ----------------------------------------------------------------------------------
def best(values) -> set:
    """Indices of the row's best (largest) value; none when every value is the same."""
    finite = [v for v in values if v is not None]
    if len(set(finite)) < 2:
        return set()
    return {i for i, v in enumerate(values) if v == max(finite)}


def _rows(result):
    """The table rows of the report: (section, header, rows of cells, best cell indices)."""
    names = list(result["runs"])
    overall = []
    for a in STUDY_AVERAGES:
        for s in SCORES:
            values = [result["overall"][n][a][s] for n in names]
            overall.append(([f"{'F1' if s == 'f1' else s} ({a})", *values], best(values)))
    per_class = []
    for c in CLASS_NAMES:
        values = [result["per_class_f1"][n][c] for n in names]
        per_class.append(([c, *values, result["support"][c]], best(values)))
    eff = []
    for n in names:
        e = result["efficiency"][n]
        reached = e["first_epoch_reaching_target"]
        eff.append(([n, reached if reached is not None else f"not reached in {e['epochs']}", e["best_value"],
                     e["best_epoch"], e["seconds_per_epoch"]], set()))
    return {
        "overall": (["", *names], overall),
        "per-class": (["class", *names, "support"], per_class),
        "efficiency": (["run", f"first epoch with validation F1 ({result['average']}) >= {result['target_f1']}",
                        f"best validation F1 ({result['average']})", "best epoch", "seconds per epoch"], eff),
    }


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:,.1f}"
    return "-" if value is None else str(value)


def markdown(result: dict, figures: dict) -> str:
    """The report as Markdown (figures linked from ``figures/``)."""
    tables = _rows(result)
    runs = ", ".join(f"`{n}` ({result['decision'][n]})" for n in result["runs"])
    lines = ["# Loss comparison", "",
             f"Runs (decision rule): {runs}. Evaluated on the **{result['split']}** split "
             f"({', '.join(f'{n}: {k:,}' for n, k in result['patches_evaluated'].items())} patches); "
             "the best value of each row is in bold.", "", _models_sentence(result), ""]

    def table(anchor):
        header, rows = tables[anchor]
        out = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |"]
        for cells, best in rows:
            text = [_cell(c) if i - 1 not in best else f"**{_cell(c)}**" for i, c in enumerate(cells)]
            out.append("| " + " | ".join(text) + " |")
        return out

    lines += [f"## {SECTIONS['overall']}", "", *table("overall"), ""]
    lines += [f"## {SECTIONS['per-class']}", "", *table("per-class"), "", f"![F1 per class]({figures['per_class']})", ""]
    lines += [f"## {SECTIONS['learning-curves']}", "", f"![Validation F1]({figures['curves']})", ""]
    lines += [f"## {SECTIONS['efficiency']}", "", *table("efficiency"), ""]
    lines += [f"## {SECTIONS['lrp']}", "", _lrp_caption(result), ""]
    for item in figures["lrp"]:
        lines += [f"![{item['patch']}]({item['figure']})", ""]
    lines += [f"## {SECTIONS['lrp-training']}", "", _training_caption(result), ""]
    if result["lrp_training"]:
        lines += [f"![LRP during training]({result['lrp_training']['figure']})", ""]
    return "\n".join(lines)


def _models_sentence(result: dict) -> str:
    which = {n: checkpoint_title(c) for n, c in result["checkpoint"].items()}
    return ("Models: " + ", ".join(f"{n}: {w}" for n, w in which.items())
            + " (the study's protocol: every epoch trained, no early stopping; the best validation epoch is in "
              "the efficiency table).")


def _lrp_caption(result: dict) -> str:
    return (f"Preset `{result['preset']}` on the final epochs' models, relevance summed over the "
            f"{'RGB bands (the study)' if result['bands'] == 'rgb' else result['bands'] + ' bands'}; "
            "red is evidence for the class, blue against.")


def _training_caption(result: dict) -> str:
    grid = result["lrp_training"]
    if not grid:
        return ("The runs kept no common epoch checkpoints; train them with `mlrs train --keep-every N` (the thesis "
                "shows every 20 epochs) to see how each loss's heatmaps change during training.")
    return (f"{grid['class']} on {grid['patch']} at epochs {', '.join(map(str, grid['epochs']))}; each row shares "
            "one colour scale, so changes of sign and strength between epochs are as they are.")


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; background: #e4f2e4; }
img { max-width: 100%; border: 1px solid #eee; }
nav a { margin-right: 1em; }
"""


def _inline(text: str) -> str:
    """Markdown-ish text as HTML: escaped, with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def to_html(result: dict, figures: dict, folder: Path) -> str:
    """The report as one self-contained HTML page (figures embedded as data URIs)."""
    tables = _rows(result)

    def image(rel, alt):
        data = base64.b64encode((folder / rel).read_bytes()).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'

    def table(anchor):
        header, rows = tables[anchor]
        out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"]
        for cells, best in rows:
            tds = []
            for i, c in enumerate(cells):
                cls = ["num"] if isinstance(c, (int, float)) else []
                if i - 1 in best:
                    cls.append("best")
                tds.append(f'<td class="{" ".join(cls)}">{html.escape(_cell(c))}</td>')
            out.append("<tr>" + "".join(tds) + "</tr>")
        return "\n".join([*out, "</table>"])

    body = {
        "overall": table("overall"),
        "per-class": table("per-class") + image(figures["per_class"], "F1 per class"),
        "learning-curves": image(figures["curves"], "Validation F1 per epoch"),
        "efficiency": table("efficiency"),
        "lrp": f"<p>{_inline(_lrp_caption(result))}</p>"
               + "".join(image(item["figure"], f"LRP of {item['patch']}") for item in figures["lrp"]),
        "lrp-training": f"<p>{_inline(_training_caption(result))}</p>"
                        + (image(result["lrp_training"]["figure"], "LRP during training") if result["lrp_training"]
                           else ""),
    }
    runs = ", ".join(f"<code>{html.escape(n)}</code> ({html.escape(result['decision'][n])})" for n in result["runs"])
    nav = "".join(f'<a href="#{a}">{html.escape(t.split(" (")[0])}</a>' for a, t in SECTIONS.items())
    sections = "\n".join(f'<section id="{a}"><h2>{html.escape(SECTIONS[a])}</h2>\n{body[a]}</section>' for a in SECTIONS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Loss comparison</title><style>{_CSS}</style></head>
<body>
<h1>Loss comparison</h1>
<p>Runs (decision rule): {runs}. Evaluated on the <b>{html.escape(result['split'])}</b> split; the best value of each
row is highlighted.</p>
<p>{html.escape(_models_sentence(result))}</p>
<nav>{nav}</nav>
{sections}
</body>
</html>
"""


__all__ = ["SECTIONS", "best", "compare", "markdown", "run_names", "to_html"]
