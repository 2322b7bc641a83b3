"""Training: a configuration, a run directory, and the loop that fills it (``mlrs train``).

:class:`TrainConfig` holds every choice of a run (the defaults are the study's: K-Branch
CNN, RMSprop at 1e-4, batch 1024, 80 epochs). :func:`train` validates it, builds the data
and the model, and trains epoch by epoch, checkpointing after each one (see
:mod:`keras_mlrs.runs` for the files); :func:`resume` continues an interrupted run from
its last completed epoch.

Each epoch's shuffling is seeded by ``(seed, epoch)`` and the checkpoint carries the
optimizer and random-generator state, so a resumed run goes on as the uninterrupted one
would have.
"""

import csv
import io
import json
import math
import os
import shutil
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from keras_mlrs import runs
from keras_mlrs.errors import InvalidParameterError, MlrsError, UnknownNameError, did_you_mean
from keras_mlrs.files import atomic_link, atomic_save_model, atomic_write_text, toml_dumps

OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd")
DISTRIBUTE = ("none", "mirrored", "multiworker")
SPLIT_SCHEMES = ("auto", "official", "random")
#: The validation metric that picks ``best.keras``.
BEST_METRIC = "val_f1_samples"
#: Columns of ``history.csv`` after ``epoch``.
HISTORY_COLUMNS = (
    "loss", "val_loss",
    *(f"val_{s}_{a}" for a in ("micro", "macro", "samples") for s in ("precision", "recall", "f1")),
    "seconds", "patches_per_s",
)


