"""Run directories: what ``train`` writes, and how a trained model is found again.

A run directory holds::

    config.toml          the exact configuration of the run (TrainConfig.from_toml reads it back)
    state.json           completed epochs, per-epoch history, best epoch, the Keras backend and
                         the random generators' state: the resume point
    last.keras           the model after the last completed epoch: the study's model
    best.keras           the model of the epoch with the best validation sample-F1
    history.csv          per epoch: training loss and F1, validation loss and P/R/F1
    learning_curve.png   training and validation loss and sample-F1 per epoch (and .pdf; redrawn
                         at most once a minute during training, and when it finishes)
    metrics.json         at the end: last.keras evaluated on the validation split
    tensorboard/         TensorBoard logs
    checkpoints/         the epoch files behind last.keras and best.keras, and every
                         ``keep_every``-th epoch's (``epoch-0020.keras``...) when asked
    evaluation-<split>/  the evaluation of last.keras on a split (report.json, tables,
                         figure); ``evaluation-<split>-best/``, ``-epoch-N/`` for others,
                         ``-calibrated`` appended with the calibrated thresholds
    calibration.json     per-class thresholds fitted on the validation split by
                         ``keras_mlrs.runs.calibrate``, tied to the model they were fitted on

The study trained 80 epochs without early stopping and reports the final epoch's model,
so a run's model is ``last.keras`` unless a checkpoint is named (:data:`CHECKPOINT_NAMES`:
``last``, ``best``, ``epoch-N``). ``state.json`` is written after the epoch's checkpoint
and before anything derived from it, so a run killed at any moment resumes from its last
completed epoch.
:class:`RunDirectory` is the one place that knows these names.
"""

import csv
import io
import json
import warnings
import zipfile
from pathlib import Path

import keras

from keras_mlrs.core.metrics import SCORES, STUDY_AVERAGES
from keras_mlrs.errors import RunError
from keras_mlrs.files import atomic_link, atomic_write_text
from keras_mlrs.runs import plots
from keras_mlrs.runs.config import TrainConfig

CONFIG = "config.toml"
STATE = "state.json"
BEST = "best.keras"
LAST = "last.keras"
HISTORY = "history.csv"
CURVE = "learning_curve.png"
METRICS = "metrics.json"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
CALIBRATION = "calibration.json"
#: The validation metric that picks ``best.keras``.
BEST_METRIC = "val_f1_samples"
#: How a run's checkpoints are named: the final epoch's (the study's), the best on
#: validation, or a kept epoch ``epoch-N``.
CHECKPOINT_NAMES = ("last", "best", "epoch-N")
#: Columns of ``history.csv`` after ``epoch``: training loss, validation loss and P/R/F1,
#: training F1 (Keras' running value over the epoch's batches), time.
HISTORY_COLUMNS = (
    "loss", "val_loss", *(f"val_{s}_{a}" for a in STUDY_AVERAGES for s in SCORES),
    *(f"f1_{a}" for a in STUDY_AVERAGES), "seconds", "patches_per_s",
)


def empty_state() -> dict:
    """The state of a run that completed no epoch."""
    return {"epoch": 0, "history": [], "best": None, "finished": False}


