"""How good a run's explanations are, measured on patches of a split: faithfulness by region
perturbation (AOPC, :mod:`keras_mlrs.explain.faithfulness`), conservation and the
model-parameter randomisation test (:mod:`keras_mlrs.explain.sanity`), and the spectral
relevance profile of each class (:mod:`keras_mlrs.explain.spectral`).

:func:`explanation_quality` takes the first ``patches`` patches of the split, in the order of
its data (the order :func:`~keras_mlrs.runs.evaluation.evaluation_data` streams it, so two
runs on one dataset measure the same patches), explains each for the classes in its labels
(``classes="predicted"``: and the classes the model predicts for it; ``"all"``: all 19), and returns one
JSON-serialisable report; :func:`write_quality` writes it with its figures. ``mlrs
explain-quality`` and the "Explanation quality" section of ``mlrs compare`` call these.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np

from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.errors import InvalidParameterError, choose
from keras_mlrs.explain import LRP, composites, faithfulness, sanity, spectral
from keras_mlrs.explain.heatmaps import to_10m_grid
from keras_mlrs.files import (
    atomic_folder,
    atomic_write_text,
    check_replaceable,
    pyplot,
    save_figure,
)
from keras_mlrs.models import input_layout
from keras_mlrs.runs.directory import RunDirectory, load_model
from keras_mlrs.runs.evaluation import checkpoint_title, evaluation_data, in_memory
from keras_mlrs.runs.plots import run_colours
from keras_mlrs.runs.thresholds import decision_rule

#: What :func:`write_quality` marks its folder as (see :func:`keras_mlrs.files.atomic_folder`).
QUALITY_KIND = "explanation-quality"
#: The report's file in that folder.
QUALITY_FILE = "quality.json"
#: The presets whose conservation the report compares (besides the one explained).
CONSERVATION_PRESETS = ("lrp.z", "lrp.epsilon", "lrp.alpha_1_beta_0", "lrp.sequential_preset_a")
#: Which classes of a patch are explained: those in its labels (the default), those and the
#: ones the model predicts, or all 19.
CLASS_CHOICES = ("labels", "predicted", "all")
#: Patches explained per LRP call (all 19 classes each): bounds memory.
_CHUNK = 8


def split_patches(model, run_dir, split: str, patches: int, data=None):
    """The first ``patches`` patches of ``split`` of the run's data (or of ``data``): their
    model inputs (batched, the model's layout), multi-hot labels ``uint8 [N, 19]`` and names
    (None where the data does not list them)."""
    ds, _, names = evaluation_data(model, run_dir, split, data=data, batch_size=min(patches, 64))
    inputs, labels = in_memory(ds, patches)
    if not len(labels):
        raise InvalidParameterError(f"the {split} split holds no patch; choose a split with patches.")
    return inputs, labels.astype(np.uint8), None if names is None else list(names[: len(labels)])


def _take(inputs, rows):
    return keras.tree.map_structure(lambda a: a[rows], inputs)


def explanation_quality(run_dir, data=None, split: str = "test", patches: int = 64, preset: str = "lrp.epsilon",
                        classes: str = "labels", checkpoint: str = "last", thresholds: str = "fixed",
                        region: int = 4, steps: int = 25, baseline: str = "mean", random_seeds=(0, 1, 2),
                        randomisation: bool = True, randomisation_patches: int = 4, randomisation_steps: bool = True,
                        conservation_presets=CONSERVATION_PRESETS, batch_size: int = 128, model=None,
                        say=lambda text: None, **rule_params) -> dict:
    """Measure the run's LRP explanations on the first ``patches`` patches of ``split``.

    Args:
        run_dir: a finished run directory.
        data: a prepared dataset to take the split from instead of the run's own.
        patches: how many patches (the first of the split).
        classes: which classes of each patch are explained (:data:`CLASS_CHOICES`): the
            classes in its labels (``"labels"``), those and the classes the model predicts for
            it (``"predicted"``), or all 19 (``"all"``).
        preset: the LRP preset measured (``rule_params``: its parameters).
        checkpoint: which of the run's models.
        thresholds: the decision rule of the predicted classes.
        region: the side of a perturbed region, in 10 m pixels (as for
            :func:`keras_mlrs.explain.faithfulness.region_perturbation`, which takes the next
            four too).
        steps: the perturbation steps of a curve.
        baseline: what a perturbed region becomes: ``"mean"``, ``"blur"`` or ``"noise"``.
        random_seeds: one random order per seed, the curves' chance baseline.
        batch_size: perturbed model inputs per forward pass.
        randomisation: run the cascading randomisation test on the first
            ``randomisation_patches`` patches, for the union of their explained classes;
            ``randomisation_steps=False``: only its verdict (every layer randomised at once,
            one LRP instead of one per layer).
        conservation_presets: the presets whose conservation is compared on the first
            :data:`_CHUNK` patches (the explained preset's is measured on every heatmap).
        model: that checkpoint's model when the caller has loaded it.

    Returns:
        ``{"run", "checkpoint", "split", "patches", "names", "preset", "classes", "per_class": {class: {"aopc_lrp", "aopc_random", "aopc_lerf",
        "patches"}}, "mean": {...}, "curves", "fractions", "perturbation": settings,
        "conservation", "randomisation" (None when not run), "spectral", "throughput"}``.
    """
    composites.get(preset, **rule_params)  # an unknown preset or parameter fails before any work
    choose("classes to explain", classes, CLASS_CHOICES)
    if isinstance(patches, bool) or not isinstance(patches, int) or patches < 1:
        raise InvalidParameterError(f"patches must be a whole number >= 1, got {patches!r}.")
    regions = (faithfulness.GRID // faithfulness.check_region(region)) ** 2
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= regions:
        raise InvalidParameterError(f"steps must be a whole number from 1 to {regions} (the number of {region} × "
                                    f"{region} regions), got {steps!r}.")
    choose("baseline", baseline, faithfulness.BASELINES)
    run = RunDirectory(run_dir).finished()  # a folder that is no run: said so, in one line
    model_path, which = run.resolve_checkpoint(checkpoint)
    model = model if model is not None else load_model(model_path)
    rule = decision_rule(run.path, model, thresholds)
    say(f"reading the first {patches} patches of the {split} split")
    inputs, labels, names = split_patches(model, run.path, split, patches, data)
    n = len(labels)
    logits = np.asarray(model.predict(inputs, batch_size=64, verbose=0), "float64")
    chosen = np.asarray(rule(logits)) > 0
    if classes == "all":
        wanted = [list(range(len(CLASS_NAMES)))] * n
    else:
        wanted = [sorted(set(np.flatnonzero(labels[i])) | (set(np.flatnonzero(chosen[i])) if classes == "predicted"
                                                           else set())) for i in range(n)]
    layout = input_layout(model)

    explained = [i for i in range(n) if wanted[i]]
    if not explained:
        raise InvalidParameterError(f"none of the {n} patches has a class to explain (no labels"
                                    f"{'' if classes == 'predicted' else ', and predicted classes were not asked for'}); "
                                    "take more patches or another split, or explain every class.")
    say(f"explaining {len(explained)} patches ({sum(len(wanted[i]) for i in explained)} heatmaps, {preset}) and "
        f"perturbing their regions, {_CHUNK} patches at a time")
    analyzer = LRP(model, preset, **rule_params)
    every = list(range(len(CLASS_NAMES)))
    sums, profile, items = np.zeros((n, len(every))), spectral.SpectralProfile(), []
    lrp_seconds, timing, perturbation = 0.0, {"forward_passes": 0, "seconds": 0.0, "forward_seconds": 0.0}, None
    for start in range(0, len(explained), _CHUNK):
        rows = explained[start: start + _CHUNK]
        began = time.perf_counter()
        r = analyzer(_take(inputs, rows), every, batch_size=_CHUNK)  # all 19, 8 patches: one compiled shape for every chunk
        lrp_seconds += time.perf_counter() - began
        relevance = []
        for k, i in enumerate(rows):
            grid = to_10m_grid({g: a[k] for g, a in r.items()} if isinstance(r, dict) else r[k], layout)
            sums[i] = grid.reshape(len(every), -1).astype("float64").sum(axis=1)
            relevance.append(grid[wanted[i]])
            profile.add(relevance[-1], wanted[i])
        perturbation = faithfulness.region_perturbation(
            model, _take(inputs, rows), relevance, [wanted[i] for i in rows], region=region, steps=steps,
            baseline=baseline, random_seeds=random_seeds, batch_size=batch_size)
        items += [{**item, "patch": rows[item["patch"]]} for item in perturbation.items]
        for key in timing:
            timing[key] += perturbation.timing[key]
    summary = faithfulness.summarise({"items": items, "fractions": perturbation.fractions})

    heatmap_rows = [(i, c) for i in explained for c in wanted[i]]
    z = np.asarray([logits[i, c] for i, c in heatmap_rows])
    total = np.asarray([sums[i, c] for i, c in heatmap_rows])
    conservation = {"preset": preset, "heatmaps": len(heatmap_rows),
                    **sanity.conservation_summary(sanity.conservation_errors(z, total))}
    if conservation_presets:
        say(f"comparing the conservation of {len(conservation_presets)} presets")
        first = explained[:_CHUNK]
        union = sorted({c for i in first for c in wanted[i]})
        conservation["presets"] = sanity.conservation_report(
            model, _take(inputs, first), union, presets=list(conservation_presets))["presets"]

    randomised = None
    if randomisation:
        first = explained[:randomisation_patches]
        union = sorted({c for i in first for c in wanted[i]})
        say(f"randomising the layers of a copy of the model, top-down ({len(first)} patches, {len(union)} classes)")
        randomised = sanity.randomisation_check(model, _take(inputs, first), union, preset=preset,
                                                final_only=not randomisation_steps, **rule_params)

    heatmaps = len(explained) * len(every)
    return {
        "run": str(run.path), "checkpoint": which, "split": split, "patches": n, "names": names,
        "preset": preset, "parameters": rule_params, "classes": classes,
        "decision": {"name": rule.name, **rule.get_config()},
        "per_class": summary["per_class"], "mean": summary["mean"], "curves": summary["curves"],
        "fractions": summary["fractions"],
        "perturbation": {"region": region, "steps": steps, "baseline": baseline,
                         "random_seeds": list(perturbation.random_seeds), "regions": perturbation.n_regions},
        "items": [{**item, "patch": names[item["patch"]] if names else item["patch"], "class": CLASS_NAMES[item["class"]]}
                  for item in items],
        "conservation": conservation,
        "randomisation": randomised,
        "spectral": profile.result(),
        "throughput": {"heatmaps": heatmaps, "lrp_seconds": lrp_seconds,
                       "heatmaps_per_s": heatmaps / lrp_seconds if lrp_seconds > 0 else None,
                       "forward_passes": timing["forward_passes"], "perturbation_seconds": timing["seconds"],
                       "forward_passes_per_s": timing["forward_passes"] / timing["forward_seconds"]
                       if timing["forward_seconds"] > 0 else None},
    }


def curves_figure(reports: dict, path, title: str = ""):
    """The mean perturbation curves (logit drop against the share of the patch replaced) of
    one or several reports (name -> report of :func:`explanation_quality`): MoRF solid,
    random dashed, LeRF dotted, one colour per report, AOPC in the legend."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6 + 0.25 * len(reports)), layout="constrained")
    colours = run_colours(plt, len(reports))
    styles = {"morf": ("-", "most relevant first (LRP order)", "aopc_lrp"),
              "random": ("--", "random order", "aopc_random"),
              "lerf": (":", "least relevant first (LRP order)", "aopc_lerf")}
    for k, (name, report) in enumerate(reports.items()):
        fractions = 100 * np.asarray(report["fractions"])
        for order, (style, label, key) in styles.items():
            if order in report["curves"]:
                prefix = f"{name}: " if len(reports) > 1 else ""
                ax.plot(fractions, report["curves"][order], style, color=colours[k], lw=1.6,
                        label=f"{prefix}{label}: AOPC {report['mean'][key]:.3f}")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("share of the patch replaced by the baseline (%)")
    ax.set_ylabel("drop of the explained class's logit")
    first = next(iter(reports.values()))
    p = first["perturbation"]
    ax.set_title(title or f"Region perturbation ({p['region']}×{p['region']} px regions, {p['baseline']} baseline, "
                          f"{first['preset']}) on {first['patches']} {first['split']} patches", fontsize=10)
    fig.legend(fontsize=7.5, loc="outside lower center", ncol=3)  # below the axes: the curves fill them
    ax.grid(alpha=0.3)
    return save_figure(fig, path, title=ax.get_title())


def randomisation_figure(result: dict, path, title: str = ""):
    """Similarity of the heatmaps to the trained model's as layers are randomised top-down
    (one point per step), with the verdict's threshold."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    steps = result["steps"]
    x = np.arange(len(steps) + 1)
    labels = {"spearman_abs": "Spearman, |heatmaps|", "spearman": "Spearman, signed", "ssim": "SSIM"}
    for metric, label in labels.items():
        values = [1.0] + [np.nan if s["mean"][metric] is None else s["mean"][metric] for s in steps]
        ax.plot(x, values, "o-", ms=3, lw=1.4, label=label)
    ax.axhline(result["verdict"]["threshold"], color="0.4", ls="--", lw=0.9, label="flagged above (|heatmaps|)")
    ax.set_xticks(x, ["trained", *[s["layer"] for s in steps]], rotation=60, ha="right", fontsize=7)
    ax.set_ylim(-0.4, 1.05)
    ax.set_ylabel("similarity to the trained model's heatmaps")
    verdict = "passed" if result["passed"] else "FLAGGED" if result["passed"] is False else "undefined"
    ax.set_title(title or f"Cascading randomisation ({result['preset']}, {result['patches']} patches): {verdict}",
                 fontsize=10)
    ax.legend(fontsize=7.5)
    ax.grid(alpha=0.3)
    return save_figure(fig, path, title=ax.get_title())


def quality_folder(run_dir, split: str) -> Path:
    """Where :func:`write_quality` puts a run's report by default: ``<run>/explanations-<split>``."""
    return RunDirectory(run_dir).path / f"explanations-{split}"


def write_quality(report: dict, out_dir, json_path=None) -> dict:
    """Write ``report`` into ``out_dir`` (replaced whole, atomically): ``quality.json`` and
    the figures ``perturbation_curves``, ``spectral_profile`` and ``randomisation`` (PNG
    and PDF); ``json_path``: the JSON also there. Returns ``{name: path}`` of the files."""
    out_dir = Path(out_dir)
    check_replaceable(out_dir, QUALITY_KIND)
    run = Path(report["run"]).name
    title = f"{run} ({checkpoint_title(report['checkpoint'])})"
    with atomic_folder(out_dir, QUALITY_KIND) as staging:
        files = {"json": staging / QUALITY_FILE}
        files["json"].write_text(json.dumps(report, indent=1))
        files["curves"] = curves_figure({run: report}, staging / "perturbation_curves.png").png
        if report["spectral"]["per_class"]:
            files["spectral"] = spectral.profile_figure(
                report["spectral"], staging / "spectral_profile.png",
                title=f"Spectral relevance profile of {title} ({report['preset']}, {report['split']} split)").png
        if report["randomisation"]:
            files["randomisation"] = randomisation_figure(report["randomisation"], staging / "randomisation.png").png
    written = {k: str(out_dir / Path(p).name) for k, p in files.items()}
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(report, indent=1))
        written["json_copy"] = str(json_path)
    return written


__all__ = ["CLASS_CHOICES", "CONSERVATION_PRESETS", "QUALITY_FILE", "QUALITY_KIND", "curves_figure", "explanation_quality",
           "quality_folder", "randomisation_figure", "split_patches", "write_quality"]
