"""The loss-comparison study for any set of runs (``mlrs compare``).

:func:`compare` reproduces the study's artefacts for trained runs and writes them as a
report: ``report.md`` with its figures in ``figures/`` (each a 300 dpi PNG and a PDF), a
self-contained ``report.html`` (figures embedded, click one to enlarge it, each linked to its
files), and ``report.json`` with every number:

* overall precision, recall and F1 under micro, macro and sample averaging, the best run
  of each row highlighted (the study's Table 6.1);
* F1 per class, as a table and a grouped bar chart with the classes ordered by training
  support (Table 6.4, Figure 6.1);
* training and validation loss and F1 per epoch of every run on one plot (Figure 6.2);
* learning efficiency: the first epoch at which each run reached a target validation F1
  (the thesis reads 0.55 sample-F1 off Figure 6.2), its best epoch and time per epoch;
* LRP heatmaps of the same patches and classes across the runs (Tables 6.5–6.8), on the
  study's RGB bands unless told otherwise, every panel on one symmetric colour scale;
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

import numpy as np

from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.core import decision
from keras_mlrs.core.metrics import SCORES, STUDY_AVERAGES
from keras_mlrs.data import read_patch
from keras_mlrs.errors import InvalidParameterError, MlrsError, choose
from keras_mlrs.explain import composites, heatmaps, render, sanity, spectral
from keras_mlrs.explain.engine import class_indices
from keras_mlrs.files import VECTOR_FORMAT, atomic_folder, check_replaceable
from keras_mlrs.runs import (
    RunDirectory,
    calibrate,
    checkpoint_title,
    explanation_quality,
    finished_run,
    landscape,
    load_model,
    plots,
    read_state,
    run_data,
    run_evaluation_set,
    run_names,
    run_outputs,
    run_report,
    training_support,
)
from keras_mlrs.study import significance

#: What :func:`compare` writes, as its folders' owner mark names it.
REPORT_KIND = "comparison report"
#: The sections of the report: anchor -> heading.
SECTIONS = {
    "overall": "Overall precision, recall and F1 (Table 6.1)",
    "seeds": "Seeds and 95% confidence intervals",
    "paired": "Against the reference: paired bootstrap tests",
    "calibrated": "Fixed rule and calibrated thresholds",
    "more-metrics": "Ranking and computer-vision metrics",
    "per-class": "F1 per class (Table 6.4, Figure 6.1)",
    "learning-curves": "Loss and F1 during training (Figure 6.2)",
    "efficiency": "Learning efficiency",
    "lrp": "What the models look at: LRP heatmaps (Tables 6.5-6.8)",
    "lrp-training": "LRP during training (Tables 6.12-6.13)",
    "explanation-quality": "Explanation quality: faithfulness and spectral profiles",
    "landscape": "Loss landscapes",
}


def _first_epoch_reaching(history, key: str, target: float):
    return next((row["epoch"] for row in history if (row.get(key) or 0) >= target), None)


#: The metrics beside the study's in the report, each with its heading.
MORE_METRICS = {"map_macro": "mAP (macro)", "map_micro": "mAP (micro)", "cf1": "CF1", "of1": "OF1",
                "precision_at_1": "precision@1", "precision_at_3": "precision@3", "lrap": "LRAP",
                "hamming_loss": "Hamming loss (lower is better)"}
#: The metrics of the seeds-and-intervals table: (report average, score).
INTERVAL_METRICS = (("samples", "f1"), ("micro", "f1"), ("macro", "f1"))


def compare(run_dirs, out_dir, patches=None, classes=None, split: str = "test", target_f1: float = 0.55,
            average: str = "samples", preset: str = "lrp.epsilon", bands: str = "rgb", per_panel_scale: bool = False,
            reference: str | None = None, allow_different_data: bool = False, resamples: int = 1000,
            quality_patches: int = 16, landscape_points: int = 0, landscape_split: str = "validation",
            say=lambda text: None) -> dict:
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
        per_panel_scale: scale each heatmap to its own largest absolute relevance, instead of
            one symmetric colour scale shared by every panel of a figure.
        reference: the recipe (its name or loss) every other is tested against (default: the
            ``bce`` runs when there are any; none else).
        allow_different_data: compare runs evaluated on different patches or nomenclatures
            (refused otherwise), with a warning in every output.
        resamples: the bootstrap resamples of the intervals and the paired tests.
        quality_patches: the first patches of ``split`` whose explanations are measured per
            run (AOPC by region perturbation, conservation, spectral profiles:
            :func:`keras_mlrs.runs.explanation_quality.explanation_quality`); 0 leaves the
            section out.
        landscape_points: points of a 1-D loss landscape per run on ``landscape_split``,
            the same random direction for every run (:mod:`keras_mlrs.runs.landscape`);
            0 (default) leaves it out.

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
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise InvalidParameterError(f"`resamples` must be a whole number >= 1, got {resamples!r}.")
    if isinstance(quality_patches, bool) or not isinstance(quality_patches, int) or quality_patches < 0:
        raise InvalidParameterError(f"`quality_patches` must be a whole number >= 0, got {quality_patches!r}.")
    if landscape_points and (isinstance(landscape_points, bool) or not isinstance(landscape_points, int)
                             or landscape_points < 3 or landscape_points % 2 == 0):
        raise InvalidParameterError(f"`landscape_points` must be 0 (no landscapes) or an odd whole number >= 3, so "
                                    f"that each line holds the trained weights at its centre; got {landscape_points!r}.")
    run_dirs = [finished_run(r).path for r in run_dirs]
    names = run_names(run_dirs)
    recipes = significance.recipes(run_dirs, names)
    ref = significance.reference_recipe(recipes, reference)
    sets = [run_evaluation_set(r, split) for r in run_dirs]
    warning = _data_warning(names, sets, allow_different_data)
    if warning:
        say(f"warning: {warning}")
    patch_list = [read_patch(p) for p in patches] if patches else None
    if classes:
        class_indices(classes, len(CLASS_NAMES))  # unknown class: fail before any work

    reports, histories, outputs, calibrated = {}, {}, [], {}
    models = {}
    for name, run_dir in zip(names, run_dirs):
        say(f"evaluating {name} on the {split} split")
        models[name] = load_model(run_dir)
        stored = run_outputs(run_dir, split, model=models[name], figure=False)  # the report draws its own
        reports[name] = stored["report"]
        outputs.append({"names": stored["names"], "labels": stored["labels"],
                        "predicted": _label_sets(stored["report"]["decision"], stored["logits"])})
        calibrated[name] = _calibrated_report(run_dir, name, split, models[name], say)
        histories[name] = read_state(run_dir)["history"]
    say(f"bootstrapping {resamples} resamples of the {split} split's patches")
    same = len({s["fingerprint"] for s in sets}) == 1
    uncertainty = significance.uncertainty(recipes, outputs, ref, resamples=resamples, same_patches=same)
    flat = [_flat(reports[n]) for n in names]
    seeds = significance.seed_summary(recipes, flat)
    calibrated_seeds = significance.seed_summary(
        recipes, [_flat(calibrated[n]) if calibrated[n] else dict.fromkeys(flat[0]) for n in names])
    lrp_patch = {"source": "given", "split": None}
    if patch_list is None:
        patch, lrp_patch = _example_patch(run_dirs[0], split, outputs[0])
        patch_list = [patch]
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

    quality = {}
    for name, run_dir in zip(names, run_dirs) if quality_patches else ():
        say(f"measuring {name}'s explanations on {quality_patches} {split} patches")
        quality[name] = explanation_quality.explanation_quality(
            run_dir, split=split, patches=quality_patches, preset=preset, model=models[name], randomisation_steps=False,
            conservation_presets=())
    shapes = {}
    for name, run_dir in zip(names, run_dirs) if landscape_points else ():
        say(f"evaluating {name}'s loss along a random direction ({landscape_points} points, {landscape_split} split)")
        shapes[name] = landscape.landscape(run_dir, split=landscape_split, points=landscape_points,
                                           model=load_model(run_dir))  # a copy of its own: its weights move

    out_dir = Path(out_dir)
    with atomic_folder(out_dir, REPORT_KIND) as staging:
        figures = _figures(staging / "figures", names, run_dirs, reports, histories, average, target_f1, patch_list,
                           classes, preset, bands, say, split=split, per_panel_scale=per_panel_scale, models=models)
        figures.update(_quality_figures(staging / "figures", quality, shapes, split))
        result = {
            "warning": warning,
            "runs": {n: str(r) for n, r in zip(names, run_dirs)}, "split": split, "average": average,
            "evaluation_set": {n: reports[n].get("evaluation_set") for n in names},
            "recipes": {g.name: {"key": g.key, "loss": g.loss, "runs": [names[i] for i in g.runs], "seeds": g.seeds}
                        for g in recipes},
            "seeds": seeds, "uncertainty": uncertainty,
            "calibrated": {n: None if calibrated[n] is None else
                           {"decision": calibrated[n]["decision"], **_flat(calibrated[n])} for n in names},
            "calibrated_seeds": calibrated_seeds,
            "more_metrics": {n: {k: reports[n].get(k) for k in MORE_METRICS} for n in names},
            "lrp_patch": {**lrp_patch, "patch": patch_list[0].name},
            "target_f1": target_f1, "preset": preset, "bands": bands, "per_panel_scale": per_panel_scale,
            "checkpoint": {n: reports[n].get("checkpoint") for n in names},
            "overall": {n: {a: {s: reports[n][a][s] for s in SCORES} for a in STUDY_AVERAGES} for n in names},
            "per_class_f1": {n: {c: reports[n]["per_class"][c]["f1"] for c in CLASS_NAMES} for n in names},
            "support": {c: next(iter(reports.values()))["per_class"][c]["support"] for c in CLASS_NAMES},
            "train_support": figures["train_support"],
            "patches_evaluated": {n: reports[n]["patches"] for n in names},
            "decision": {n: reports[n]["decision"]["name"] for n in names},
            "efficiency": efficiency,
            "lrp": figures["lrp"],
            "lrp_training": figures["training"],
            "explanation_quality": {n: _quality_summary(q) for n, q in quality.items()} or None,
            "landscape": {n: {k: r[k] for k in ("split", "patches", "points", "span", "seed", "alphas", "loss_values",
                                                "f1_values", "origin", "minimum", "architecture")}
                          for n, r in shapes.items()} or None,
        }
        (staging / "report.json").write_text(json.dumps(result, indent=1))
        (staging / "report.md").write_text(markdown(result, figures))
        (staging / "report.html").write_text(to_html(result, figures, staging))
    result["files"] = {"markdown": str(out_dir / "report.md"), "html": str(out_dir / "report.html"),
                       "json": str(out_dir / "report.json"), "figures": str(out_dir / "figures")}
    return result


def _data_warning(names, sets, allow: bool) -> str | None:
    """None when every run is evaluated on the same patches of one nomenclature; else the
    warning every output carries (``allow``), or the one-line refusal."""
    kinds = {(s["nomenclature"], s["fingerprint"]) for s in sets}
    if len(kinds) == 1 and None not in next(iter(kinds)):
        return None
    if all(s["fingerprint"] is not None for s in sets) or len({s["nomenclature"] for s in sets}) > 1:
        groups: dict = {}
        for name, s in zip(names, sets):
            groups.setdefault((s["nomenclature"], s["fingerprint"]), []).append(name)
        sizes = "; ".join(f"{', '.join(g)}: {k[0]}, {sets[names.index(g[0])]['patches']} patches"
                          for k, g in groups.items())
        text = (f"the runs were evaluated on different {sets[0]['split']} sets ({sizes}), so their scores are not "
                "comparable")
        if not allow:
            raise InvalidParameterError(f"{text}; compare runs trained on one dataset, or pass "
                                        "`allow_different_data=True` to compare them anyway (with a warning).")
        return f"{text}; compared anyway, as asked."
    return (f"the {sets[0]['split']} sets of the runs could not be checked to be the same (their data does not list "
            "its patch names: official TFRecords); the comparison assumes they are.")


def _label_sets(rule_config: dict, logits) -> np.ndarray:
    """0/1 label sets of ``logits`` by the rule a report names."""
    return np.asarray(decision.get(rule_config)(logits)).astype(np.uint8)


def _flat(report: dict) -> dict:
    """A report's headline numbers as one flat dict: ``"f1_samples"``, ``"precision_micro"``..."""
    out = {f"{s}_{a}": report[a][s] for a in STUDY_AVERAGES for s in SCORES}
    out.update({k: report.get(k) for k in MORE_METRICS})
    return out


