"""Calibrating a run: one threshold per class, fitted on its validation split.

The loss's own rule (probability at least 0.5, logit above 0, the sparsemax support) stays
the default everywhere, as in the study. :func:`calibrate` fits per-class thresholds on the
same confidence that rule thresholds (:class:`keras_mlrs.core.decision.Calibrated`), on the
validation split and never on the test split, and writes them into the run as
``calibration.json`` (:mod:`~keras_mlrs.runs.thresholds` reads them back; an export carries
them). Commands apply them when asked (``thresholds="calibrated"``).

``calibration.json``::

    {"format": 1, "keras_mlrs": "0.4.0",
     "model": {"run": "runs/bce", "checkpoint": {"name": "last", "epoch": 80},
               "weights_sha256": "…"},                 # the weights it was fitted on
     "data": "data/ben19", "split": "validation", "patches": 123723,
     "objective": "sample-f1",
     "base": {"name": "sigmoid", "threshold": 0.5},    # the loss's own (fixed) rule
     "confidence": "probability",                      # what the thresholds are on
     "decision": {"name": "calibrated", "base": {…}, "thresholds": [19 numbers]},
     "thresholds": {"Urban fabric": 0.41, …},          # the same, by class name
     "kept_fixed": ["Beaches, dunes, sands", …],       # classes no other threshold improved
     "scores": {"fixed": {"micro": …, "macro": …, "samples": …},   # F1 on the fitted split
                "calibrated": {"micro": …, "macro": …, "samples": …}}}
"""

import json
from pathlib import Path

import numpy as np

from keras_mlrs.bigearthnet import CLASS_NAMES, split_name
from keras_mlrs.core import statistics
from keras_mlrs.core.decision import OBJECTIVES, fit_thresholds, fixed_threshold, rule_of
from keras_mlrs.data import load, open_source
from keras_mlrs.errors import InvalidParameterError, RunError, choose
from keras_mlrs.files import atomic_write_text
from keras_mlrs.models import input_layout
from keras_mlrs.runs.directory import CALIBRATION, RunDirectory, load_model
from keras_mlrs.runs.evaluation import batch_outputs
from keras_mlrs.runs.thresholds import FORMAT, weights_fingerprint
from keras_mlrs.version import __version__


def calibrate(run_dir, data=None, split: str = "validation", objective: str = "sample-f1", checkpoint: str = "last",
              batch_size: int = 256, model=None) -> dict:
    """Fit one threshold per class for the run's ``checkpoint`` (default: the final epoch's
    model, the study's) on ``split`` of its own data (or of ``data``), and write them to
    ``<run>/calibration.json`` (replacing an earlier calibration). Returns its content (see
    the module docstring).

    Args:
        run_dir: a finished run directory.
        data: data to fit on (default: the run's own, with its split scheme and seed).
        split: ``"validation"`` (or ``"train"``); never ``"test"``.
        objective: ``"sample-f1"`` (the sample-averaged F1, the study's headline) or
            ``"per-class-f1"`` (each class's own F1); see
            :func:`keras_mlrs.core.decision.fit_thresholds`.
        checkpoint: ``last``, ``best`` or ``epoch-N``.
        batch_size: patches per batch.
        model: that checkpoint's model, when the caller has loaded it already.
    """
    split = split_name(split)
    if split == "test":
        raise InvalidParameterError("thresholds are never fitted on the test split (the split they are judged on); "
                                    "fit them on `split='validation'`.")
    objective = choose("calibration objective", objective, OBJECTIVES)
    run = RunDirectory(run_dir).finished()
    model_path, which = run.resolve_checkpoint(checkpoint)
    config = run.config()
    if data is not None:  # as keras_mlrs.runs.evaluation_data takes other data for a run
        config.data, config.split = str(Path(data).expanduser().resolve()), "auto"
    source = open_source(config.data_path(), config.split_scheme(), config.seed, config.fractions)
    empty = RunError(f"{source.path} has no patch in the {split} split ({source.split_scheme}); thresholds are "
                     f"fitted on held-out patches: give `data` whose {split} split has patches.")
    if source.count(split) == 0:
        raise empty
    model = model if model is not None else load_model(model_path)
    fixed = rule_of(model)
    batches = load(source, split, batch_size=batch_size, layout=input_layout(model), upsampling=config.upsampling,
                   shuffle=False)
    outputs = list(batch_outputs(model, batches))
    if not outputs:
        raise empty
    labels, logits = (np.concatenate(parts) for parts in zip(*outputs))
    rule = fit_thresholds(fixed, logits, labels, objective)
    base = {"name": fixed.name, **fixed.get_config()}
    record = {
        "format": FORMAT, "keras_mlrs": __version__,
        "model": {"run": str(run.path.resolve()), "checkpoint": which, "weights_sha256": weights_fingerprint(model)},
        "data": str(source.path), "split": split, "patches": int(labels.shape[0]), "objective": objective,
        "base": base, "confidence": rule.confidence_name,
        "decision": {"name": rule.name, **rule.get_config()},
        "thresholds": dict(zip(CLASS_NAMES, rule.thresholds)),
        "kept_fixed": [n for n, t in zip(CLASS_NAMES, rule.thresholds) if t == fixed_threshold(fixed)],
        "scores": {"fixed": f1_scores(labels, np.asarray(fixed(logits))),
                   "calibrated": f1_scores(labels, np.asarray(rule(logits)))},
    }
    atomic_write_text(run / CALIBRATION, json.dumps(record, indent=1))
    return record


def f1_scores(y_true, y_pred) -> dict:
    """F1 under micro, macro and sample averaging of multi-hot ``y_pred`` against ``y_true``
    (:func:`keras_mlrs.core.statistics.study_metrics`: ``zero_division=0``, as
    :mod:`keras_mlrs.core.metrics` and scikit-learn)."""
    scores = statistics.study_metrics(*statistics.confusion_per_patch(np.asarray(y_true) > 0.5,
                                                                       np.asarray(y_pred) > 0.5))
    return {a: scores[f"f1_{a}"] for a in ("micro", "macro", "samples")}


__all__ = ["OBJECTIVES", "calibrate", "f1_scores"]
