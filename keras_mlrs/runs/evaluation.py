"""Evaluation: the study's tables for a model on a dataset.

:func:`evaluate` streams a dataset through the model once and returns the report that
``mlrs evaluate`` prints and writes: precision/recall/F1 under micro, macro, weighted and
sample averaging (the study's Table 6.1), per-class scores with support (Tables 6.2–6.4),
and the ranking metrics. Every number comes from the metrics of
:mod:`keras_mlrs.core.metrics`, which equal scikit-learn's.
"""

import csv
import hashlib
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
from keras_mlrs.errors import MlrsError, choose
from keras_mlrs.files import atomic_write_text
from keras_mlrs.models import input_layout
from keras_mlrs.runs import plots
from keras_mlrs.runs.config import TrainConfig
from keras_mlrs.runs.directory import RunDirectory, load_model
from keras_mlrs.runs.thresholds import THRESHOLDS, calibration_file, decision_rule, read_calibration

#: The k of the report's precision at k.
PRECISION_AT = (1, 3, 5)
#: The computer-vision scores of the report, each with the metric it is: CP and CR are the
#: macro precision and recall, OP and OR the micro ones (CF1 and OF1 have their own metrics).
CV_SCORES = {"cp": ("precision", "macro"), "cr": ("recall", "macro"), "cf1": None,
             "op": ("precision", "micro"), "or": ("recall", "micro"), "of1": None}
#: The computer-vision rows of overall.csv and of the Markdown, each precision, recall, F1.
_CV_ROWS = {"cv-class": ("cp", "cr", "cf1"), "cv-overall": ("op", "or", "of1")}
#: The report's single-number metrics besides the averages, in the order its tables show them.
SCALARS = ("hamming_loss", "ranking_loss", "coverage_error", "lrap", "map_micro", "map_macro",
           *(f"precision_at_{k}" for k in PRECISION_AT))


def _metric_set(rule, max_samples):
    cls = {"precision": metrics.Precision, "recall": metrics.Recall, "f1": metrics.F1}
    table = {(s, a): cls[s](average=a, decision=rule) for a in (*REPORT_AVERAGES, "none") for s in SCORES}
    # one exact average precision per class, whose mean is the macro mAP (their scores held once)
    table[("ap", "none")] = metrics.AveragePrecision("none", decision=rule, max_samples=max_samples)
    others = {
        "hamming_loss": metrics.HammingLoss(decision=rule),
        "ranking_loss": metrics.RankingLoss(decision=rule),
        "coverage_error": metrics.CoverageError(decision=rule),
        "lrap": metrics.LRAP(decision=rule),
        "map_micro": metrics.AveragePrecision("micro", decision=rule, max_samples=max_samples),
        **{f"precision_at_{k}": metrics.PrecisionAtK(k, decision=rule) for k in PRECISION_AT},
        "cf1": metrics.CF1(decision=rule),
        "of1": metrics.OF1(decision=rule),
    }
    return table, others


def batch_outputs(model, dataset):
    """``(labels, logits)`` of each batch of ``dataset`` (``(inputs, multi_hot)`` batches), as
    float32 numpy arrays: the model is fed numpy, whatever the batches are (``tf.data``
    gives ``tf.Tensor`` s, which JAX cannot take)."""
    for x, y in dataset:
        logits = model.predict_on_batch(keras.tree.map_structure(np.asarray, x))
        yield np.asarray(y, np.float32), np.asarray(logits, np.float32)


