"""Run directories: what ``mlrs train`` writes, and how a trained model is found again.

A run directory holds::

    config.toml          the exact configuration of the run (mlrs train --config reads it back)
    state.json           completed epochs, per-epoch history, best epoch: the resume point
    best.keras           the model of the epoch with the best validation sample-F1
    last.keras           the model after the last completed epoch
    history.csv          per epoch: train loss, validation loss, validation P/R/F1
    learning_curve.png   validation F1 (micro, macro, samples) per epoch
    metrics.json         at the end: best.keras evaluated on the validation split
    tensorboard/         TensorBoard logs
    checkpoints/         the epoch files behind best.keras and last.keras

``state.json`` is written after the epoch's checkpoint and before anything derived from
it, so a run killed at any moment resumes from its last completed epoch.
"""

import json
from pathlib import Path

from keras_mlrs.errors import MlrsError

CONFIG = "config.toml"
STATE = "state.json"
BEST = "best.keras"
LAST = "last.keras"
HISTORY = "history.csv"
CURVE = "learning_curve.png"
METRICS = "metrics.json"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"


class RunError(MlrsError):
    """A run directory or model file that cannot be used as asked."""


def is_run_dir(path) -> bool:
    """Whether ``path`` is a folder written by ``mlrs train``."""
    path = Path(path)
    return path.is_dir() and (path / CONFIG).is_file()


def read_state(run_dir) -> dict:
    """The run's ``state.json`` (an empty state for a run that completed no epoch)."""
    path = Path(run_dir) / STATE
    if not path.exists():
        return {"epoch": 0, "history": [], "best": None, "finished": False}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunError(f"{path} is not valid JSON ({err}); the run directory is damaged.") from None


def finished_run(run_dir) -> Path:
    """``run_dir`` when it is a run that finished training (its ``best.keras`` and
    ``metrics.json`` written); a one-line :class:`RunError` otherwise."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise RunError(f"{run_dir} is not a run directory (no {CONFIG}); give a run written by mlrs train or mlrs zoo build.")
    state = read_state(run_dir)
    if not state.get("finished") or not (run_dir / BEST).is_file():
        raise RunError(f"run {run_dir} has no finished model (it stopped after {state.get('epoch', 0)} epoch(s)); "
                       f"finish it with mlrs train --resume {run_dir}.")
    return run_dir


def model_file(source) -> Path:
    """The ``.keras`` file behind ``source``: a run directory (its ``best.keras``, else
    ``last.keras``) or a ``.keras`` file."""
    path = Path(source)
    if not path.exists():
        raise RunError(f"{path} does not exist; give a run directory (from mlrs train) or a .keras file.")
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return path / name
        if is_run_dir(path):
            raise RunError(f"run {path} has no finished epoch yet (no {BEST}); continue it with mlrs train --resume {path}.")
        raise RunError(f"{path} is not a run directory (no {CONFIG}, no {BEST}); give a run directory or a .keras file.")
    if path.suffix != ".keras":
        raise RunError(f"{path} is not a Keras model; give a run directory or a .keras file.")
    return path


def load_model(source, compile: bool = True, revision: str | None = None):
    """A trained model from a run directory, a ``.keras`` file, a folder exported for the
    Hub (``mlrs push --to``), or a Hugging Face Hub repository ``hf://org/name`` (at
    ``revision``; through the local Hub cache, so with ``HF_HUB_OFFLINE=1`` a model
    downloaded once loads without a network), loaded in Keras' safe mode. Published models
    whose card declares another nomenclature or band layout are refused (see
    :mod:`keras_mlrs.hub`).

    The model is returned compiled when it was saved compiled, so ``decision_of`` finds
    the decision rule of its loss."""
    import warnings

    import keras

    from keras_mlrs import hub

    text = str(source)
    path = hub.resolve(text, revision) if text.startswith("hf://") or hub.is_exported_folder(text) else model_file(source)
    try:
        with warnings.catch_warnings():  # a model saved before its first step has no optimizer state yet
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - any reason a file is not a loadable model
        raise RunError(f"cannot load {text} as a Keras model: {str(err).splitlines()[0]}") from None


def decision_of(model, override=None):
    """The decision rule to apply to ``model``'s logits: ``override`` (a rule, name or
    config) when given; else the rule of its loss when it was compiled with a keras-mlrs
    loss; else ``sigmoid`` (probability at least 0.5)."""
    from keras_mlrs import decision

    if override is not None:
        return decision.get(override)
    rule = getattr(getattr(model, "loss", None), "decision", None)
    return rule if rule is not None else decision.get("sigmoid")
