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
from contextlib import ExitStack
from functools import partial

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
from keras_mlrs.runs import distributed
from keras_mlrs.runs.config import TrainConfig
from keras_mlrs.runs.directory import (
    BEST_METRIC,
    HISTORY_COLUMNS,
    METRICS,
    STATE,
    TENSORBOARD,
    RunDirectory,
    empty_state,
    load_model,
)
from keras_mlrs.runs.distributed import Cluster, Parallelism
from keras_mlrs.runs.evaluation import evaluate


# -- devices and strategies ------------------------------------------------------------------
def describe_devices() -> dict:
    """The devices the backend sees: ``{"gpus": [names], "cpus": n}``."""
    if keras.backend.backend() == "jax":
        import jax  # the backend's own device list

        devices = jax.devices()
        gpus = [d.device_kind for d in devices if d.platform == "gpu"]
        return {"gpus": gpus, "cpus": len(jax.devices("cpu")) if not gpus else 0}
    if keras.backend.backend() == "torch":
        import torch  # the backend's own device list

        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
        return {"gpus": gpus, "cpus": 0 if gpus else 1}
    if keras.backend.backend() != "tensorflow":
        return {"gpus": [], "cpus": 1}
    import tensorflow as tf  # tf.distribute and TensorFlow's device list: the TensorFlow side of training

    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus]
    return {"gpus": names, "cpus": len(tf.config.list_logical_devices("CPU"))}


# -- data ----------------------------------------------------------------------------------
class _Data:
    """The run's training and validation data: checked once, loaded per epoch."""

    def __init__(self, config: TrainConfig, layout: str, parallel: Parallelism | None = None):
        self.config, self.layout = config, layout
        self.parallel = parallel = parallel or Parallelism()
        self.workers = parallel.replicas
        self.source = open_source(config.data_path(), config.split_scheme(), config.seed, config.fractions)
        self.counts = {s: self.source.count(s) for s in ("train", "validation")}
        for split, n in self.counts.items():
            if n == 0:
                hint = (" Prepare it with `split='random'` to get all three splits." if self.source.format == "prepared"
                        else " Use `split='random'` (with `seed` and `fractions`).")
                raise MlrsError(f"{config.data or 'the bundled sample'} has no patch in the '{split}' split "
                                f"(split scheme: {self.source.split_scheme}).{hint}")
        self.pipeline = "numpy" if parallel.strategy is None and parallel.replicas > 1 else config.pipeline
        if parallel.strategy is None and self.workers > 1 and config.batch_size % self.workers:
            raise MlrsError(f"`batch_size={config.batch_size}` does not split evenly over the {self.workers} devices "
                            f"of the run; choose a multiple of {self.workers}.")
        if self.workers > 1 and self.counts["train"] is not None:
            if self.counts["train"] < config.batch_size and parallel.strategy is not None:
                raise MlrsError(f"distributed training drops partial batches, and the train split has "
                                f"{self.counts['train']} patches, fewer than `batch_size={config.batch_size}`; "
                                "lower `batch_size`.")
            if self.counts["validation"] < self.workers:
                raise MlrsError(f"the validation split has {self.counts['validation']} patch(es), fewer than the "
                                f"{self.workers} replicas; use more validation data or fewer devices.")

    def dataset(self, split: str, epoch: int | None = None, whole: bool = False):
        """One epoch of ``split`` (``whole``: all of it, for one process alone). When
        distributed, every batch must split evenly across the replicas: under TensorFlow,
        training drops its last partial batch and validation re-batches its tail by the
        number of replicas; under JAX the last batch of either is cut to a multiple of the
        replicas. At most ``replicas - 1`` patches are left out of a pass."""
        c, p = self.config, self.parallel
        train = split_name(split) == "train"
        spread = p.replicas > 1 and not whole

        def batches(batch_size=c.batch_size, drop_remainder=False):
            return load(self.source, split, batch_size=batch_size, layout=self.layout, upsampling=c.upsampling,
                        shuffle=train, reshuffle=False, seed=c.seed * 1_000_003 + (epoch or 0),
                        drop_remainder=drop_remainder,
                        pipeline="auto" if whole else self.pipeline,
                        process=(p.processes, p.index) if spread and p.strategy is None else None,
                        multiple=p.replicas if spread and p.strategy is None else 1)

        if not spread or p.strategy is None:
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
    point), then the files derived from them. The learning curve (two 300 dpi figures, a
    second or two to draw) is redrawn at most once every ``CURVE_EVERY`` seconds, and when
    the run finishes (:meth:`finish`)."""

    CURVE_EVERY = 60.0

    def __init__(self, run: RunDirectory, state: dict, patches_per_epoch: int | None, write: bool = True,
                 keep_every: int = 0):
        self.run, self.state, self.patches, self.write = run, state, patches_per_epoch, write
        self.keep_every = keep_every
        self.drawn = time.monotonic()  # the first curve after a minute's training

    def epoch_done(self, model, epoch: int, logs: dict, seconds: float):
        row = {"epoch": epoch, **{k: float(logs[k]) for k in HISTORY_COLUMNS[:-2] if k in logs}}
        row["seconds"] = round(seconds, 3)
        row["patches_per_s"] = round(self.patches / seconds, 1) if self.patches else None
        state = {**self.state, "epoch": epoch, "backend": keras.backend.backend(), "rng": _rng_state(model),
                 "history": [*self.state["history"], row]}
        value = row.get(BEST_METRIC, float("nan"))
        best = state.get("best")
        if best is None or (value == value and value > best["value"]):
            state["best"] = {"metric": BEST_METRIC, "value": value, "epoch": epoch}
        self.state = state
        if self.write:
            atomic_save_model(model, self.run.checkpoint(epoch))
            self.run.write_state(state)
            curve = time.monotonic() - self.drawn >= self.CURVE_EVERY
            self.run.materialise(state, self.keep_every, curve=curve)
            if curve:
                self.drawn = time.monotonic()
        else:  # the other processes of a multiprocess run save too (saving reads every process's arrays)
            with tempfile.TemporaryDirectory(prefix="mlrs-process-") as scratch:
                model.save(os.path.join(scratch, "epoch.keras"))


def _seed_states(model) -> list:
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _rng_state(model) -> list:
    """The state of every random-seed generator of ``model`` (dropout...), in layer order.
    ``.keras`` files do not keep them; saved with the epoch, they let a resumed run draw
    the same dropout masks as an uninterrupted one."""
    return [[int(x) for x in v.numpy().ravel()] for v in _seed_states(model)]


class _EpochSeed(keras.callbacks.Callback):
    """Under PyTorch, seed its global generator from ``(seed, epoch)`` as each epoch's first
    step is about to run. Keras draws the masks of a dropout layer built without a seed from
    that generator there, not from the layer's seed generator (whose state :func:`_rng_state`
    saves), and a first ``fit`` on a model draws from it before that, so a resumed run would
    otherwise draw other masks. The other backends draw every mask from the seed generators."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        if keras.backend.backend() == "torch":
            import torch  # the backend in use, and only it

            torch.manual_seed(self.seed * 1_000_003 + epoch)


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


