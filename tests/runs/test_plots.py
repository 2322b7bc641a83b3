"""The figures of runs and of the study (learning curves, F1 per class): what each shows,
read back from the files (PNG at 300 dpi and PDF, titled) and from what the drawing
functions report of the axes they drew."""

import numpy as np

from helpers import figure_title
from keras_mlrs import data, runs
from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.runs import plots


def history(epochs, scale, train_f1=True):
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "loss": scale / e, "val_loss": 1.2 * scale / e, "val_f1_samples": 0.2 + 0.1 * e}
        if train_f1:
            row["f1_samples"] = 0.25 + 0.1 * e
        rows.append(row)
    return rows


def report(f1, support, split="test"):
    return {"split": split, "per_class": {c: {"f1": f, "support": s} for c, f, s in zip(CLASS_NAMES, f1, support)}}


def test_learning_curves_show_training_and_validation_loss_and_f1_of_every_run(tmp_path):
    """A run from before training F1 was recorded draws its validation curves only; losses a
    hundred times apart get a log axis; the title names the runs and their checkpoint. (A
    run's own learning_curve.png: tests/cli/test_train_cli.py.)"""
    curves = {"bce": history(4, 0.7), "ranking": history(4, 70.0), "old": history(4, 1.0, train_f1=False)}
    figure = plots.learning_curves(curves, tmp_path / "curves.png", target=0.55, best_epochs={"bce": 3})
    assert figure.png == tmp_path / "curves.png" and figure.vector == tmp_path / "curves.pdf"
    title = figure_title(figure.png)
    assert title == figure.title and "bce, ranking, old" in title and "final epoch" in title
    assert figure.info["series"]["bce"] == ["loss", "val_loss", "f1_samples", "val_f1_samples"]
    assert figure.info["series"]["old"] == ["loss", "val_loss", "val_f1_samples"]
    assert figure.info["loss_scale"] == "log" and figure.info["target"] == 0.55


def test_per_class_f1_orders_by_training_support_and_marks_classes_without_a_test_patch(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.permutation(len(CLASS_NAMES)) * 10 + 5  # distinct counts, in no particular order
    test = [0 if k % 4 == 0 else k for k in range(len(CLASS_NAMES))]  # classes 0, 4, 8... have no test patch
    f1 = [0.0 if s == 0 else 0.5 for s in test]
    reports = {"bce": report(f1, test), "sparsemax": report(f1, test)}
    figure = plots.per_class_f1(reports, tmp_path / "f1.png", train_support=dict(zip(CLASS_NAMES, train.tolist())))
    assert "bce, sparsemax" in figure_title(figure.png) and "test split" in figure.title
    assert figure.info["ordered_by"] == "training support"
    assert figure.info["classes"] == [CLASS_NAMES[k] for k in np.argsort(-train, kind="stable")]
    assert figure.info["no_test_patch"] == [c for c in figure.info["classes"] if test[CLASS_NAMES.index(c)] == 0]
    first = figure.info["classes"][0]
    assert figure.info["support_labels"][0] == f"train {train.max():,} · test {test[CLASS_NAMES.index(first)]:,}"
    # without the training support: ordered by the reports' own support, and said so; a name
    # ending in .pdf gives the PNG beside it
    alone = plots.per_class_f1({"bce": reports["bce"]}, tmp_path / "alone.pdf")
    assert alone.png == tmp_path / "alone.png" and alone.png.is_file() and alone.vector.is_file()
    assert alone.info["ordered_by"] == "test support" and alone.info["classes"][0] == CLASS_NAMES[18]


def test_training_support_is_counted_on_the_training_split_of_the_runs_data(tiny_runs, prepared):
    expected = data.read_manifest(prepared)["splits"]["train"]["class_counts"]
    assert runs.training_support(tiny_runs["bce"][0]) == expected
    assert runs.training_support(tiny_runs["bce"][0] / runs.LAST) is None  # a model file names no data
    raw = data.open_source(data.sample_path(), "random", 0)  # a raw archive: counted from its labels
    labels = sum(data.read_patch(ref.folder).labels for ref in raw.refs("train"))
    assert raw.class_counts("train") == labels.astype(int).tolist()