def _calibrated_report(run_dir, name, split, model, say) -> dict | None:
    """The run's report on ``split`` with its calibrated thresholds, fitted on its validation
    split first when it has none for its final model; None (said) when it cannot have one."""
    try:
        return run_report(run_dir, split, model=model, thresholds="calibrated", figure=False)
    except MlrsError:
        pass  # no calibration of this model yet
    say(f"calibrating {name}'s thresholds on its validation split")
    try:
        calibrate(run_dir, model=model)
    except MlrsError as err:
        say(f"{name} cannot be calibrated: {err}")
        return None
    return run_report(run_dir, split, model=model, thresholds="calibrated", figure=False)


def _example_patch(run_dir, split, output):
    """The default patch of the LRP figures: the patch of the runs' ``split`` with the most
    labels (then the first name), read from the first run's data; the bundled sample's when
    that data cannot read one patch alone. Returns ``(patch, where it comes from)``."""
    if output["names"] is not None:
        counts = np.asarray(output["labels"]).sum(axis=1)
        order = sorted(range(len(counts)), key=lambda i: (-int(counts[i]), output["names"][i]))
        patch = run_data(run_dir).patch(split, output["names"][order[0]])
        if patch is not None:
            return patch, {"source": "data", "split": split}
    return heatmaps.example_patch(), {"source": "bundled sample", "split": None}


