"""Evaluation: the study's tables for a model on a dataset.

:func:`evaluate` streams a dataset through the model once and returns the report that
``mlrs evaluate`` prints and writes: precision/recall/F1 under micro, macro, weighted and
sample averaging (the study's Table 6.1), per-class scores with support (Tables 6.2–6.4),
and the ranking metrics. Every number comes from the metrics of
:mod:`keras_mlrs.core.metrics`, which equal scikit-learn's.
"""

import csv
import io
import json
from pathlib import Path

import keras
import numpy as np

from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.core import metrics
from keras_mlrs.core.decision import rule_of
from keras_mlrs.core.metrics import REPORT_AVERAGES, SCORES
from keras_mlrs.data import load, open_source
from keras_mlrs.errors import MlrsError
from keras_mlrs.files import atomic_write_text
from keras_mlrs.models import input_layout
from keras_mlrs.runs import plots
from keras_mlrs.runs.config import TrainConfig
from keras_mlrs.runs.directory import RunDirectory, load_model


def _metric_set(rule, max_samples):
    cls = {"precision": metrics.Precision, "recall": metrics.Recall, "f1": metrics.F1}
    table = {(s, a): cls[s](average=a, decision=rule) for a in (*REPORT_AVERAGES, "none") for s in SCORES}
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
            :func:`keras_mlrs.core.decision.rule_of`).
        max_samples: the most patches the exact average precision can hold.

    Returns:
        ``{"patches", "decision", "micro": {"precision", "recall", "f1"}, "macro": …,
        "weighted": …, "samples": …, "per_class": {class name: {"precision", "recall",
        "f1", "support"}}, "hamming_loss", "ranking_loss", "coverage_error", "lrap",
        "map_micro", "map_macro"}``.
    """
    rule = rule_of(model, decision)
    table, others = _metric_set(rule, max_samples)
    support = np.zeros(len(CLASS_NAMES), np.int64)
    patches = 0
    for x, y in dataset:
        # numpy in, whatever the batches are (tf.data gives tf.Tensors, which JAX cannot take)
        logits = model.predict_on_batch(keras.tree.map_structure(np.asarray, x))
        y = np.asarray(y, np.float32)
        for metric in (*table.values(), *others.values()):
            metric.update_state(y, logits)
        support += y.sum(axis=0).astype(np.int64)
        patches += y.shape[0]
    if not patches:
        raise MlrsError("the dataset to evaluate is empty.")
    value = {k: np.asarray(m.result(), np.float64) for k, m in table.items()}
    report = {"patches": patches, "decision": {"name": rule.name, **rule.get_config()}}
    for a in REPORT_AVERAGES:
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
    run = RunDirectory(source) if source is not None else None
    if run is not None and run.exists():
        cfg = run.config()
        if data is not None:
            cfg.data, cfg.split = str(Path(data).expanduser().resolve()), "auto"
    else:
        cfg = TrainConfig(data=str(Path(data).expanduser().resolve()) if data else "")
    if split_scheme is not None:
        cfg.split = split_scheme
        cfg.validate()
    patches = open_source(cfg.data_path(), cfg.split_scheme(), cfg.seed, cfg.fractions)
    ds = load(patches, split, batch_size=batch_size, layout=input_layout(model), upsampling=cfg.upsampling,
              shuffle=False)
    return ds, patches.path


def run_report(run_dir, split: str = "test", batch_size: int = 256, model=None, checkpoint: str = "last") -> dict:
    """The report of the run's ``checkpoint`` (default: the final epoch's model, the
    study's) on ``split`` of its own data: read from ``<run>/evaluation-<split>/report.json``
    (``evaluation-<split>-<checkpoint>`` for the others) when that is newer than the model,
    else computed and written there with every output of ``mlrs evaluate``. ``model``: that
    checkpoint's model when the caller has loaded it already. The report's ``"checkpoint"``
    says what was evaluated: ``{"name", "epoch"}``."""
    run = RunDirectory(run_dir)
    model_path, which = run.resolve_checkpoint(checkpoint)
    folder = run.evaluation(split, checkpoint)
    cached = folder / "report.json"
    if cached.is_file() and cached.stat().st_mtime >= model_path.stat().st_mtime:
        report = json.loads(cached.read_text())
        if report.get("checkpoint") == which:
            return report
    model = model if model is not None else load_model(model_path)
    ds, path = evaluation_data(model, run.path, split, batch_size=batch_size)
    report = {"model": str(run.path), "checkpoint": which, "data": str(path), "split": split, **evaluate(model, ds)}
    write_report(report, folder, title=f"{run.path.name} ({checkpoint_title(which)}) on {split}")
    return report


def checkpoint_title(which: dict | None) -> str:
    """How a report names its checkpoint: "final epoch 80", "best on validation, epoch 57"."""
    if not which:
        return "model file"
    if which["name"] == "last":
        return f"final epoch {which['epoch']}"
    if which["name"] == "best":
        return f"best on validation, epoch {which['epoch']}"
    return f"epoch {which['epoch']}"


def write_report(report: dict, folder=None, json_path=None, csv_dir=None, markdown_path=None, figure_path=None,
                 title=""):
    """Write ``report`` (from :func:`evaluate`) as JSON, CSV (``overall.csv`` and
    ``per_class.csv`` in ``csv_dir``), Markdown and the per-class F1 figure; each output
    only when its path is given, each written atomically. ``folder`` gives all four the
    names of a run's evaluation folder: ``report.json``, the CSV files, ``report.md`` and
    ``per_class_f1.png``."""
    if folder is not None:
        folder = Path(folder)
        json_path, csv_dir, markdown_path, figure_path = (folder / "report.json", folder, folder / "report.md",
                                                          folder / "per_class_f1.png")
    if json_path:
        atomic_write_text(json_path, json.dumps(report, indent=1))
    if csv_dir:
        csv_dir = Path(csv_dir)
        atomic_write_text(csv_dir / "overall.csv", _csv(
            ["average", *SCORES], [[a, *(report[a][s] for s in SCORES)] for a in REPORT_AVERAGES]))
        atomic_write_text(csv_dir / "per_class.csv", _csv(
            ["class", *SCORES, "support"],
            [[n, *(v[s] for s in SCORES), v["support"]] for n, v in report["per_class"].items()]))
    if markdown_path:
        atomic_write_text(markdown_path, markdown(report, title))
    if figure_path:
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
              for a in REPORT_AVERAGES]
    return "\n".join(lines)


def per_class_markdown(report: dict) -> str:
    """Precision, recall, F1 and support of every class of ``report``, as a Markdown table."""
    lines = ["| class | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {n} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | {v['support']:,} |"
              for n, v in report["per_class"].items()]
    return "\n".join(lines)


def markdown(report: dict, title: str = "") -> str:
    """The report as Markdown tables (overall, per class, ranking metrics)."""
    which = f"; checkpoint: {checkpoint_title(report['checkpoint'])}" if report.get("checkpoint") else ""
    lines = [f"# {title or 'Evaluation'}", "",
             f"{report['patches']:,} patches; decision rule `{report['decision']['name']}`{which}.", "",
             overall_markdown(report), "", per_class_markdown(report)]
    lines += ["", "| metric | value |", "| --- | ---: |"]
    lines += [f"| {k} | {report[k]:.4f} |" for k in ("hamming_loss", "ranking_loss", "coverage_error", "lrap",
                                                    "map_micro", "map_macro")]
    return "\n".join(lines) + "\n"
