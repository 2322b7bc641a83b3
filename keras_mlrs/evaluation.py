"""Evaluation and prediction: the study's tables for a model on a dataset, and label sets
for single patches.

:func:`evaluate` streams a dataset through the model once and returns the report that
``mlrs evaluate`` prints and writes: precision/recall/F1 under micro, macro, weighted and
sample averaging (the study's Table 6.1), per-class scores with support (Tables 6.2–6.4),
and the ranking metrics. Every number comes from the metrics of
:mod:`keras_mlrs.metrics`, which equal scikit-learn's.
"""

import csv
import io
import json
from pathlib import Path

import numpy as np

from keras_mlrs.data.nomenclature import CLASS_NAMES
from keras_mlrs.files import atomic_write_text

AVERAGES = ("micro", "macro", "weighted", "samples")
SCORES = ("precision", "recall", "f1")


def _metric_set(rule, max_samples):
    from keras_mlrs import metrics

    cls = {"precision": metrics.Precision, "recall": metrics.Recall, "f1": metrics.F1}
    table = {(s, a): cls[s](average=a, decision=rule) for a in (*AVERAGES, "none") for s in SCORES}
    others = {
        "hamming_loss": metrics.HammingLoss(decision=rule),
        "ranking_loss": metrics.RankingLoss(decision=rule),
        "coverage_error": metrics.CoverageError(decision=rule),
        "lrap": metrics.LRAP(decision=rule),
        "map_micro": metrics.AveragePrecision("micro", decision=rule, max_samples=max_samples),
        "map_macro": metrics.AveragePrecision("macro", decision=rule, max_samples=max_samples),
    }
    return table, others


def evaluate(model, dataset, decision=None, max_samples: int = 2**18) -> dict:
    """The study's metrics of ``model`` on ``dataset`` (batches of ``(inputs, multi_hot)``).

    Args:
        model: a Keras model returning logits.
        dataset: an iterable of ``(inputs, multi_hot)`` batches, e.g. from
            :func:`keras_mlrs.data.load`.
        decision: the decision rule (default: the model's own, see
            :func:`keras_mlrs.runs.decision_of`).
        max_samples: the most patches the exact average precision can hold.

    Returns:
        ``{"patches", "decision", "micro": {"precision", "recall", "f1"}, "macro": …,
        "weighted": …, "samples": …, "per_class": {class name: {"precision", "recall",
        "f1", "support"}}, "hamming_loss", "ranking_loss", "coverage_error", "lrap",
        "map_micro", "map_macro"}``.
    """
    from keras_mlrs.runs import decision_of

    rule = decision_of(model, decision)
    table, others = _metric_set(rule, max_samples)
    support = np.zeros(len(CLASS_NAMES), np.int64)
    patches = 0
    for x, y in dataset:
        logits = model.predict_on_batch(x)
        y = np.asarray(y, np.float32)
        for metric in (*table.values(), *others.values()):
            metric.update_state(y, logits)
        support += y.sum(axis=0).astype(np.int64)
        patches += y.shape[0]
    if not patches:
        from keras_mlrs.errors import MlrsError

        raise MlrsError("the dataset to evaluate is empty.")
    value = {k: np.asarray(m.result(), np.float64) for k, m in table.items()}
    report = {"patches": patches, "decision": {"name": rule.name, **rule.get_config()}}
    for a in AVERAGES:
        report[a] = {s: float(value[(s, a)]) for s in SCORES}
    report["per_class"] = {
        name: {**{s: float(value[(s, "none")][c]) for s in SCORES}, "support": int(support[c])}
        for c, name in enumerate(CLASS_NAMES)
    }
    report.update({k: float(m.result()) for k, m in others.items()})
    return report


def evaluation_data(model, source=None, split: str = "test", data=None, split_scheme=None, batch_size: int = 256):
    """The batches to evaluate ``model`` on: ``split`` of ``data`` when given, else of the
    data (and split scheme) that the run directory ``source`` was trained on, else of the
    bundled sample. Returns ``(dataset, data path)``."""
    from keras_mlrs import runs, training
    from keras_mlrs.data import load
    from keras_mlrs.data.archives import unpack_if_tar
    from keras_mlrs.models import input_layout

    if source is not None and runs.is_run_dir(source):
        cfg = training.TrainConfig.from_toml(Path(source) / runs.CONFIG)
        if data is not None:
            cfg.data, cfg.split = str(Path(data).expanduser().resolve()), "auto"
    else:
        cfg = training.TrainConfig(data=str(Path(data).expanduser().resolve()) if data else "")
    if split_scheme is not None:
        cfg.split = split_scheme
        cfg.validate()
    path = unpack_if_tar(cfg.data_path())
    ds = load(path, split, batch_size=batch_size, layout=input_layout(model), upsampling=cfg.upsampling,
              shuffle=False, split_scheme=cfg.split_scheme(), fractions=tuple(cfg.fractions), split_seed=cfg.seed)
    return ds, path


