"""Training: the loop that fills a run directory (``mlrs train``).

:func:`train` validates a :class:`~keras_mlrs.runs.config.TrainConfig`, builds the data and
the model, and trains epoch by epoch, checkpointing after each one (see
:mod:`keras_mlrs.runs.directory` for the files); :func:`resume` continues an interrupted
run from its last completed epoch.

Each epoch's shuffling is seeded by ``(seed, epoch)`` and the checkpoint carries the
optimizer and random-generator state, so a resumed run goes on as the uninterrupted one
would have.
"""

import json
import os
import shutil
import tempfile
import time
import warnings
from contextlib import ExitStack, nullcontext

import keras

from keras_mlrs import models
from keras_mlrs.bigearthnet import split_name
from keras_mlrs.core import losses, metrics, optimizers
from keras_mlrs.data import load, open_source, tensorflow_available
from keras_mlrs.errors import MlrsError, RunError, printable
from keras_mlrs.files import (
    atomic_save_model,
    atomic_write_text,
    check_folder_path,
    folder_lock,
    holds_anything,
    make_folder,
)
from keras_mlrs.runs.config import TrainConfig
from keras_mlrs.runs.directory import (
    BEST_METRIC,
    HISTORY_COLUMNS,
    METRICS,
    TENSORBOARD,
    RunDirectory,
    empty_state,
    load_model,
)
from keras_mlrs.runs.evaluation import evaluate


# -- devices and strategies ------------------------------------------------------------------
def describe_devices() -> dict:
    """The devices the backend sees: ``{"gpus": [names], "cpus": n}``."""
    if keras.backend.backend() == "jax":
        import jax  # the backend's own device list

        devices = jax.devices()
        gpus = [d.device_kind for d in devices if d.platform == "gpu"]
        return {"gpus": gpus, "cpus": len(jax.devices("cpu")) if not gpus else 0}
    if keras.backend.backend() != "tensorflow":
        return {"gpus": [], "cpus": 1}
    import tensorflow as tf  # tf.distribute and TensorFlow's device list: the TensorFlow side of training

    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus]
    return {"gpus": names, "cpus": len(tf.config.list_logical_devices("CPU"))}


def _strategy(name: str):
    if name == "none":
        return None
    import tensorflow as tf  # tf.distribute: the TensorFlow side of training

    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if "TF_CONFIG" not in os.environ:
        raise MlrsError("`distribute='multiworker'` needs TF_CONFIG describing the cluster and this worker's task; "
                        "see docs/training.md.")
    return tf.distribute.MultiWorkerMirroredStrategy()


def _is_chief() -> bool:
    """Whether this process writes the run directory (always, except for the non-chief
    workers of a multi-worker run)."""
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    except json.JSONDecodeError:
        raise MlrsError("TF_CONFIG is not valid JSON; see docs/training.md.") from None
    task = tf_config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    has_chief = "chief" in tf_config.get("cluster", {})
    return kind == "chief" or (kind == "worker" and index == 0 and not has_chief)