@dataclass
class TrainConfig:
    """Every option of a training run; ``config.toml`` in the run directory holds one.

    Attributes:
        loss: a registered loss (``keras_mlrs.losses.names()``).
        loss_params: its hyperparameters (see ``mlrs losses``).
        model: a registered architecture (``keras_mlrs.models.names()``).
        model_params: its parameters (``keras_mlrs.models.parameters(model)``).
        data: prepared shards, official TFRecords or a raw archive; ``""`` is the bundled
            6-patch sample.
        split: ``official`` (the official lists, or the v2 metadata), ``random`` (seeded
            by ``seed``, in ``fractions``; raw archives only), or ``auto``: official, except
            random for the bundled sample, whose 6 patches have no official validation
            patch. Prepared shards keep the split they were prepared with.
        fractions: train, validation and test fractions of the random split.
        epochs: training epochs (the study's: 80).
        batch_size: patches per step (the study's: 1024); split across replicas when
            distributed.
        optimizer: ``rmsprop`` (the study's), ``adam``, ``adamw`` or ``sgd``.
        lr: learning rate (the study's: 1e-4).
        seed: seeds weights, dropout, shuffling and the random split.
        mixed_precision: compute in float16 (``mixed_float16``; losses stay float32).
        jit: XLA-compile the training step: ``"auto"`` (Keras' choice), true or false.
        distribute: ``none``, ``mirrored`` (every local GPU, or every logical CPU device
            when there is no GPU) or ``multiworker`` (configured by ``TF_CONFIG``).
        upsampling: ``nearest`` or ``bilinear``, for models on the stacked layout.
    """

    loss: str = "bce"
    loss_params: dict = field(default_factory=dict)
    model: str = "kbranch"
    model_params: dict = field(default_factory=dict)
    data: str = ""
    split: str = "auto"
    fractions: list = field(default_factory=lambda: [0.6, 0.2, 0.2])
    epochs: int = 80
    batch_size: int = 1024
    optimizer: str = "rmsprop"
    lr: float = 1e-4
    seed: int = 0
    mixed_precision: bool = False
    jit: str | bool = "auto"
    distribute: str = "none"
    upsampling: str = "nearest"

    @classmethod
    def from_dict(cls, values: dict, source: str = "configuration") -> "TrainConfig":
        """A configuration from ``values`` (e.g. a parsed TOML file), unknown keys refused."""
        names = [f.name for f in fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            raise InvalidParameterError(
                f"{source}: unknown option '{unknown[0]}'.{did_you_mean(unknown[0], names)} "
                f"Options: {', '.join(names)}."
            )
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def from_toml(cls, path, overrides: dict | None = None) -> "TrainConfig":
        """Read a TOML file (the keys of :class:`TrainConfig`); ``overrides`` win."""
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib

        path = Path(path)
        if not path.is_file():
            raise InvalidParameterError(f"configuration file {path} does not exist.")
        try:
            values = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise InvalidParameterError(f"{path} is not valid TOML: {err}.") from None
        values.pop("keras_mlrs_version", None)
        for key, value in (overrides or {}).items():
            if isinstance(value, dict):
                values[key] = {**values.get(key, {}), **value}
            else:
                values[key] = value
        return cls.from_dict(values, source=str(path))

    def to_toml(self) -> str:
        from keras_mlrs import __version__

        header = (
            "# keras-mlrs training configuration: `mlrs train --config config.toml` reruns it.\n"
            '# data = "" is the bundled 6-patch sample.\n'
        )
        return header + toml_dumps({"keras_mlrs_version": __version__, **asdict(self)})

    def validate(self) -> None:
        """Raise :class:`MlrsError` naming the first invalid option."""
        from keras_mlrs import losses, models

        losses.get(self.loss, **self.loss_params)
        models.parameters(self.model)
        for key in self.model_params:
            if key not in models.parameters(self.model):
                raise InvalidParameterError(
                    f"model '{self.model}' has no parameter '{key}'; its parameters: "
                    f"{', '.join(models.parameters(self.model))}."
                )
        for name, lo in (("epochs", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise InvalidParameterError(f"{name} must be an integer >= {lo}, got {value!r}.")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (0 < self.lr < math.inf):
            raise InvalidParameterError(f"lr must be a positive number, got {self.lr!r}.")
        self.lr = float(self.lr)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidParameterError(f"seed must be an integer >= 0, got {self.seed!r}.")
        for name, choices in (("optimizer", OPTIMIZERS), ("distribute", DISTRIBUTE), ("split", SPLIT_SCHEMES),
                              ("upsampling", ("nearest", "bilinear"))):
            value = getattr(self, name)
            if value not in choices:
                raise UnknownNameError(
                    f"unknown {name} '{value}'; choose one of {', '.join(choices)}.{did_you_mean(value, choices)}"
                )
        if self.jit not in ("auto", True, False):
            raise InvalidParameterError(f"jit must be 'auto', true or false, got {self.jit!r}.")
        if not isinstance(self.mixed_precision, bool):
            raise InvalidParameterError(f"mixed_precision must be true or false, got {self.mixed_precision!r}.")
        from keras_mlrs.data.splits import parse_fractions

        self.fractions = list(parse_fractions(",".join(str(f) for f in self.fractions)))

    # -- derived ---------------------------------------------------------------------------
    def data_path(self) -> Path:
        from keras_mlrs.data import sample_path

        return Path(self.data).expanduser() if self.data else sample_path()

    def split_scheme(self) -> str:
        if self.split != "auto":
            return self.split
        return "random" if not self.data else "official"


def parse_param(text: str) -> tuple[str, object]:
    """``"name=value"`` from the command line: the value read as JSON when it parses (numbers,
    ``true``, ``null``, lists), else kept as a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise InvalidParameterError(f"'{text}' is not name=value (e.g. --loss-param gamma=2).")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.strip(), value


# -- devices and strategies ------------------------------------------------------------------
def describe_devices() -> dict:
    """The devices TensorFlow sees: ``{"gpus": [names], "cpus": n}``."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return {"gpus": names, "cpus": len(tf.config.list_logical_devices("CPU"))}


def _strategy(name: str):
    import tensorflow as tf

    if name == "none":
        return None
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if "TF_CONFIG" not in os.environ:
        raise MlrsError("--distribute multiworker needs TF_CONFIG describing the cluster and this worker's task; see docs/training.md.")
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
        from keras_mlrs.data import detect_format
        from keras_mlrs.data.archives import unpack_if_tar

        self.config, self.layout, self.workers = config, layout, workers
        self.path = unpack_if_tar(config.data_path())
        self.format = detect_format(self.path)
        self.scheme = config.split_scheme()
        if self.format == "prepared":
            from keras_mlrs.data import read_manifest

            self.scheme = read_manifest(self.path)["split_scheme"]
        self.counts = {s: _count(self.path, self.format, s, self.scheme, config) for s in ("train", "validation")}
        for split, n in self.counts.items():
            if n == 0:
                hint = (" Prepare it with --split random to get all three splits."
                        if self.format == "prepared" else " Use --split random (with --seed and --fractions).")
                raise MlrsError(f"{config.data or 'the bundled sample'} has no patch in the '{split}' split "
                                f"(split scheme: {self.scheme}).{hint}")
        if workers > 1 and self.counts["train"] is not None:
            if self.counts["train"] < config.batch_size:
                raise MlrsError(f"distributed training drops partial batches, and the train split has "
                                f"{self.counts['train']} patches, fewer than --batch-size {config.batch_size}; "
                                "lower --batch-size.")
            if self.counts["validation"] < workers:
                raise MlrsError(f"the validation split has {self.counts['validation']} patch(es), fewer than the "
                                f"{workers} replicas; use more validation data or fewer devices.")

    def dataset(self, split: str, epoch: int | None = None):
        """One epoch of ``split``. When distributed, every batch must split evenly across the
        replicas: training drops its last partial batch, validation re-batches its tail by
        the number of replicas (at most ``replicas - 1`` patches are left out)."""
        from keras_mlrs.data import load

        c = self.config
        train = split == "train"
        distributed = self.workers > 1

        def batches(batch_size=c.batch_size, drop_remainder=False):
            return load(
                self.path, split, batch_size=batch_size, layout=self.layout, upsampling=c.upsampling,
                shuffle=train, seed=c.seed * 1_000_003 + (epoch or 0), split_scheme=self.scheme,
                fractions=tuple(c.fractions), split_seed=c.seed, drop_remainder=drop_remainder,
            )

        if not distributed:
            return batches()
        import tensorflow as tf

        ds = batches(drop_remainder=True)
        n = self.counts.get(split)
        if not train and n:
            whole = (n // c.batch_size) * c.batch_size
            ds = ds.concatenate(batches().unbatch().skip(whole).batch(self.workers, drop_remainder=True))
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.AUTO
        return ds.with_options(options)


def _count(path, fmt, split, scheme, config) -> int | None:
    """Patches in ``split``; None when only reading every record would tell."""
    from keras_mlrs.data import read_manifest
    from keras_mlrs.data.pipeline import _raw_patches

    if fmt == "prepared":
        entry = read_manifest(path)["splits"].get(split)
        return entry["records"] if entry else 0
    if fmt in ("v1", "v2"):
        return len(_raw_patches(path, split, scheme, config.seed, tuple(config.fractions)))
    return None


# -- the loop ------------------------------------------------------------------------------
class _Recorder:
    """Writes the run directory after each epoch: checkpoint, then state (the commit
    point), then the files derived from them."""

    def __init__(self, run_dir: Path, state: dict, patches_per_epoch: int | None, write: bool = True):
        self.run_dir, self.state, self.patches, self.write = run_dir, state, patches_per_epoch, write

    def epoch_done(self, model, epoch: int, logs: dict, seconds: float):
        row = {"epoch": epoch, **{k: float(logs[k]) for k in HISTORY_COLUMNS[:-2] if k in logs}}
        row["seconds"] = round(seconds, 3)
        row["patches_per_s"] = round(self.patches / seconds, 1) if self.patches else None
        state = dict(self.state)
        state["epoch"] = epoch
        state["rng"] = _rng_state(model)
        state["history"] = [*self.state["history"], row]
        value = row.get(BEST_METRIC, float("nan"))
        best = state.get("best")
        if best is None or (value == value and value > best["value"]):
            state["best"] = {"metric": BEST_METRIC, "value": value, "epoch": epoch}
        if self.write:
            ckpt = self.run_dir / runs.CHECKPOINTS / f"epoch-{epoch:04d}.keras"
            atomic_save_model(model, ckpt)
            atomic_write_text(self.run_dir / runs.STATE, json.dumps(state, indent=1))
        self.state = state
        if self.write:
            materialise(self.run_dir, state)


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


def materialise(run_dir: Path, state: dict) -> None:
    """Bring the files derived from ``state.json`` up to date: ``last.keras``,
    ``best.keras``, ``history.csv``, ``learning_curve.png``; drop stale checkpoints."""
    from keras_mlrs import plots

    run_dir = Path(run_dir)
    if not state["epoch"]:
        return
    ckpts = run_dir / runs.CHECKPOINTS
    keep = {f"epoch-{state['epoch']:04d}.keras", f"epoch-{state['best']['epoch']:04d}.keras"}
    atomic_link(ckpts / f"epoch-{state['epoch']:04d}.keras", run_dir / runs.LAST)
    atomic_link(ckpts / f"epoch-{state['best']['epoch']:04d}.keras", run_dir / runs.BEST)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["epoch", *HISTORY_COLUMNS])
    for row in state["history"]:
        writer.writerow([row["epoch"], *(_fmt(row.get(k)) for k in HISTORY_COLUMNS)])
    atomic_write_text(run_dir / runs.HISTORY, out.getvalue())
    plots.learning_curve(state["history"], run_dir / runs.CURVE, best_epoch=state["best"]["epoch"])
    for f in ckpts.glob("*.keras"):
        if f.name not in keep:
            f.unlink(missing_ok=True)


def _fmt(v):
    return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)


def _optimizer(name: str, lr: float):
    import keras

    return {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam,
            "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD}[name](learning_rate=lr)


def _prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        if not overwrite:
            raise runs.RunError(
                f"run directory {run_dir} already exists; continue it with --resume {run_dir}, "
                "replace it with --overwrite, or choose another --run-dir."
            )
        if not runs.is_run_dir(run_dir):
            raise runs.RunError(
                f"{run_dir} exists and is not a run directory (no {runs.CONFIG}); "
                "--overwrite only replaces runs; choose another --run-dir."
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def train(config: TrainConfig, run_dir, *, overwrite: bool = False, callbacks=(), on_start=None) -> dict:
    """Train a model as ``config`` says, writing ``run_dir`` (see :mod:`keras_mlrs.runs`).

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
    return _run(config, Path(run_dir), resume=False, overwrite=overwrite, callbacks=callbacks, on_start=on_start)


def resume(run_dir, *, callbacks=(), on_start=None) -> dict:
    """Continue the run in ``run_dir`` from its last completed epoch (see :func:`train`)."""
    run_dir = Path(run_dir)
    if not runs.is_run_dir(run_dir):
        raise runs.RunError(f"{run_dir} is not a run directory (no {runs.CONFIG}); nothing to resume.")
    config = TrainConfig.from_toml(run_dir / runs.CONFIG)
    return _run(config, run_dir, resume=True, overwrite=False, callbacks=callbacks, on_start=on_start)


def _run(config, run_dir, *, resume, overwrite, callbacks, on_start):
    import keras

    from keras_mlrs import losses, metrics, models

    state = runs.read_state(run_dir) if resume else {"epoch": 0, "history": [], "best": None, "finished": False}
    if resume and state.get("finished"):
        raise runs.RunError(f"run {run_dir} already finished its {config.epochs} epochs; nothing to resume.")
    strategy = _strategy(config.distribute)
    workers = strategy.num_replicas_in_sync if strategy is not None else 1
    chief = _is_chief() if config.distribute == "multiworker" else True

    previous_policy = keras.config.dtype_policy()
    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    created = False
    try:
        scope = strategy.scope() if strategy is not None else nullcontext()
        with scope:
            if resume and state["epoch"]:
                model = keras.saving.load_model(
                    run_dir / runs.CHECKPOINTS / f"epoch-{state['epoch']:04d}.keras", safe_mode=True
                )
                _restore_rng(model, state.get("rng", []))
            else:
                model = models.get(config.model, **config.model_params)
                loss = losses.get(config.loss, **config.loss_params)
                model.compile(
                    optimizer=_optimizer(config.optimizer, config.lr), loss=loss,
                    metrics=metrics.standard(loss.decision),
                    jit_compile=config.jit,
                )
        layout = models.input_layout(model)
        data = _Data(config, layout, workers)
        validation = data.dataset("validation")

        write = chief
        if not chief:  # non-chief workers of a multi-worker run write to a scratch folder
            import tempfile

            run_dir = Path(tempfile.mkdtemp(prefix="mlrs-worker-"))
        elif not resume:
            _prepare_run_dir(run_dir, overwrite)
            created = True
            atomic_write_text(run_dir / runs.CONFIG, config.to_toml())
        else:
            materialise(run_dir, state)
        recorder = _Recorder(run_dir, state, data.counts["train"], write=write)
        if on_start is not None:
            on_start({
                "run_dir": run_dir, "config": config, "devices": describe_devices(), "replicas": workers,
                "data": str(data.path), "format": data.format, "split_scheme": data.scheme,
                "patches": data.counts, "start_epoch": state["epoch"], "model_params": model.count_params(),
                "decision": model.loss.decision,
            })
        tensorboard = keras.callbacks.TensorBoard(log_dir=str(run_dir / runs.TENSORBOARD))
        for epoch in range(state["epoch"], config.epochs):
            start = time.perf_counter()
            with warnings.catch_warnings():  # the datasets are shuffled and sized by the loader
                warnings.filterwarnings("ignore", message=".*(shuffle=True|ran out of data).*")
                history = model.fit(
                    data.dataset("train", epoch), validation_data=validation, initial_epoch=epoch,
                    epochs=epoch + 1, shuffle=False, verbose=0, callbacks=[tensorboard, *callbacks],
                )
            logs = {k: v[-1] for k, v in history.history.items()}
            recorder.epoch_done(model, epoch + 1, logs, time.perf_counter() - start)
            created = False  # a completed epoch makes the run resumable: never remove it now
        state = recorder.state
        result = _finish(run_dir, config, state, data, write)
        return result
    except BaseException:
        if created:  # nothing completed: leave no half-written run directory behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _finish(run_dir, config, state, data, write) -> dict:
    from keras_mlrs import evaluation

    model = runs.load_model(run_dir / runs.BEST) if write else None
    result = {"split": "validation", "best_epoch": state["best"]["epoch"], "epochs": state["epoch"]}
    if model is not None:
        result.update(evaluation.evaluate(model, data.dataset("validation")))
        atomic_write_text(run_dir / runs.METRICS, json.dumps(result, indent=1))
        state = {**state, "finished": True}
        atomic_write_text(run_dir / runs.STATE, json.dumps(state, indent=1))
    return result


__all__ = ["DISTRIBUTE", "OPTIMIZERS", "TrainConfig", "describe_devices", "parse_param", "resume", "train"]