def _explained(patch, classes):
    wanted = classes
    if not wanted and patch.labels is not None:
        wanted = heatmaps.true_classes(patch)
    if not wanted:
        raise InvalidParameterError(f"{patch.name} has no known labels; give the `classes` to explain.")
    return wanted


def _runs_phrase(names, reports) -> str:
    """The runs and the checkpoint each is evaluated at, as figure titles name them."""
    which = [checkpoint_title(reports[n].get("checkpoint")) for n in names]
    if len(set(which)) == 1:
        return f"{', '.join(names)} ({which[0]}{' each' if len(names) > 1 else ''})"
    return ", ".join(f"{n} ({w})" for n, w in zip(names, which))


def _figures(folder, names, run_dirs, reports, histories, average, target_f1, patch_list, classes, preset, bands,
             say, split="test", per_panel_scale=False, models=None) -> dict:
    """Draw every figure of the report into ``folder``; returns their paths relative to the
    report (``figures/...``, the PNGs; the PDF of each is beside it), the training support
    the per-class figure is ordered by, and the LRP details for ``report.json``."""
    folder.mkdir(parents=True)
    runs_phrase = _runs_phrase(names, reports)
    train_support = training_support(run_dirs[0])
    plots.per_class_f1(dict(zip(names, reports.values())), folder / "per_class_f1.png", train_support=train_support,
                       title=f"F1 per class on the {split} split: {runs_phrase}"
                             + (f"\nclasses ordered by the training support of {names[0]}" if train_support else ""))
    best = {n: (max(h, key=lambda row: row.get(f"val_f1_{average}") or 0.0)["epoch"] if h else None)
            for n, h in histories.items()}
    plots.learning_curves(histories, folder / "learning_curves.png", average=average, target=target_f1,
                          best_epochs=best)
    lrp = []
    models = dict(models or {})  # the final models, by run name (loaded here when not given)
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
        figure = render.heatmap_figure(views, path, title=f"LRP ({preset}) of patch {patch.name}: {runs_phrase}",
                                       per_panel_scale=per_panel_scale)
        lrp.append({"patch": patch.name, "classes": views[0].class_names, "figure": f"figures/{path.name}",
                    "vector": f"figures/{figure.vector.name}",
                    "scores": {v.model: dict(zip(v.class_names, v.scores)) for v in views}})
    training = _training_grid(folder, names, run_dirs, patch_list[0], classes, preset, bands, say,
                              per_panel_scale=per_panel_scale)
    return {"per_class": "figures/per_class_f1.png", "curves": "figures/learning_curves.png", "lrp": lrp,
            "training": training, "train_support": train_support}