def run_report(run_dir, split: str = "test", batch_size: int = 256) -> dict:
    """The report of the run's best model on ``split`` of its own data: read from
    ``<run>/evaluation-<split>/report.json`` when that is newer than the model, else
    computed and written there with every output of ``mlrs evaluate``."""
    from keras_mlrs import runs

    run_dir = Path(run_dir)
    model_path = runs.model_file(run_dir)
    folder = run_dir / f"evaluation-{split}"
    cached = folder / "report.json"
    if cached.is_file() and cached.stat().st_mtime >= model_path.stat().st_mtime:
        return json.loads(cached.read_text())
    model = runs.load_model(run_dir)
    ds, path = evaluation_data(model, run_dir, split, batch_size=batch_size)
    report = {"model": str(run_dir), "data": str(path), "split": split, **evaluate(model, ds)}
    write_report(report, cached, folder, folder / "report.md", folder / "per_class_f1.png",
                 title=f"{run_dir.name} on {split}")
    return report


def write_report(report: dict, json_path=None, csv_dir=None, markdown_path=None, figure_path=None, title=""):
    """Write ``report`` (from :func:`evaluate`) as JSON, CSV (``overall.csv`` and
    ``per_class.csv`` in ``csv_dir``), Markdown and the per-class F1 figure; each output
    only when its path is given, each written atomically."""
    if json_path:
        atomic_write_text(json_path, json.dumps(report, indent=1))
    if csv_dir:
        csv_dir = Path(csv_dir)
        atomic_write_text(csv_dir / "overall.csv", _csv(
            ["average", *SCORES], [[a, *(report[a][s] for s in SCORES)] for a in AVERAGES]))
        atomic_write_text(csv_dir / "per_class.csv", _csv(
            ["class", *SCORES, "support"],
            [[n, *(v[s] for s in SCORES), v["support"]] for n, v in report["per_class"].items()]))
    if markdown_path:
        atomic_write_text(markdown_path, markdown(report, title))
    if figure_path:
        from keras_mlrs import plots

        plots.per_class_f1({title or "model": report}, figure_path)


def _csv(header, rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([f"{v:.6f}" if isinstance(v, float) else v for v in row])
    return out.getvalue()


def overall_markdown(report: dict) -> str:
    """Precision, recall and F1 under each average of ``report``, as a Markdown table."""
    lines = ["| average | precision | recall | F1 |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {a} | {report[a]['precision']:.4f} | {report[a]['recall']:.4f} | {report[a]['f1']:.4f} |"
              for a in AVERAGES]
    return "\n".join(lines)


def per_class_markdown(report: dict) -> str:
    """Precision, recall, F1 and support of every class of ``report``, as a Markdown table."""
    lines = ["| class | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {n} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | {v['support']:,} |"
              for n, v in report["per_class"].items()]
    return "\n".join(lines)


def markdown(report: dict, title: str = "") -> str:
    """The report as Markdown tables (overall, per class, ranking metrics)."""
    lines = [f"# {title or 'Evaluation'}", "",
             f"{report['patches']:,} patches; decision rule `{report['decision']['name']}`.", "",
             overall_markdown(report), "", per_class_markdown(report)]
    lines += ["", "| metric | value |", "| --- | ---: |"]
    lines += [f"| {k} | {report[k]:.4f} |" for k in ("hamming_loss", "ranking_loss", "coverage_error", "lrap",
                                                    "map_micro", "map_macro")]
    return "\n".join(lines) + "\n"


def predict(model, patches, decision=None) -> list[dict]:
    """Label sets of single patches (:class:`keras_mlrs.data.Patch`, e.g. from
    :func:`keras_mlrs.data.read_patch`), with the model's decision rule.

    Returns one ``{"input", "labels", "scores"}`` per patch: ``labels`` the predicted class
    names (in nomenclature order), ``scores`` every class's ``rule.confidence``: the
    probability for ``sigmoid`` and ``sparsemax_support``, the logit for ``logit``.
    """
    from keras_mlrs.models import input_layout
    from keras_mlrs.runs import decision_of

    rule = decision_of(model, decision)
    layout = input_layout(model)
    out = []
    for patch in patches:
        x = patch_inputs(patch, layout)
        logits = model.predict_on_batch(x)
        chosen = np.asarray(rule(logits))[0]
        confidence = np.asarray(rule.confidence(logits))[0]
        out.append({
            "input": patch.name,
            "labels": [n for n, c in zip(CLASS_NAMES, chosen) if c > 0],
            "scores": {n: float(s) for n, s in zip(CLASS_NAMES, confidence)},
        })
    return out


def patch_inputs(patch, layout: str):
    """A batch of one patch in the model's input ``layout`` (``groups`` or ``stacked``)."""
    if layout == "stacked":
        return patch.stacked()[None]
    return {g: a[None] for g, a in patch.groups.items()}
