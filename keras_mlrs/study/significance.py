"""How sure a comparison of runs is: seeds, confidence intervals and paired tests.

A comparison's runs fall into **recipes**: runs whose configurations differ only in the
seed (and where their data lies, how they were run; :func:`keras_mlrs.runs.config.recipe_key`),
as ``mlrs zoo build --seeds K`` trains them. For each recipe:

* every metric of the evaluation report, as the mean and the standard deviation over its
  seeds (the variation of retraining);
* a 95% percentile bootstrap interval over the test patches of each precision, recall and
  F1 (the variation of the test set; the seeds' mean on each resample,
  :func:`keras_mlrs.core.statistics.bootstrap`);
* a paired bootstrap test against the reference recipe (``bce`` by default) on the sample
  F1: the difference, its interval and a two-sided p-value
  (:func:`keras_mlrs.core.statistics.paired_bootstrap`), every recipe on the same resamples.

The per-patch label sets come from each run's stored evaluation outputs
(:func:`keras_mlrs.runs.run_outputs`), aligned by patch name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from keras_mlrs.core import statistics
from keras_mlrs.errors import InvalidParameterError
from keras_mlrs.runs import RunDirectory
from keras_mlrs.runs.config import recipe_key

#: The reference recipe of the paired tests when none is named: the study's first loss.
DEFAULT_REFERENCE = "bce"
#: The metric of the paired tests: the study's headline.
PAIRED_METRIC = "f1_samples"


@dataclass
class Recipe:
    """Runs of one recipe: ``name`` (its seed-0 run's name, or the runs' common name
    without ``-seed<N>``), its loss, and the indices and seeds of its runs."""

    name: str
    key: str
    loss: str
    runs: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)


def recipes(run_dirs, names) -> list[Recipe]:
    """The comparison's runs grouped by recipe, in the order of their first run."""
    groups: dict[str, Recipe] = {}
    for i, (run_dir, name) in enumerate(zip(run_dirs, names)):
        config = RunDirectory(run_dir).config()
        key = recipe_key(config)
        group = groups.setdefault(key, Recipe(re.sub(r"-seed\d+$", "", name), key, config.loss.strip().lower()))
        group.runs.append(i)
        group.seeds.append(config.seed)
    taken: dict[str, int] = {}
    for group in groups.values():  # two recipes of one name (e.g. two focal gammas): tell them apart
        taken[group.name] = taken.get(group.name, 0) + 1
    for group in groups.values():
        if taken[group.name] > 1:
            group.name = f"{group.name} [{group.key.split('-')[-1][:6]}]"
    return list(groups.values())


def reference_recipe(groups: list[Recipe], reference: str | None) -> Recipe | None:
    """The recipe the others are tested against: named by ``reference`` (a recipe's name or
    loss); None when no ``reference`` was given and no recipe is the default's, an error when
    the given one is not among the runs or is ambiguous."""
    wanted = (reference or DEFAULT_REFERENCE).strip().lower()
    found = [g for g in groups if g.name.lower() == wanted] or [g for g in groups if g.loss == wanted]
    if len(found) == 1:
        return found[0]
    if reference is None and not found:
        return None
    if found:
        raise InvalidParameterError(f"the reference '{reference}' names {len(found)} recipes "
                                    f"({', '.join(g.name for g in found)}); name one of them.")
    raise InvalidParameterError(f"the reference '{reference}' is none of the compared recipes "
                                f"({', '.join(g.name for g in groups)}); name one of them, or compare its runs too.")


def seed_summary(groups: list[Recipe], values: list[dict]) -> dict:
    """``{recipe: {metric: {"mean", "std", "n"}}}`` of each flat metric of ``values`` (one
    dict of numbers per run): the standard deviation is the sample one (n - 1), None for a
    single seed."""
    out = {}
    for g in groups:
        rows = [values[i] for i in g.runs]
        out[g.name] = {}
        for metric in rows[0]:
            xs = np.array([r[metric] for r in rows if r.get(metric) is not None], np.float64)
            out[g.name][metric] = {"mean": float(xs.mean()) if len(xs) else None,
                                   "std": float(xs.std(ddof=1)) if len(xs) > 1 else None, "n": int(len(xs))}
    return out


def aligned(outputs: list[dict]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The runs' true labels and predicted label sets on the same patches in one order
    (sorted by patch name when the names are known; the stored order otherwise, which needs
    the same data): ``(labels [N, C], [predicted [N, C] per run])``."""
    if all(o.get("names") is not None for o in outputs):
        orders = [np.argsort(np.asarray(o["names"]), kind="stable") for o in outputs]
        first = np.asarray(outputs[0]["names"])[orders[0]]
        for o, order in zip(outputs, orders):
            if not np.array_equal(np.asarray(o["names"])[order], first):
                raise InvalidParameterError("the runs were evaluated on different patches; compare runs evaluated on "
                                            "one test set.")
    else:
        orders = [np.arange(len(o["labels"])) for o in outputs]
        if len({len(o["labels"]) for o in outputs}) > 1:
            raise InvalidParameterError("the runs were evaluated on different numbers of patches; compare runs "
                                        "evaluated on one test set.")
    labels = np.asarray(outputs[0]["labels"])[orders[0]]
    return labels, [np.asarray(o["predicted"])[order] for o, order in zip(outputs, orders)]


def uncertainty(groups: list[Recipe], outputs: list[dict], reference: Recipe | None, resamples: int = 1000,
                seed: int = 0, level: float = 0.95, same_patches: bool = True) -> dict:
    """Bootstrap intervals of every recipe and paired tests against ``reference``.

    Args:
        groups: the recipes (:func:`recipes`).
        outputs: per run, ``{"names", "labels", "predicted"}`` (label sets by the rule the
            comparison reports).
        reference: the recipe of the paired tests, or None for none.
        resamples: the bootstrap's (the same resamples for every recipe).
        seed: the bootstrap's.
        level: the bootstrap's.
        same_patches: whether every run was evaluated on the same patches; when not (a
            comparison allowed across data), each recipe gets its intervals on its own
            patches and there are no paired tests.

    Returns:
        ``{"resamples", "seed", "level", "reference", "metric", "intervals": {recipe: {metric:
        {"value", "low", "high"}}}, "paired": {recipe: {"difference", "low", "high",
        "p_value", "a", "b"}}}`` (no paired entry for the reference itself).
    """
    intervals, paired = {}, {}
    if same_patches:
        labels, predicted = aligned(outputs)
        stacked = {g.name: (labels, np.stack([predicted[i] for i in g.runs])) for g in groups}
    else:
        stacked = {}
        for g in groups:
            labels, predicted = aligned([outputs[i] for i in g.runs])
            stacked[g.name] = (labels, np.stack(predicted))
    for name, (labels, predicted) in stacked.items():
        intervals[name] = statistics.bootstrap(labels, predicted, resamples=resamples, seed=seed, level=level)
    if reference is not None and same_patches:
        for g in groups:
            if g is not reference:
                paired[g.name] = statistics.paired_bootstrap(labels, stacked[reference.name][1], stacked[g.name][1],
                                                             metric=PAIRED_METRIC, resamples=resamples, seed=seed,
                                                             level=level)
    return {"resamples": resamples, "seed": seed, "level": level, "metric": PAIRED_METRIC,
            "reference": reference.name if reference else None, "same_patches": same_patches,
            "intervals": intervals, "paired": paired}


__all__ = ["DEFAULT_REFERENCE", "Recipe", "aligned", "recipes", "reference_recipe", "seed_summary", "uncertainty"]