def _training_grid(folder, names, run_dirs, patch, classes, preset, bands, say, per_panel_scale=False) -> dict | None:
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
    figure = render.training_grid(
        rows, epochs, path, per_panel_scale=per_panel_scale,
        title=f"{first.class_names[0]}: LRP ({preset}) of patch {patch.name} during training\n"
              f"{', '.join(names)} at the checkpoints of epochs {', '.join(map(str, epochs))}")
    return {"patch": patch.name, "class": first.class_names[0], "epochs": epochs, "figure": f"figures/{path.name}",
            "vector": f"figures/{figure.vector.name}",
            "scores": {n: dict(zip(map(str, epochs), (v.scores[0] for v in views))) for n, views in rows.items()}}


def _quality_summary(report: dict) -> dict:
    """What the comparison keeps of a run's explanation-quality report."""
    profiles = report["spectral"]["per_class"]
    r = report["randomisation"]
    return {"patches": report["patches"], "preset": report["preset"], "perturbation": report["perturbation"],
            "mean": report["mean"], "per_class": report["per_class"], "conservation": report["conservation"],
            "randomisation": None if r is None else {**r["verdict"], "patches": r["patches"], "layers": len(r["order"])},
            "groups": {c: {"positive": p["positive_groups"], "negative": p["negative_groups"]}
                       for c, p in profiles.items()}}


def _quality_figures(folder, quality: dict, shapes: dict, split: str) -> dict:
    """The explanation-quality figures (perturbation curves of every run in one plot, a
    spectral profile per run) and the landscape figure, when they were measured."""
    out = {"quality_curves": None, "spectral": {}, "landscape": None}
    if quality:
        explanation_quality.curves_figure(quality, folder / "perturbation_curves.png")
        out["quality_curves"] = "figures/perturbation_curves.png"
        for name, report in quality.items():
            if report["spectral"]["per_class"]:
                path = folder / f"spectral_{_file_name(name)}.png"
                spectral.profile_figure(report["spectral"], path, title=f"Spectral relevance profile of {name} "
                                        f"({report['preset']}, {report['patches']} {split} patches)")
                out["spectral"][name] = f"figures/{path.name}"
    if shapes:
        landscape.landscape_figure(shapes, folder / "landscape.png")
        out["landscape"] = "figures/landscape.png"
    return out


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


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
    for c in CLASS_NAMES:  # a class without a patch in the split has no F1 (not 0)
        values = [result["per_class_f1"][n][c] if result["support"][c] else None for n in names]
        per_class.append(([c, *values, result["support"][c]], best(values)))
    eff = []
    for n in names:
        e = result["efficiency"][n]
        reached = e["first_epoch_reaching_target"]
        eff.append(([n, reached if reached is not None else f"not reached in {e['epochs']}", e["best_value"],
                     e["best_epoch"], e["seconds_per_epoch"]], set()))
    more = []
    for k, heading in MORE_METRICS.items():
        values = [result["more_metrics"][n][k] for n in names]
        lower = k == "hamming_loss"
        more.append(([heading, *values], best([-v if v is not None and lower else v for v in values])))
    quality, per_class_aopc, bands_rows, shape_rows = [], [], [], []
    for n, q in (result.get("explanation_quality") or {}).items():
        m = q["mean"]
        gap = None if m["aopc_lrp"] is None or m["aopc_random"] is None else m["aopc_lrp"] - m["aopc_random"]
        r = q.get("randomisation")
        verdict = None if not r or r["final_mean"] is None else (
            f"{r['final_mean']:.2f}, {'passed' if r['passed'] else 'flagged'}")
        quality.append(([n, m["pairs"], m["aopc_lrp"], m["aopc_random"], m["aopc_lerf"], gap,
                         q["conservation"]["mean_bias_share"], verdict], set()))
    if quality:
        for column, sign in ((2, 1), (4, -1), (5, 1)):  # higher MoRF and gap, lower LeRF, are better
            values = [sign * row[0][column] if row[0][column] is not None else None for row in quality]
            for i in best(values):
                quality[i][1].add(column - 1)
        q_all = result["explanation_quality"]
        for c in CLASS_NAMES:
            values = [q_all[n]["per_class"].get(c, {}).get("aopc_lrp") for n in q_all]
            if any(v is not None for v in values):
                per_class_aopc.append(([c, *values], best(values)))
            shares = [q_all[n]["groups"].get(c) for n in q_all]
            if any(shares):
                bands_rows.append(([c, *(None if g is None else " / ".join(
                    "-" if g["positive"][k] is None else f"{100 * g['positive'][k]:.0f}" for k in ("b10m", "b20m", "b60m"))
                    for g in shares)], set()))
    for n, r in (result.get("landscape") or {}).items():
        losses = [v for v in r["loss_values"] if v is not None]
        ends = [r["loss_values"][0], r["loss_values"][-1]]
        rise = None if None in ends or r["origin"]["loss"] is None else sum(ends) / 2 - r["origin"]["loss"]
        shape_rows.append(([n, r["origin"]["loss"], min(losses) if losses else None,
                            r["minimum"]["alpha"] if r["minimum"] else None, rise, r["origin"]["f1_samples"]], set()))
    quality_names = list(result.get("explanation_quality") or {})
    return {
        "quality": (["run", "heatmaps", "AOPC, LRP order (MoRF)", "AOPC, random order", "AOPC, LeRF",
                     "MoRF minus random", "bias share (conservation)",
                     "randomised model: Spearman of |heatmaps|, verdict"], quality),
        "quality-per-class": (["class", *quality_names], per_class_aopc),
        "spectral-groups": (["class", *(f"{n}: 10 / 20 / 60 m, %" for n in quality_names)], bands_rows),
        "landscape": (["run", "loss at the trained weights", "lowest loss on the line", "at step", "mean rise at the ends",
                       "sample F1 at the trained weights"], shape_rows),
        "overall": (["", *names], overall),
        "seeds": _seed_rows(result),
        "paired": _paired_rows(result),
        "calibrated": _calibrated_rows(result),
        "more-metrics": (["", *names], more),
        "per-class": (["class", *names, "support"], per_class),
        "efficiency": (["run", f"first epoch with validation F1 ({result['average']}) >= {result['target_f1']}",
                        f"best validation F1 ({result['average']})", "best epoch", "seconds per epoch"], eff),
    }