class RunDirectory:
    """The files of one run directory (see the module docstring)."""

    def __init__(self, path):
        self.path = Path(path)

    def __truediv__(self, name) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    def exists(self) -> bool:
        """Whether the folder is a run directory (it has a ``config.toml``)."""
        return self.path.is_dir() and (self.path / CONFIG).is_file()

    def checkpoint(self, epoch: int) -> Path:
        """The checkpoint of ``epoch`` (1-based)."""
        return self.path / CHECKPOINTS / f"epoch-{epoch:04d}.keras"

    def evaluation(self, split: str, checkpoint: str = "last", thresholds: str = "fixed") -> Path:
        """The folder of the evaluation of the run's ``checkpoint`` on ``split``, with the
        loss's own rule (``thresholds="fixed"``) or the calibrated thresholds."""
        name = f"evaluation-{split}" if checkpoint == "last" else f"evaluation-{split}-{checkpoint}"
        return self.path / (f"{name}-calibrated" if thresholds == "calibrated" else name)

    def kept_epochs(self) -> list[int]:
        """The epochs whose checkpoint is on disk, in order."""
        epochs = []
        for f in (self.path / CHECKPOINTS).glob("epoch-*.keras"):
            try:
                epochs.append(int(f.stem.removeprefix("epoch-")))
            except ValueError:
                continue
        return sorted(epochs)

    def training_checkpoints(self) -> list[int]:
        """The epochs kept by the run's ``keep_every`` (:func:`periodic_epochs`) whose
        checkpoint is on disk: the frames of LRP during training."""
        every = self.config().keep_every
        return [e for e in periodic_epochs(every, self.state()["epoch"]) if self.checkpoint(e).is_file()]

    def resolve_checkpoint(self, checkpoint: str = "last") -> tuple[Path, dict]:
        """The file of ``checkpoint`` (``last``, ``best`` or ``epoch-N``) and what it is,
        ``{"name": checkpoint, "epoch": N}``; a one-line :class:`RunError` when the run
        has no such checkpoint."""
        state = self.state()
        if not state["epoch"]:
            raise RunError(f"run {self.path} has no finished epoch yet; continue it with "
                           f"`keras_mlrs.runs.resume('{self.path}')`.")
        if checkpoint == "last":
            return self.path / LAST, {"name": "last", "epoch": state["epoch"]}
        if checkpoint == "best":
            return self.path / BEST, {"name": "best", "epoch": state["best"]["epoch"]}
        number = checkpoint.removeprefix("epoch-")
        if checkpoint.startswith("epoch-") and number.isdigit():
            epoch = int(number)
            path = self.checkpoint(epoch)
            if path.is_file():
                return path, {"name": f"epoch-{epoch}", "epoch": epoch}
            kept = ", ".join(f"epoch-{e}" for e in self.kept_epochs())
            raise RunError(f"run {self.path} kept no checkpoint of epoch {epoch} (kept: {kept}); train with "
                           "`keep_every` to keep more.")
        raise RunError(f"unknown checkpoint '{checkpoint}'; give last (the final epoch, the study's), best "
                       "(best validation sample-F1) or epoch-N.")

    def config(self) -> TrainConfig:
        """The run's configuration."""
        return TrainConfig.from_toml(self.path / CONFIG)

    def state(self) -> dict:
        """The run's ``state.json`` (an empty state for a run that completed no epoch)."""
        path = self.path / STATE
        if not path.exists():
            return empty_state()
        try:
            state = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunError(f"{path} is not valid JSON ({err}); the run directory is damaged.") from None
        if not (isinstance(state, dict) and isinstance(state.get("epoch"), int) and isinstance(state.get("history"), list)
                and (state.get("best") is None or isinstance(state["best"], dict))):
            raise RunError(f"{path} is not the state of a run (an object with epoch, history and best); the run "
                           "directory is damaged.")
        return state

    def write_state(self, state: dict) -> None:
        atomic_write_text(self.path / STATE, json.dumps(state, indent=1))

    def finished(self) -> "RunDirectory":
        """This run, when it finished training (its ``best.keras`` written); a one-line
        :class:`RunError` otherwise."""
        if not self.exists():
            raise RunError(f"{self.path} is not a run directory (no {CONFIG}); give a run written by "
                           "`keras_mlrs.runs.train()` or the zoo.")
        state = self.state()
        if not state.get("finished") or not (self.path / LAST).is_file():
            raise RunError(f"run {self.path} has no finished model (it stopped after {state.get('epoch', 0)} "
                           f"epoch(s)); finish it with `keras_mlrs.runs.resume('{self.path}')`.")
        return self

    def materialise(self, state: dict, keep_every: int = 0, curve: bool = True) -> None:
        """Bring the files derived from ``state.json`` up to date: ``last.keras``,
        ``best.keras``, ``history.csv``, ``learning_curve.png`` (when ``curve``); drop the
        checkpoints of epochs that are neither the last, the best nor kept by ``keep_every``
        (:func:`periodic_epochs`)."""
        if not state["epoch"]:
            return
        last, best = self.checkpoint(state["epoch"]), self.checkpoint(state["best"]["epoch"])
        kept = {last, best, *(self.checkpoint(e) for e in periodic_epochs(keep_every, state["epoch"]))}
        atomic_link(last, self.path / LAST)
        atomic_link(best, self.path / BEST)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["epoch", *HISTORY_COLUMNS])
        for row in state["history"]:
            writer.writerow([row["epoch"], *(_cell(row.get(k)) for k in HISTORY_COLUMNS)])
        atomic_write_text(self.path / HISTORY, out.getvalue())
        if curve:
            self.draw_curve(state)
        for f in (self.path / CHECKPOINTS).glob("*.keras"):  # stale epochs, and temporary files of a killed save
            if f not in kept:
                f.unlink(missing_ok=True)


    def draw_curve(self, state: dict) -> None:
        """Draw ``learning_curve.png`` (and its PDF) from ``state``'s history."""
        plots.learning_curve(state["history"], self.path / CURVE, best_epoch=state["best"]["epoch"], run=self.path.name)


def periodic_epochs(keep_every: int, last_epoch: int) -> list[int]:
    """The epochs ``keep_every`` keeps up to ``last_epoch``: the first and every
    ``keep_every``-th (the thesis's LRP-during-training grid: the first epoch, 20, 40, 60);
    none when ``keep_every`` is 0."""
    if not keep_every:
        return []
    return sorted({1, *range(keep_every, last_epoch + 1, keep_every)} & set(range(1, last_epoch + 1)))


def _cell(v):
    return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)


def run_names(run_dirs) -> list[str]:
    """Short unique names for the runs: their folder names, with parents where they clash."""
    paths = [Path(r).resolve() for r in run_dirs]
    names = [p.name for p in paths]
    depth = 1
    while len(set(names)) < len(names) and depth < 8:
        depth += 1
        names = ["/".join(p.parts[-depth:]) for p in paths]
    return names