def train(config: TrainConfig, run_dir, *, overwrite: bool = False, callbacks=(), on_start=None,
          cluster: Cluster | None = None) -> dict:
    """Train a model as ``config`` says, writing ``run_dir`` (see :mod:`keras_mlrs.runs.directory`).

    Args:
        config: the run's configuration.
        run_dir: the run directory; must not exist (or be empty) unless ``overwrite``.
        overwrite: replace an existing run directory (never a folder that is not a run).
        callbacks: extra Keras callbacks (e.g. a progress display), called every epoch.
        on_start: called with a dict describing the run (devices, data, split scheme,
            patches per split) once everything is checked, before the first epoch.
        cluster: for ``distribute='multiprocess'``, where the processes meet (default: the
            ``MLRS_*`` environment variables, else JAX's cluster detection); every process
            calls ``train`` with the same ``config`` and ``run_dir``, and only process 0
            writes there (on a file system the others can read, for ``resume``).

    Returns:
        The final ``metrics.json`` content (the final model evaluated on the validation
        split); in the other processes of a multiprocess run, which evaluate nothing, only
        ``split``, ``checkpoint``, ``best_epoch``, ``epochs`` and ``process``.

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
                on_start=on_start, cluster=cluster)


def resume(run_dir, *, callbacks=(), on_start=None, cluster: Cluster | None = None) -> dict:
    """Continue the run in ``run_dir`` from its last completed epoch (see :func:`train`)."""
    run = RunDirectory(run_dir)
    if not run.exists():
        raise RunError(f"{run_dir} is not a run directory (no config.toml); nothing to resume.")
    trained_under = run.state().get("backend")
    if trained_under not in (None, keras.backend.backend()):
        # its weights, optimizer state and data order would carry over, its random streams not
        raise RunError(f"run {run.path} was trained under {trained_under}: resume it with KERAS_BACKEND={trained_under}. "
                       f"Under {keras.backend.backend()} its dropout masks would be drawn by another random generator, "
                       "so the run would not go on as it would have (its models load under every backend).")
    return _run(run.config(), run, resume=True, overwrite=False, callbacks=callbacks, on_start=on_start,
                cluster=cluster)


def _model(config: TrainConfig, run: RunDirectory, state: dict):
    """The model to train: the last checkpoint of a resumed run, else a new compiled one."""
    if state["epoch"]:
        checkpoint = run.checkpoint(state["epoch"])
        if not checkpoint.is_file():
            raise RunError(f"run {run.path} has no checkpoint of its last completed epoch ({checkpoint.name}); the run "
                           "directory is damaged: start the run again with `overwrite=True`.")
        model = load_model(checkpoint)  # safe mode; a damaged file is a one-line RunError
        _restore_rng(model, state.get("rng", []))
        if isinstance(config.jit, bool):
            model.jit_compile = config.jit  # as the run asked (load_model may have changed it)
        return model
    model = models.get(config.model, **config.model_params)
    loss = losses.get(config.loss, **config.loss_params)
    scores = metrics.standard(loss.decision, num_classes=int(model.outputs[0].shape[-1]))
    model.compile(optimizer=_optimizer(config.optimizer, config.lr), loss=loss, metrics=scores, jit_compile=config.jit)
    return model


def _run(config: TrainConfig, run: RunDirectory, *, resume, overwrite, callbacks, on_start, cluster):
    if config.distribute == "multiprocess":
        (cluster or Cluster.from_environment()).check()  # a one-line error before waiting for anyone
    distributed.check_backend(config.distribute)
    parallel = distributed.start(config.distribute, cluster)
    try:
        with ExitStack() as held:  # the run directory's lock, for as long as this process trains it
            if resume and parallel.chief:
                held.enter_context(folder_lock(run.path, "training"))
            return _train_locked(config, run, held, parallel, resume=resume, overwrite=overwrite,
                                 callbacks=callbacks, on_start=on_start)
    except BaseException:
        distributed.abandon()  # the other processes of a multiprocess run stop too, at once
        raise
    finally:
        distributed.stop(parallel)


def _train_locked(config: TrainConfig, run: RunDirectory, held: ExitStack, parallel: Parallelism, *, resume,
                  overwrite, callbacks, on_start):
    state = run.state() if resume else empty_state()
    if resume and state.get("finished"):
        raise RunError(f"run {run.path} already finished its {config.epochs} epochs; nothing to resume.")
    chief = parallel.chief

    previous_policy = keras.config.dtype_policy()
    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    created = False
    try:
        with parallel.scope():
            model = _model(config, run, state)
        data = _Data(config, models.input_layout(model), parallel)
        validation = data.dataset("validation")
        if chief and not resume:  # the other processes of a multiprocess run write nothing there
            _prepare_run_dir(run, overwrite)
            held.enter_context(folder_lock(run.path, "training"))
            created = True
            atomic_write_text(run.path / "config.toml", config.to_toml())
        elif chief:
            run.materialise(state, config.keep_every)
        recorder = _Recorder(run, state, data.counts["train"], write=chief, keep_every=config.keep_every)
        if on_start is not None:
            on_start({
                "run_dir": run.path, "config": config, "devices": describe_devices(), "replicas": parallel.replicas,
                "processes": parallel.processes, "process": parallel.index,
                "data": str(data.source.path), "format": data.source.format,
                "split_scheme": data.source.split_scheme, "patches": data.counts, "start_epoch": state["epoch"],
                "model_params": model.count_params(), "decision": model.loss.decision,
            })
        logged = chief and tensorflow_available()
        board = [keras.callbacks.TensorBoard(log_dir=str(run / TENSORBOARD))] if logged else []
        if chief and not board and state["epoch"] == 0:
            warnings.warn("TensorFlow is not installed, so this run writes no TensorBoard logs (history.csv and "
                          "learning_curve.png hold the same figures).", stacklevel=2)
        for epoch in range(state["epoch"], config.epochs):
            start = time.perf_counter()
            with warnings.catch_warnings(), distributed.cleanup_if_lost(partial(_remove_if_fresh, run, created)):
                # the datasets are shuffled and sized by the loader
                warnings.filterwarnings("ignore", message=".*(shuffle=True|ran out of data).*")
                history = model.fit(data.dataset("train", epoch), validation_data=validation, initial_epoch=epoch,
                                    epochs=epoch + 1, shuffle=False, verbose=0,
                                    callbacks=[_EpochSeed(config.seed), *board, *callbacks])
                logs = {k: v[-1] for k, v in history.history.items()}
                recorder.epoch_done(model, epoch + 1, logs, time.perf_counter() - start)
            created = False  # a completed epoch makes the run resumable: never remove it now
        distributed.stop(parallel, finished=True)  # the final evaluation: process 0 alone, on its own devices
        result = _finish(run, recorder.state, data, model, write=chief)
        return {**result, "process": parallel.index} if parallel.processes > 1 else result
    except BaseException:
        if created:  # nothing completed: leave no half-written run directory behind
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _remove_if_fresh(run: RunDirectory, created: bool) -> None:
    """Another process of the run was lost: a run directory this process created whose first
    epoch is not committed (no ``state.json`` yet) goes, as after any failure."""
    if created and not (run.path / STATE).exists():
        shutil.rmtree(run.path, ignore_errors=True)


def _finish(run: RunDirectory, state: dict, data: _Data, model, write: bool) -> dict:
    """Evaluate the final model (the study's) on the validation split, write ``metrics.json``
    and mark the run finished."""
    result = {"split": "validation", "checkpoint": {"name": "last", "epoch": state["epoch"]},
              "best_epoch": state["best"]["epoch"], "epochs": state["epoch"]}
    if write:
        if data.workers > 1:  # a distributed model predicts per replica: evaluate the saved one, on one device
            model = load_model(run.path)
        result.update(evaluate(model, data.dataset("validation", whole=True)))
        atomic_write_text(run / METRICS, json.dumps(result, indent=1))
        run.draw_curve(state)
        run.write_state({**state, "finished": True})
    return result


__all__ = ["describe_devices", "resume", "train"]