def _mean_std(summary: dict | None) -> str | None:
    """"0.6543 ± 0.0123 (3 seeds)", or the value of a single seed."""
    if not summary or summary["mean"] is None:
        return None
    if summary["std"] is None:
        return f"{summary['mean']:.4f}"
    return f"{summary['mean']:.4f} ± {summary['std']:.4f}"


def _interval_text(interval: dict) -> str:
    return f"[{interval['low']:.4f}, {interval['high']:.4f}]"


def _seed_rows(result):
    """One row per recipe: its seeds, then each headline F1 as mean ± std over the seeds and
    its bootstrap interval over the test patches."""
    u = result["uncertainty"]
    header = ["recipe", "seeds"]
    for a, _ in INTERVAL_METRICS:
        header += [f"F1 ({a}), mean ± std", f"{u['level']:.0%} interval"]
    rows = []
    for name, recipe in result["recipes"].items():
        cells = [name, ", ".join(map(str, recipe["seeds"]))]
        for a, s in INTERVAL_METRICS:
            cells += [_mean_std(result["seeds"][name][f"{s}_{a}"]), _interval_text(u["intervals"][name][f"{s}_{a}"])]
        rows.append((cells, set()))
    return header, rows


def _paired_rows(result):
    u = result["uncertainty"]
    header = ["recipe", f"sample F1 minus {u['reference'] or 'the reference'}", f"{u['level']:.0%} interval",
              "p-value"]
    rows = []
    for name in result["recipes"]:
        test = u["paired"].get(name)
        if test is None:
            rows.append(([name, "reference" if name == u["reference"] else None, None, None], set()))
        else:
            rows.append(([name, f"{test['difference']:+.4f}", _interval_text(test), f"{test['p_value']:.3g}"], set()))
    return header, rows


def _calibrated_rows(result):
    header = ["recipe", "rule"]
    for a in STUDY_AVERAGES:
        header += [f"F1 ({a}), fixed", f"F1 ({a}), calibrated"]
    rows = []
    for name, recipe in result["recipes"].items():
        first = recipe["runs"][0]
        cells = [name, result["decision"][first]]
        for a in STUDY_AVERAGES:
            cells += [_mean_std(result["seeds"][name][f"f1_{a}"]),
                      _mean_std(result["calibrated_seeds"][name][f"f1_{a}"]) or "not calibrated"]
        rows.append((cells, set()))
    return header, rows


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:,.1f}"
    return "-" if value is None else str(value)