def evaluate(model, dataset, decision=None, max_samples: int = 2**18, keep_outputs: bool = False):
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
        "f1", "ap", "support"}}, "hamming_loss", "ranking_loss", "coverage_error", "lrap",
        "map_micro", "map_macro", "precision_at_1", "precision_at_3", "precision_at_5",
        "cp", "cr", "cf1", "op", "or", "of1"}``; with ``keep_outputs``, ``(report,
        {"labels": uint8 [N, C], "logits": float32 [N, C]})``, the patches in the order of
        ``dataset``.

        ``"ap"`` is the class's exact average precision, None for a class without a positive
        patch (undefined there; ``"map_macro"`` counts such a class as 0, like
        :class:`~keras_mlrs.core.metrics.AveragePrecision`). ``"precision_at_k"``: the share
        of each patch's k top-scored classes that are true, averaged over patches
        (:class:`~keras_mlrs.core.metrics.PrecisionAtK`). ``"cp"``, ``"cr"``, ``"cf1"``,
        ``"op"``, ``"or"``, ``"of1"``: the computer-vision scores (CP and CR equal the macro
        precision and recall, OP and OR the micro ones, OF1 the micro F1; CF1 is the harmonic
        mean of CP and CR, not the macro F1: see :class:`~keras_mlrs.core.metrics.CF1`).
    """
    rule = rule_of(model, decision)
    table, others = _metric_set(rule, max_samples)
    support = np.zeros(len(CLASS_NAMES), np.int64)
    patches = 0
    kept = ([], [])
    for y, logits in batch_outputs(model, dataset):
        if keep_outputs:
            kept[0].append(y.astype(np.uint8))
            kept[1].append(np.asarray(logits, np.float32))
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
    ap = value[("ap", "none")]
    report["per_class"] = {
        name: {**{s: float(value[(s, "none")][c]) for s in SCORES},
               "ap": float(ap[c]) if support[c] else None, "support": int(support[c])}
        for c, name in enumerate(CLASS_NAMES)
    }
    scalars = {k: float(m.result()) for k, m in others.items()}
    scalars["map_macro"] = float(np.mean(ap))  # AveragePrecision("macro"): every class, 0 without positives
    report.update({k: scalars[k] for k in SCALARS})
    report.update({k: scalars[k] if key is None else report[key[1]][key[0]] for k, key in CV_SCORES.items()})
    if keep_outputs:
        return report, {"labels": np.concatenate(kept[0]), "logits": np.concatenate(kept[1])}
    return report


def evaluation_set(names, split: str) -> dict:
    """What a report was computed on: ``{"split", "patches", "nomenclature", "fingerprint"}``,
    the fingerprint the SHA-256 of the split's sorted patch names (None when the data does
    not tell its names without reading every record: official TFRecords). Two reports with
    one fingerprint and nomenclature were computed on the same patches."""
    digest = None
    if names is not None:
        digest = hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()
    return {"split": split, "patches": None if names is None else len(names),
            "nomenclature": f"BigEarthNet-{len(CLASS_NAMES)}", "fingerprint": digest}


def evaluation_data(model, source=None, split: str = "test", data=None, split_scheme=None, batch_size: int = 256):
    """The batches to evaluate ``model`` on: ``split`` of ``data`` when given, else of the
    data (and split scheme) that the run directory ``source`` was trained on, else of the
    bundled sample. Returns ``(dataset, data path, patch names)``: the names in the order of
    the batches (None where only reading every record would tell, official TFRecords)."""
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
    return ds, patches.path, patches.names(split)


def in_memory(dataset, patches: int | None = None):
    """The batches of ``dataset`` (``(inputs, multi_hot)``) as one ``(inputs, labels)`` pair
    of numpy arrays, the first ``patches`` only when given."""
    xs, ys, held = [], [], 0
    for x, y in dataset:
        x, y = keras.tree.map_structure(np.asarray, x), np.asarray(y, np.float32)
        if patches is not None and held + len(y) > patches:
            keep = patches - held
            x, y = keras.tree.map_structure(lambda a, k=keep: a[:k], x), y[:keep]
        xs.append(x)
        ys.append(y)
        held += len(y)
        if patches is not None and held >= patches:
            break
    if not ys:
        return None, np.zeros((0, 0), np.float32)
    inputs = keras.tree.map_structure(lambda *parts: np.concatenate(parts), *xs)
    return inputs, np.concatenate(ys)


def run_data(run_dir):
    """The data source the run directory ``run_dir`` was trained (and is evaluated) on."""
    cfg = RunDirectory(run_dir).config()
    return open_source(cfg.data_path(), cfg.split_scheme(), cfg.seed, cfg.fractions)


def run_evaluation_set(run_dir, split: str = "test") -> dict:
    """:func:`evaluation_set` of ``split`` of the run's own data, read from its listing or
    manifest (nothing is evaluated)."""
    return evaluation_set(run_data(run_dir).names(split), split)


def training_support(source) -> dict | None:
    """Patches per class (name -> count) in the training split of the data the run
    directory ``source`` was trained on (its prepared manifest, or the labels of a raw
    archive); None when ``source`` is no run directory, its data is gone, or only reading
    every record would tell (official TFRecords)."""
    run = RunDirectory(source) if source is not None else None
    if run is None or not run.exists():
        return None
    try:
        counts = run_data(run.path).class_counts("train")
    except MlrsError:
        return None
    return None if counts is None else dict(zip(CLASS_NAMES, counts))


def run_report(run_dir, split: str = "test", batch_size: int = 256, model=None, checkpoint: str = "last",
               thresholds: str = "fixed", refresh: bool = False, figure: bool = True) -> dict:
    """The report of the run's ``checkpoint`` (default: the final epoch's model, the
    study's) on ``split`` of its own data: read from ``<run>/evaluation-<split>/report.json``
    (``evaluation-<split>-<checkpoint>`` for the others) when that is newer than the model,
    else computed and written there with every output of ``mlrs evaluate``. ``model``: that
    checkpoint's model when the caller has loaded it already. The report's ``"checkpoint"``
    says what was evaluated: ``{"name", "epoch"}``. ``thresholds="calibrated"`` applies the
    run's calibrated thresholds (:func:`keras_mlrs.runs.calibrate`) instead of the loss's own
    rule, into ``evaluation-<split>[-<checkpoint>]-calibrated``. ``refresh``: compute it again
    whatever is stored; ``figure=False``: leave out its per-class figure (2 s or more at
    300 dpi, for callers that draw their own). The folder also holds the per-patch outputs
    (:func:`run_outputs`)."""
    choose("thresholds", thresholds, THRESHOLDS)
    run = RunDirectory(run_dir)
    model_path, which = run.resolve_checkpoint(checkpoint)
    folder = run.evaluation(split, checkpoint, thresholds)
    cached = folder / "report.json"
    stored = read_calibration(run.path)["decision"] if thresholds == "calibrated" else None
    newest = max(model_path.stat().st_mtime, calibration_file(run.path).stat().st_mtime if stored else 0.0)
    if not refresh and cached.is_file() and cached.stat().st_mtime >= newest:
        report = json.loads(cached.read_text())
        if report.get("checkpoint") == which and (stored is None or report.get("decision") == stored):
            return report
    model = model if model is not None else load_model(model_path)
    rule = decision_rule(run.path, model, thresholds)
    ds, path, names = evaluation_data(model, run.path, split, batch_size=batch_size)
    report, outputs = evaluate(model, ds, decision=rule, keep_outputs=True)
    report = {"model": str(run.path), "checkpoint": which, "data": str(path), "split": split,
              "evaluation_set": evaluation_set(names, split), **report}
    rule_title = ", calibrated thresholds" if stored else ""
    write_report(report, json_path=folder / "report.json", csv_dir=folder, markdown_path=folder / "report.md",
                 figure_path=folder / "per_class_f1.png" if figure else None,
                 title=f"{run.path.name} ({checkpoint_title(which)}{rule_title}) on {split}")
    _write_outputs(folder / OUTPUTS, names, outputs)  # last: outputs older than the report are another's
    return report


#: The per-patch outputs of a run's evaluation, beside its report: the patch names, the true
#: labels and the logits (what :func:`run_outputs` reads, e.g. for bootstrap intervals).
OUTPUTS = "outputs.npz"


def _write_outputs(path: Path, names, outputs: dict) -> None:
    staged = path.with_name(f".{path.name}.partial")
    with open(staged, "wb") as f:
        np.savez(f, names=np.asarray(names if names is not None else [], dtype=str), **outputs)
    staged.replace(path)


def run_outputs(run_dir, split: str = "test", checkpoint: str = "last", model=None, figure: bool = True) -> dict:
    """The per-patch outputs of the run's evaluation on ``split`` (:func:`run_report`'s, which
    computes them when they are missing or older than its report): ``{"names" (None when the
    data does not tell them), "labels" uint8 [N, C], "logits" float32 [N, C], "report"}``.
    ``model`` and ``figure``: as for :func:`run_report`."""
    report = run_report(run_dir, split, checkpoint=checkpoint, model=model, figure=figure)
    path = RunDirectory(run_dir).evaluation(split, checkpoint) / OUTPUTS
    if not path.is_file() or path.stat().st_mtime < path.with_name("report.json").stat().st_mtime:
        # a report without its outputs (written before they were kept, or by another command)
        report = run_report(run_dir, split, checkpoint=checkpoint, model=model, refresh=True, figure=figure)
    with np.load(path) as stored:
        names = [str(n) for n in stored["names"]] or None
        return {"names": names, "labels": stored["labels"], "logits": stored["logits"], "report": report}


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
    ``per_class_f1.png`` (and its ``.pdf``). The figure orders the classes by the training
    support of the run that ``report["model"]`` names (:func:`training_support`), when
    that is known."""
    if folder is not None:
        folder = Path(folder)
        json_path, csv_dir, markdown_path, figure_path = (folder / "report.json", folder, folder / "report.md",
                                                          folder / "per_class_f1.png")
    if json_path:
        atomic_write_text(json_path, json.dumps(report, indent=1))
    if csv_dir:
        csv_dir = Path(csv_dir)
        rows = [[a, *(report[a][s] for s in SCORES)] for a in REPORT_AVERAGES]
        rows += [[name, *(report[k] for k in keys)] for name, keys in _CV_ROWS.items() if keys[-1] in report]
        atomic_write_text(csv_dir / "overall.csv", _csv(["average", *SCORES], rows))
        ap = _has_ap(report)
        atomic_write_text(csv_dir / "per_class.csv", _csv(
            ["class", *SCORES, *(["ap"] if ap else []), "support"],
            [[n, *(v[s] for s in SCORES), *([v["ap"]] if ap else []), v["support"]]
             for n, v in report["per_class"].items()]))
    if markdown_path:
        atomic_write_text(markdown_path, markdown(report, title))
    if figure_path:
        heading = f"F1 per class: {title}{' split' if report.get('split') else ''}" if title else None
        plots.per_class_f1({title or "model": report}, figure_path, train_support=training_support(report.get("model")),
                           title=heading)


