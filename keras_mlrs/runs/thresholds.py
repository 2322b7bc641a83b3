"""Calibrated thresholds kept beside a model: the ``calibration.json`` that
:func:`keras_mlrs.runs.calibrate` writes into a run (and an export carries), read back,
checked against the model it is applied to, and turned into the rule it describes.

A calibration names the weights it was fitted on (:func:`weights_fingerprint`), so thresholds
fitted on another model (another run, another checkpoint, a run trained further since) are
refused instead of being applied to logits they were not fitted on.
"""

import hashlib
import json
from pathlib import Path

import keras
import numpy as np

from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.core.decision import Calibrated, rule_of
from keras_mlrs.core.decision import get as get_rule
from keras_mlrs.errors import MlrsError, RunError, choose
from keras_mlrs.runs.directory import CALIBRATION, CHECKPOINTS, is_run_dir

#: How a command chooses its decision rule: the loss's own (``fixed``, the study's) or the
#: thresholds of ``calibration.json`` (``calibrated``).
THRESHOLDS = ("fixed", "calibrated")
#: The version of the ``calibration.json`` layout.
FORMAT = 1


def weights_fingerprint(model) -> str:
    """SHA-256 of ``model``'s weights (their shapes, dtypes and values, in order): the same
    for one model whichever file it was loaded from (a run's ``.keras`` file, an exported
    folder, the Hub)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{value.dtype.str}{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _run_of(path: Path) -> Path | None:
    """The run directory a local model path belongs to: itself, or the run holding a
    ``.keras`` file (``last.keras``, ``checkpoints/epoch-N.keras``)."""
    if path.is_dir():
        return path if is_run_dir(path) else None
    for folder in (path.parent, path.parent.parent if path.parent.name == CHECKPOINTS else None):
        if folder is not None and is_run_dir(folder):
            return folder
    return None


def calibration_file(source) -> Path:
    """Where the calibration of a local model ``source`` is: ``<run>/calibration.json`` for a
    run directory or a ``.keras`` file inside one, ``<folder>/calibration.json`` for an
    exported folder."""
    path = Path(source)
    run = _run_of(path)
    return (run if run is not None else path if path.is_dir() else path.parent) / CALIBRATION


def read_calibration(source, name: str | None = None) -> dict:
    """The calibration of a local model ``source`` (see :func:`calibration_file`), checked
    to be one :func:`keras_mlrs.runs.calibrate` wrote; a one-line :class:`RunError` when
    there is none or it is damaged. ``name``: the source as the user gave it, for messages
    (e.g. ``hf://ORG/NAME`` for a folder of the Hugging Face cache)."""
    path, name = Path(source), name or str(source)
    file, run = calibration_file(path), _run_of(path)
    again = f"`keras_mlrs.runs.calibrate('{run}')`" if run else "`keras_mlrs.runs.calibrate()`"
    if not file.is_file():
        if run is not None:
            raise RunError(f"run {run} has no calibrated thresholds ({CALIBRATION}); calibrate the run first ({again}).")
        if path.is_dir():
            raise RunError(f"{name} carries no calibrated thresholds (no {CALIBRATION}); calibrate its run first "
                           f"({again}) and export it again.")
        raise RunError(f"{name} is a model file outside a run directory, so it has no calibrated thresholds; give its "
                       f"run directory, calibrated with {again}.")
    try:
        record = json.loads(file.read_text())
        _check(record)
        get_rule(record["decision"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:  # JSONDecodeError and MlrsError are ValueErrors
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RunError(f"{file} is not a calibration written by keras-mlrs ({why}); calibrate the run again "
                       f"({again}).") from None
    return record


def _check(record) -> None:
    """A :class:`MlrsError` unless ``record`` has the layout :func:`keras_mlrs.runs.calibrate` writes."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise MlrsError(f"not an object of format {FORMAT}")
    if not isinstance(record.get("model"), dict) or not isinstance(record["model"].get("weights_sha256"), str):
        raise MlrsError("no model.weights_sha256")
    decision, thresholds = record.get("decision"), record.get("thresholds")
    if not isinstance(decision, dict) or decision.get("name") != Calibrated.name:
        raise MlrsError("no calibrated decision rule")
    if not isinstance(thresholds, dict) or list(thresholds) != list(CLASS_NAMES):
        raise MlrsError("its thresholds are not the BigEarthNet-19 classes in order")
    if list(thresholds.values()) != decision.get("thresholds"):
        raise MlrsError("its thresholds differ from its decision rule's")


def calibrated_rule(source, model, name: str | None = None) -> Calibrated:
    """The calibrated rule stored beside a local model ``source`` (a run directory, a
    ``.keras`` file in one, an exported folder), for ``model`` loaded from it: a one-line
    :class:`RunError` when there is none, or when it was fitted on another model's weights."""
    record = read_calibration(source, name)
    if record["model"]["weights_sha256"] != weights_fingerprint(model):
        run, name = _run_of(Path(source)), name or str(source)
        which = record["model"].get("checkpoint") or {}
        fitted = f"checkpoint {which['name']} (epoch {which['epoch']})" if "name" in which and "epoch" in which else "a model"
        where = (f"calibrate it again for this model (`keras_mlrs.runs.calibrate('{run}')`)" if run else
                 "calibrate its run (`keras_mlrs.runs.calibrate()`) and export it again")
        raise RunError(f"{calibration_file(source)} holds thresholds fitted on another model ({fitted} of "
                       f"{record['model'].get('run', 'another run')}), not on the weights of {name}; {where}.")
    return get_rule(record["decision"])


def decision_rule(source, model, thresholds: str = "fixed", name: str | None = None):
    """The rule to turn ``model``'s logits into labels: its loss's own (``thresholds="fixed"``,
    see :func:`keras_mlrs.core.decision.rule_of`) or the calibrated thresholds stored beside
    the local model ``source`` it was loaded from (``"calibrated"``, :func:`calibrated_rule`)."""
    choose("thresholds", thresholds, THRESHOLDS)
    return rule_of(model) if thresholds == "fixed" else calibrated_rule(source, model, name)


__all__ = ["FORMAT", "THRESHOLDS", "calibrated_rule", "calibration_file", "decision_rule", "read_calibration",
           "weights_fingerprint"]