def markdown(result: dict, figures: dict) -> str:
    """The report as Markdown (figures linked from ``figures/``)."""
    tables = _rows(result)
    runs = ", ".join(f"`{n}` ({result['decision'][n]})" for n in result["runs"])
    lines = ["# Loss comparison", ""]
    if result.get("warning"):
        lines += [f"> **Warning:** {result['warning']}", ""]
    lines += [f"Runs (decision rule): {runs}. Evaluated on the **{result['split']}** split "
             f"({', '.join(f'{n}: {k:,}' for n, k in result['patches_evaluated'].items())} patches); "
             "the best value of each row is in bold.", "", _models_sentence(result), ""]

    def table(anchor):
        header, rows = tables[anchor]
        out = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |"]
        for cells, best in rows:
            text = [_cell(c) if i - 1 not in best else f"**{_cell(c)}**" for i, c in enumerate(cells)]
            out.append("| " + " | ".join(text) + " |")
        return out

    def figure(rel, alt):
        return [f"![{alt}]({rel})", "", "Files: " + " · ".join(f"[{Path(f).name}]({f})" for f in _figure_files(rel)), ""]

    lines += [f"## {SECTIONS['overall']}", "", *table("overall"), ""]
    lines += [f"## {SECTIONS['seeds']}", "", _seeds_caption(result), "", *table("seeds"), ""]
    lines += [f"## {SECTIONS['paired']}", "", _paired_caption(result), "", *table("paired"), ""]
    lines += [f"## {SECTIONS['calibrated']}", "", _calibrated_caption(result), "", *table("calibrated"), ""]
    lines += [f"## {SECTIONS['more-metrics']}", "", _more_caption(), "", *table("more-metrics"), ""]
    lines += [f"## {SECTIONS['per-class']}", "", *table("per-class"), "", _per_class_caption(result), "",
              *figure(figures["per_class"], "F1 per class")]
    lines += [f"## {SECTIONS['learning-curves']}", "", _curves_caption(result), "",
              *figure(figures["curves"], "Loss and F1 per epoch")]
    lines += [f"## {SECTIONS['efficiency']}", "", *table("efficiency"), ""]
    lines += [f"## {SECTIONS['lrp']}", "", _lrp_caption(result), ""]
    for item in figures["lrp"]:
        lines += figure(item["figure"], f"LRP of {item['patch']}")
    lines += [f"## {SECTIONS['lrp-training']}", "", _training_caption(result), ""]
    if result["lrp_training"]:
        lines += figure(result["lrp_training"]["figure"], "LRP during training")
    lines += [f"## {SECTIONS['explanation-quality']}", "", _quality_caption(result), ""]
    if result.get("explanation_quality"):
        lines += [*table("quality"), "", _per_class_aopc_caption(), "", *table("quality-per-class"), "",
                  *figure(figures["quality_curves"], "Perturbation curves"), _spectral_caption(), "",
                  *table("spectral-groups"), ""]
        for name, rel in figures["spectral"].items():
            lines += figure(rel, f"Spectral profile of {name}")
    lines += [f"## {SECTIONS['landscape']}", "", _landscape_caption(result), ""]
    if result.get("landscape"):
        lines += [*table("landscape"), "", *figure(figures["landscape"], "Loss landscapes")]
    return "\n".join(lines)


def _figure_files(rel: str) -> list[str]:
    """The files of the figure ``rel`` (its PNG) relative to the report: the PNG and its PDF."""
    return [rel, str(Path(rel).with_suffix(f".{VECTOR_FORMAT}"))]


def _seeds_caption(result: dict) -> str:
    u = result["uncertainty"]
    return (f"Runs of one recipe (configurations that differ only in the seed) are grouped: mean ± standard deviation "
            f"over the seeds (the variation of retraining; one seed shows its value alone), and the {u['level']:.0%} "
            f"percentile bootstrap interval over the {result['split']} patches ({u['resamples']} resamples, seed "
            f"{u['seed']}; the seeds' mean on each resample: the variation of the test set). Train more seeds with "
            "`mlrs zoo build --seeds K` or `mlrs train --seed N`.")


def _paired_caption(result: dict) -> str:
    u = result["uncertainty"]
    if not u["same_patches"]:
        return ("The runs were evaluated on different patches: no paired tests (they pair each patch's results), and "
                "each recipe's interval is over its own patches.")
    if u["reference"] is None:
        return ("No reference recipe among the runs (the default is `bce`): no paired tests. Name one with "
                "`--reference`.")
    return (f"Each recipe against `{u['reference']}` on the same {u['resamples']} resamples of the {result['split']} "
            f"patches: the difference of the sample F1 (the seeds' means), its {u['level']:.0%} interval, and the "
            "two-sided bootstrap p-value of no difference (shifted to the null; at least 1 / (resamples + 1)).")


def _calibrated_caption(result: dict) -> str:
    return ("The fixed rule is each loss's own (the study's); calibrated thresholds are one per class, fitted on each "
            "run's validation split to the sample F1 (`mlrs calibrate`; never on the test split), the decision "
            "component the thesis cites for ranking losses (Li et al.). Means (± std) over the seeds.")


def _more_caption() -> str:
    return ("Beside the study's metrics: mean average precision (exact; macro over the 19 classes, micro over all "
            "pairs), CF1 and OF1 as computer vision defines them (the harmonic mean of the per-class averaged, "
            "respectively overall, precision and recall), precision at k and LRAP from each rule's scores, and the "
            "Hamming loss (lower is better). Each run with its fixed rule.")


def _models_sentence(result: dict) -> str:
    which = {n: checkpoint_title(c) for n, c in result["checkpoint"].items()}
    return ("Models: " + ", ".join(f"{n}: {w}" for n, w in which.items())
            + " (the study's protocol: every epoch trained, no early stopping; the best validation epoch is in "
              "the efficiency table).")


def _per_class_caption(result: dict) -> str:
    order = ("ordered by their training support (patches in the training split of the first run's data), most "
             "first" if result.get("train_support") else "ordered by their test support (the training support of the "
             "runs' data is not known)")
    return (f"Classes {order}; each is annotated with its support. A class with no patch in the {result['split']} "
            "split has no F1: it gets no bar and is marked as such.")