def _has_ap(report: dict) -> bool:
    """Whether the report has per-class average precision (reports written before it had none)."""
    return all("ap" in v for v in report["per_class"].values())


def _csv(header, rows) -> str:
    """Rows as CSV: floats with 6 decimals, None as an empty cell."""
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
    """Precision, recall, F1, average precision (AP; "—" for a class without positives, where
    it is undefined) and support of every class of ``report``, as a Markdown table."""
    ap = _has_ap(report)
    lines = [f"| class | precision | recall | F1 |{' AP |' if ap else ''} support |",
             f"| --- | ---: | ---: | ---: |{' ---: |' if ap else ''} ---: |"]
    for n, v in report["per_class"].items():
        cell = ("" if not ap else " — |" if v["ap"] is None else f" {v['ap']:.4f} |")
        lines.append(f"| {n} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} |{cell} {v['support']:,} |")
    return "\n".join(lines)


def cv_markdown(report: dict) -> str:
    """The computer-vision precision, recall and F1 of ``report`` (CP, CR, CF1 and OP, OR,
    OF1) as a Markdown table; empty for a report without them."""
    if "cf1" not in report:
        return ""
    names = {"cv-class": "per class, averaged (CP, CR, CF1)", "cv-overall": "overall (OP, OR, OF1)"}
    lines = ["| computer-vision average | precision | recall | F1 |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {names[row]} | " + " | ".join(f"{report[k]:.4f}" for k in keys) + " |" for row, keys in _CV_ROWS.items()]
    return "\n".join(lines)


def markdown(report: dict, title: str = "") -> str:
    """The report as Markdown tables (overall, per class, the computer-vision averages, the
    other metrics)."""
    which = f"; checkpoint: {checkpoint_title(report['checkpoint'])}" if report.get("checkpoint") else ""
    lines = [f"# {title or 'Evaluation'}", "",
             f"{report['patches']:,} patches; decision rule `{report['decision']['name']}`{which}.", "",
             overall_markdown(report), "", per_class_markdown(report)]
    if "cf1" in report:
        lines += ["", cv_markdown(report)]
    lines += ["", "| metric | value |", "| --- | ---: |"]
    lines += [f"| {k} | {report[k]:.4f} |" for k in SCALARS if k in report]
    return "\n".join(lines) + "\n"