# -- data ----------------------------------------------------------------------------------
class _Data:
    """The run's training and validation data: checked once, loaded per epoch."""

    def __init__(self, config: TrainConfig, layout: str, workers: int = 1):
        self.config, self.layout, self.workers = config, layout, workers
        self.source = open_source(config.data_path(), config.split_scheme(), config.seed, config.fractions)
        self.counts = {s: self.source.count(s) for s in ("train", "validation")}
        for split, n in self.counts.items():
            if n == 0:
                hint = (" Prepare it with `split='random'` to get all three splits." if self.source.format == "prepared"
                        else " Use `split='random'` (with `seed` and `fractions`).")
                raise MlrsError(f"{config.data or 'the bundled sample'} has no patch in the '{split}' split "
                                f"(split scheme: {self.source.split_scheme}).{hint}")
        if workers > 1 and self.counts["train"] is not None:
            if self.counts["train"] < config.batch_size:
                raise MlrsError(f"distributed training drops partial batches, and the train split has "
                                f"{self.counts['train']} patches, fewer than `batch_size={config.batch_size}`; "
                                "lower `batch_size`.")
            if self.counts["validation"] < workers:
                raise MlrsError(f"the validation split has {self.counts['validation']} patch(es), fewer than the "
                                f"{workers} replicas; use more validation data or fewer devices.")

    def dataset(self, split: str, epoch: int | None = None):
        """One epoch of ``split``. When distributed, every batch must split evenly across the
        replicas: training drops its last partial batch, validation re-batches its tail by
        the number of replicas (at most ``replicas - 1`` patches are left out)."""
        c = self.config
        train = split_name(split) == "train"

        def batches(batch_size=c.batch_size, drop_remainder=False):
            return load(self.source, split, batch_size=batch_size, layout=self.layout, upsampling=c.upsampling,
                        shuffle=train, seed=c.seed * 1_000_003 + (epoch or 0), drop_remainder=drop_remainder)

        if self.workers == 1:
            return batches()
        import tensorflow as tf  # tf.distribute: the TensorFlow side of training

        ds = batches(drop_remainder=True)
        n = self.counts.get(split)
        if not train and n:
            whole = (n // c.batch_size) * c.batch_size
            ds = ds.concatenate(batches().unbatch().skip(whole).batch(self.workers, drop_remainder=True))
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.AUTO
        return ds.with_options(options)


# -- the loop ------------------------------------------------------------------------------
class _Recorder:
    """Writes the run directory after each epoch: checkpoint, then state (the commit
    point), then the files derived from them."""

    def __init__(self, run: RunDirectory, state: dict, patches_per_epoch: int | None, write: bool = True,
                 keep_every: int = 0):
        self.run, self.state, self.patches, self.write = run, state, patches_per_epoch, write
        self.keep_every = keep_every

    def epoch_done(self, model, epoch: int, logs: dict, seconds: float):
        row = {"epoch": epoch, **{k: float(logs[k]) for k in HISTORY_COLUMNS[:-2] if k in logs}}
        row["seconds"] = round(seconds, 3)
        row["patches_per_s"] = round(self.patches / seconds, 1) if self.patches else None
        state = {**self.state, "epoch": epoch, "rng": _rng_state(model), "history": [*self.state["history"], row]}
        value = row.get(BEST_METRIC, float("nan"))
        best = state.get("best")
        if best is None or (value == value and value > best["value"]):
            state["best"] = {"metric": BEST_METRIC, "value": value, "epoch": epoch}
        self.state = state
        if self.write:
            atomic_save_model(model, self.run.checkpoint(epoch))
            self.run.write_state(state)
            self.run.materialise(state, self.keep_every)


def _seed_states(model) -> list:
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _rng_state(model) -> list:
    """The state of every random-seed generator of ``model`` (dropout...), in layer order.
    ``.keras`` files do not keep them; saved with the epoch, they let a resumed run draw
    the same dropout masks as an uninterrupted one."""
    return [[int(x) for x in v.numpy().ravel()] for v in _seed_states(model)]


def _restore_rng(model, saved: list) -> None:
    variables = _seed_states(model)
    if len(saved) == len(variables):
        for v, value in zip(variables, saved):
            v.assign(value)


def _optimizer(name: str, lr: float):
    return {"tf1_rmsprop": optimizers.TF1RMSprop, "rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam,
            "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD}[name](learning_rate=lr)


def _prepare_run_dir(run: RunDirectory, overwrite: bool) -> None:
    path = run.path
    if path.exists() and (not path.is_dir() or holds_anything(path)):
        if not overwrite:
            raise RunError(
                f"run directory {path} already exists; continue it with `keras_mlrs.runs.resume('{path}')`, "
                "replace it with `overwrite=True`, or choose another `run_dir`."
            )
        if not run.exists():
            raise RunError(f"{path} exists and is not a run directory; `overwrite=True` only replaces runs; "
                           "choose another `run_dir`.")
        with folder_lock(path, "training"):  # a run another process is training is never replaced
            pass
        shutil.rmtree(path)
    make_folder(path)


def train(config: TrainConfig, run_dir, *, overwrite: bool = False, callbacks=(), on_start=None) -> dict:
    """Train a model as ``config`` says, writing ``run_dir`` (see :mod:`keras_mlrs.runs.directory`).

    Args:
        config: the run's configuration.
        run_dir: the run directory; must not exist (or be empty) unless ``overwrite``.
        overwrite: replace an existing run directory (never a folder that is not a run).
        callbacks: extra Keras callbacks (e.g. a progress display), called every epoch.
        on_start: called with a dict describing the run (devices, data, split scheme,
            patches per split) once everything is checked, before the first epoch.

    Returns:
        The final ``metrics.json`` content (best model evaluated on the validation split).

    Raises:
        MlrsError: for any invalid option, data or run directory, before anything is
            written; nothing is left behind when the first epoch does not complete.
    """
    config.validate()
    check_folder_path(run_dir)
    try:
        str(run_dir).encode("utf-8")
    except UnicodeEncodeError:  # bytes of a file name that are not UTF-8: TensorBoard cannot log there
        raise RunError(f"run directory {printable(run_dir)} is not a UTF-8 path, which TensorBoard's logs need; "
                       "choose another `run_dir`.") from None
    return _run(config, RunDirectory(run_dir), resume=False, overwrite=overwrite, callbacks=callbacks,
                on_start=on_start)


def resume(run_dir, *, callbacks=(), on_start=None) -> dict:
    """Continue the run in ``run_dir`` from its last completed epoch (see :func:`train`)."""
    run = RunDirectory(run_dir)
    if not run.exists():
        raise RunError(f"{run_dir} is not a run directory (no config.toml); nothing to resume.")
    return _run(run.config(), run, resume=True, overwrite=False, callbacks=callbacks, on_start=on_start)


def _model(config: TrainConfig, run: RunDirectory, state: dict):
    """The model to train: the last checkpoint of a resumed run, else a new compiled one."""
    if state["epoch"]:
        checkpoint = run.checkpoint(state["epoch"])
        if not checkpoint.is_file():
            raise RunError(f"run {run.path} has no checkpoint of its last completed epoch ({checkpoint.name}); the run "
                           "directory is damaged: start the run again with `overwrite=True`.")
        model = load_model(checkpoint)  # safe mode; a damaged file is a one-line RunError
        _restore_rng(model, state.get("rng", []))
        return model
    model = models.get(config.model, **config.model_params)
    loss = losses.get(config.loss, **config.loss_params)
    scores = metrics.standard(loss.decision, num_classes=int(model.outputs[0].shape[-1]))
    model.compile(optimizer=_optimizer(config.optimizer, config.lr), loss=loss, metrics=scores, jit_compile=config.jit)
    return model


def _run(config: TrainConfig, run: RunDirectory, *, resume, overwrite, callbacks, on_start):
    with ExitStack() as held:  # the run directory's lock, for as long as this process trains it
        if resume:
            held.enter_context(folder_lock(run.path, "training"))
        return _train_locked(config, run, held, resume=resume, overwrite=overwrite, callbacks=callbacks,
                             on_start=on_start)


def _train_locked(config: TrainConfig, run: RunDirectory, held: ExitStack, *, resume, overwrite, callbacks, on_start):
    state = run.state() if resume else empty_state()
    if resume and state.get("finished"):
        raise RunError(f"run {run.path} already finished its {config.epochs} epochs; nothing to resume.")
    strategy = _strategy(config.distribute)
    workers = strategy.num_replicas_in_sync if strategy is not None else 1
    chief = _is_chief() if config.distribute == "multiworker" else True

    previous_policy = keras.config.dtype_policy()
    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    created = False
    try:
        with strategy.scope() if strategy is not None else nullcontext():
            model = _model(config, run, state)
        data = _Data(config, models.input_layout(model), workers)
        validation = data.dataset("validation")
        if not chief:  # non-chief workers of a multi-worker run write to a scratch folder
            run = RunDirectory(tempfile.mkdtemp(prefix="mlrs-worker-"))
        elif not resume:
            _prepare_run_dir(run, overwrite)
            held.enter_context(folder_lock(run.path, "training"))
            created = True
            atomic_write_text(run.path / "config.toml", config.to_toml())
        else:
            run.materialise(state, config.keep_every)
        recorder = _Recorder(run, state, data.counts["train"], write=chief, keep_every=config.keep_every)
        if on_start is not None:
            on_start({
                "run_dir": run.path, "config": config, "devices": describe_devices(), "replicas": workers,
                "data": str(data.source.path), "format": data.source.format,
                "split_scheme": data.source.split_scheme, "patches": data.counts, "start_epoch": state["epoch"],
                "model_params": model.count_params(), "decision": model.loss.decision,
            })
        board = [keras.callbacks.TensorBoard(log_dir=str(run / TENSORBOARD))] if tensorflow_available() else []
        if not board and state["epoch"] == 0:
            warnings.warn("TensorFlow is not installed, so this run writes no TensorBoard logs (history.csv and "
                          "learning_curve.png hold the same figures).", stacklevel=2)
        for epoch in range(state["epoch"], config.epochs):
            start = time.perf_counter()
            with warnings.catch_warnings():  # the datasets are shuffled and sized by the loader
                warnings.filterwarnings("ignore", message=".*(shuffle=True|ran out of data).*")
                history = model.fit(data.dataset("train", epoch), validation_data=validation, initial_epoch=epoch,
                                    epochs=epoch + 1, shuffle=False, verbose=0, callbacks=[*board, *callbacks])
            logs = {k: v[-1] for k, v in history.history.items()}
            recorder.epoch_done(model, epoch + 1, logs, time.perf_counter() - start)
            created = False  # a completed epoch makes the run resumable: never remove it now
        return _finish(run, recorder.state, data, model, write=chief)
    except BaseException:
        if created:  # nothing completed: leave no half-written run directory behind
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _finish(run: RunDirectory, state: dict, data: _Data, model, write: bool) -> dict:
    """Evaluate the final model (the study's) on the validation split, write ``metrics.json``
    and mark the run finished."""
    result = {"split": "validation", "checkpoint": {"name": "last", "epoch": state["epoch"]},
              "best_epoch": state["best"]["epoch"], "epochs": state["epoch"]}
    if write:
        if data.workers > 1:  # a distributed model predicts per replica: evaluate the saved one, on one device
            model = load_model(run.path)
        result.update(evaluate(model, data.dataset("validation")))
        atomic_write_text(run / METRICS, json.dumps(result, indent=1))
        run.write_state({**state, "finished": True})
    return result


__all__ = ["describe_devices", "resume", "train"]