def _curves_caption(result: dict) -> str:
    return (f"Loss (left) and F1 ({result['average']}, right) per epoch on the training split (dashed) and the "
            f"validation split (solid), one colour per run; a star marks each run's best validation epoch, the "
            f"dotted line the target F1 {result['target_f1']:g} of the efficiency table. Training F1 is Keras' running "
            "value over each epoch's batches; losses of different runs are on one axis (log scale when they differ "
            "by more than ten times).")


def _scale_sentence(result: dict) -> str:
    if result.get("per_panel_scale"):
        return "each heatmap is scaled to its own largest absolute relevance (its own colour bar)"
    return ("every panel of a figure shares one symmetric colour scale, from minus to plus the largest absolute "
            "relevance of them all (one colour bar)")


def _lrp_caption(result: dict) -> str:
    where = result["lrp_patch"]
    patch = (f"Patch {where['patch']} of the {where['split']} split (the one with the most labels)"
             if where["source"] == "data" else f"Patch {where['patch']}"
             + (" of the bundled sample (the runs' data cannot read one patch alone)"
                if where["source"] == "bundled sample" else ""))
    return (f"{patch}. Preset `{result['preset']}` on the final epochs' models, relevance summed over the "
            f"{'RGB bands (the study)' if result['bands'] == 'rgb' else result['bands'] + ' bands'}; "
            f"red is evidence for the class, blue against; {_scale_sentence(result)}. The RGB composite is "
            f"{heatmaps.RGB_STRETCH_LABEL} (one linear stretch between those percentiles of the three bands' values "
            "together, clipped outside). Click a figure to enlarge it.")


def _training_caption(result: dict) -> str:
    grid = result["lrp_training"]
    if not grid:
        return ("The runs kept no common epoch checkpoints; train them with `mlrs train --keep-every N` (the thesis "
                "shows every 20 epochs) to see how each loss's heatmaps change during training.")
    return (f"{grid['class']} on {grid['patch']} at epochs {', '.join(map(str, grid['epochs']))}; "
            f"{_scale_sentence(result)}, so changes of sign and strength between epochs and runs are as they are.")


def _quality_caption(result: dict) -> str:
    quality = result.get("explanation_quality")
    if not quality:
        return ("Not measured: give `quality_patches` (`mlrs compare --quality-patches N`) to measure each run's "
                "explanations by region perturbation.")
    first = next(iter(quality.values()))
    p = first["perturbation"]
    return (f"The first {first['patches']} patches of the {result['split']} split, each explained with `{first['preset']}` "
            "for every class in its labels. Region perturbation (Samek et al. 2017): the patch's "
            f"{p['region']}×{p['region']} px regions are replaced by the {p['baseline']} baseline in {p['steps']} steps, "
            "most relevant first (MoRF), least relevant first (LeRF) or in a random order "
            f"({len(p['random_seeds'])} seeds), and the explained class's logit is read after each; AOPC is the mean drop. "
            "A faithful heatmap has a high MoRF AOPC, well above the random order's, and a low LeRF one (best in bold). "
            "The bias share is the part of the logit LRP does not find at the inputs (1 - relevance sum / logit). "
            "The randomisation test (Adebayo et al. 2018) re-initialises every kernel layer of a copy of the model and "
            "compares the heatmaps of the first patches with the trained model's: a rank correlation above "
            f"{sanity.DEFAULT_THRESHOLD} flags a method whose heatmaps do not depend on what the model learned "
            "(`mlrs explain-quality` shows it layer by layer).")


def _per_class_aopc_caption() -> str:
    return "AOPC of the LRP order (MoRF) per class, over the patches whose labels hold the class."


def _spectral_caption() -> str:
    return ("Spectral relevance profiles: the share of each class's positive relevance (evidence for it) in the "
            "10 m, 20 m and 60 m bands, relevance summed over the class's heatmaps; the figures give every band, "
            "positive and negative.")