def is_run_dir(path) -> bool:
    """Whether ``path`` is a folder written by ``train``."""
    return RunDirectory(path).exists()


def read_state(run_dir) -> dict:
    """The run's ``state.json`` (an empty state for a run that completed no epoch)."""
    return RunDirectory(run_dir).state()


def finished_run(run_dir) -> RunDirectory:
    """``run_dir`` when it is a run that finished training; a one-line :class:`RunError` otherwise."""
    return RunDirectory(run_dir).finished()


def model_file(source, checkpoint: str | None = None) -> Path:
    """The ``.keras`` file behind ``source``: a run directory's ``checkpoint`` (default
    ``last``, the final epoch, see :meth:`RunDirectory.resolve_checkpoint`) or a ``.keras``
    file (``checkpoint`` must then be None)."""
    path = Path(source)
    if not path.exists():
        raise RunError(f"{path} does not exist; give a run directory, a .keras file or a saved model folder.")
    if path.is_dir():
        if is_run_dir(path):
            return RunDirectory(path).resolve_checkpoint(checkpoint or "last")[0]
        raise RunError(f"{path} is not a run directory (no {CONFIG}); give a run directory or a .keras file.")
    if path.suffix != ".keras":
        raise RunError(f"{path} is not a Keras model; give a run directory or a .keras file.")
    if checkpoint is not None:
        raise RunError(f"{path} is one model file; a checkpoint ({checkpoint}) can be chosen in run directories only.")
    return path


def check_keras_file(path) -> None:
    """A one-line :class:`RunError` unless ``path`` is a ``.keras`` file (a zip archive)."""
    if not zipfile.is_zipfile(path):
        raise RunError(f"{path} is not a Keras model file: a .keras file is a zip archive and this one is not "
                       "(damaged, cut short, or another format).")


def load_model(source, compile: bool = True, checkpoint: str | None = None):
    """A trained model from a local path: a run directory (its ``checkpoint``, default the
    final epoch's ``last.keras``), a ``.keras`` file, or a folder in Keras' saved-model
    layout (``config.json``, as exported for the Hub), loaded in Keras' safe mode. Models on
    the Hub are resolved to such a folder first (:func:`keras_mlrs.hub.resolve`).

    The model is returned compiled when it was saved compiled, so
    :func:`keras_mlrs.core.decision.rule_of` finds the decision rule of its loss."""
    path = Path(source)
    if path.is_dir() and (path / "config.json").is_file():
        if checkpoint is not None:
            raise RunError(f"{path} is one exported model; a checkpoint ({checkpoint}) can be chosen in run "
                           "directories only.")
    else:
        path = model_file(path, checkpoint)
        check_keras_file(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = keras.saving.load_model(path, compile=compile, safe_mode=True)
        except Exception as err:  # noqa: BLE001 - any reason a file is not a loadable model
            raise RunError(f"cannot load {source} as a Keras model: {_load_problem(path, err)}") from None
    for warning in caught:
        text = str(warning.message)
        if WEIGHTS_LEFT_OUT in text:  # Keras loads the model and leaves some layers untrained
            raise RunError(f"cannot load {source} as a Keras model: its weights do not fit its architecture "
                           f"({text.split(':')[0].strip()}); {DAMAGED}")
        if not text.startswith("Skipping variable loading for optimizer"):  # a model saved before its first step
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if keras.backend.backend() == "torch" and getattr(model, "compiled", False) and model.jit_compile:
        # A model saved under JAX keeps its jit_compile=True, which PyTorch takes for
        # torch.compile: some 15 s of compiling before a one-batch evaluation. Keras' own
        # choice under PyTorch is eager.
        model.jit_compile = False
    return model


#: the warning Keras gives when a model loads with some of its layers left freshly initialized
WEIGHTS_LEFT_OUT = "retain their freshly-initialized weights"
#: what to do about a damaged model file
DAMAGED = "the file is damaged, cut short, or holds another model's weights: download or save it again."


def _load_problem(path: Path, err: Exception) -> str:
    """Why Keras could not load ``path``, in one line (its own messages run over many lines, and
    a folder whose weights file is unreadable fails inside Keras with an unrelated error)."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    weights = path / "model.weights.h5"
    if isinstance(err, UnboundLocalError) and path.is_dir():
        if not weights.is_file():
            return f"{weights.name} is missing from the folder; {DAMAGED}"
        try:
            import h5py  # Keras' weights format: only this diagnosis opens the file itself

            h5py.File(weights, "r").close()
        except Exception as why:  # noqa: BLE001 - any reason the weights file is unreadable
            return f"its weights file {weights.name} cannot be read ({str(why).splitlines()[0]}); {DAMAGED}"
    if "Unable to synchronously open file" in first or "file signature not found" in first:
        return f"its weights are not a readable HDF5 file ({first.split('(')[-1].rstrip(')')}); {DAMAGED}"
    if "could not be loaded" in first:
        return f"its weights do not fit its architecture ({first.split('.')[0]}); {DAMAGED}"
    return first