def _landscape_caption(result: dict) -> str:
    shapes = result.get("landscape")
    if not shapes:
        return ("Not computed: give `landscape_points` (`mlrs compare --landscape-points 21`) to evaluate each run's loss "
                "along one random, filter-normalised direction around its trained weights (Li et al. 2018), the "
                "future work the thesis names; `mlrs landscape RUN` draws one run's in 1-D or 2-D.")
    first = next(iter(shapes.values()))
    same = len({r["architecture"] for r in shapes.values()}) == 1
    patches = f"{first['patches']} {first['split']} patch" + ("" if first["patches"] == 1 else "es")
    return (f"Each run's data loss (its own loss function, so the scales differ) on {patches} at θ + α·δ, α from -{first['span']} to {first['span']} in {first['points']} "
            f"points, δ a filter-normalised random direction (seed {first['seed']}"
            + ("; the same for every run: one architecture)" if same else "; the architectures differ, so do the draws)")
            + ". The mean rise at the ends (the loss at ±span minus at θ) measures how sharp the minimum is along δ.")


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; background: #e4f2e4; }
nav a { margin-right: 1em; }
p.warning { background: #fff3cd; border: 1px solid #e0b000; padding: 0.5em 0.8em; }
figure { margin: 1em 0; }
figure img { display: block; max-width: min(100%, 56em); height: auto; border: 1px solid #eee; cursor: zoom-in; }
figure.wide { width: min(96vw, 110em); position: relative; left: 50%; transform: translateX(-50%); }
figure.wide img { width: 100%; max-width: none; }
figcaption { font-size: 0.85em; color: #555; margin-top: 0.3em; }
#zoom { position: fixed; inset: 0; z-index: 10; overflow: auto; background: rgba(20, 20, 20, 0.9); cursor: zoom-out; }
#zoom[hidden] { display: none; }
#zoom img { display: block; margin: 1em auto; max-width: none; background: #fff; }
#zoom p { color: #eee; text-align: center; margin: 0.5em; font-size: 0.9em; }
"""

#: The enlarged view of the report's figures: a click on a figure shows it at its full
#: resolution (scrollable) over the page; a click or Escape closes it.
_ZOOM = """
<div id="zoom" hidden><p>Full resolution: scroll to move; click or press Escape to close.</p><img alt=""></div>
<script>
(() => {
  const zoom = document.getElementById("zoom"), big = zoom.querySelector("img");
  for (const link of document.querySelectorAll("a.zoom")) {
    link.addEventListener("click", event => {
      event.preventDefault();
      const small = link.querySelector("img");
      big.src = small.src;
      big.alt = small.alt + " (enlarged)";
      zoom.hidden = false;
      zoom.scrollTo(0, 0);
    });
  }
  zoom.addEventListener("click", () => { zoom.hidden = true; });
  document.addEventListener("keydown", event => { if (event.key === "Escape") zoom.hidden = true; });
})();
</script>
"""


def _inline(text: str) -> str:
    """Markdown-ish text as HTML: escaped, with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def to_html(result: dict, figures: dict, folder: Path) -> str:
    """The report as one self-contained HTML page: figures embedded as data URIs (a click
    enlarges one to its full resolution), each also linked to its PNG and PDF files in
    ``figures/``."""
    tables = _rows(result)

    def image(rel, alt, wide=False):
        data = base64.b64encode((folder / rel).read_bytes()).decode("ascii")
        links = " · ".join(f'<a href="{html.escape(f)}">{html.escape(Path(f).name)}</a>' for f in _figure_files(rel))
        kind = ' class="wide"' if wide else ""
        return (f'<figure{kind}><a class="zoom" href="{html.escape(rel)}" '
                f'title="Click to enlarge"><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"></a>'
                f"<figcaption>Click to enlarge. Files (in the report's folder): {links} (PNG, 300 dpi; PDF, vector)"
                "</figcaption></figure>")

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
        "seeds": f"<p>{_inline(_seeds_caption(result))}</p>" + table("seeds"),
        "paired": f"<p>{_inline(_paired_caption(result))}</p>" + table("paired"),
        "calibrated": f"<p>{_inline(_calibrated_caption(result))}</p>" + table("calibrated"),
        "more-metrics": f"<p>{_inline(_more_caption())}</p>" + table("more-metrics"),
        "per-class": table("per-class") + f"<p>{_inline(_per_class_caption(result))}</p>"
                     + image(figures["per_class"], "F1 per class"),
        "learning-curves": f"<p>{_inline(_curves_caption(result))}</p>"
                           + image(figures["curves"], "Loss and F1 per epoch"),
        "efficiency": table("efficiency"),
        "lrp": f"<p>{_inline(_lrp_caption(result))}</p>"
               + "".join(image(item["figure"], f"LRP of {item['patch']}", wide=True) for item in figures["lrp"]),
        "lrp-training": f"<p>{_inline(_training_caption(result))}</p>"
                        + (image(result["lrp_training"]["figure"], "LRP during training", wide=True)
                           if result["lrp_training"] else ""),
        "explanation-quality": f"<p>{_inline(_quality_caption(result))}</p>" + (
            table("quality") + f"<p>{_inline(_per_class_aopc_caption())}</p>" + table("quality-per-class")
            + image(figures["quality_curves"], "Perturbation curves") + f"<p>{_inline(_spectral_caption())}</p>"
            + table("spectral-groups")
            + "".join(image(rel, f"Spectral profile of {n}", wide=True) for n, rel in figures["spectral"].items())
            if result.get("explanation_quality") else ""),
        "landscape": f"<p>{_inline(_landscape_caption(result))}</p>" + (
            table("landscape") + image(figures["landscape"], "Loss landscapes") if result.get("landscape") else ""),
    }
    runs = ", ".join(f"<code>{html.escape(n)}</code> ({html.escape(result['decision'][n])})" for n in result["runs"])
    warning = (f'<p class="warning"><b>Warning:</b> {html.escape(result["warning"])}</p>\n'
               if result.get("warning") else "")
    nav = "".join(f'<a href="#{a}">{html.escape(t.split(" (")[0])}</a>' for a, t in SECTIONS.items())
    sections = "\n".join(f'<section id="{a}"><h2>{html.escape(SECTIONS[a])}</h2>\n{body[a]}</section>' for a in SECTIONS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Loss comparison</title><style>{_CSS}</style></head>
<body>
<h1>Loss comparison</h1>
{warning}<p>Runs (decision rule): {runs}. Evaluated on the <b>{html.escape(result['split'])}</b> split; the best value of each
row is highlighted.</p>
<p>{html.escape(_models_sentence(result))}</p>
<nav>{nav}</nav>
{sections}
{_ZOOM}
</body>
</html>
"""


__all__ = ["SECTIONS", "best", "compare", "markdown", "to_html"]
