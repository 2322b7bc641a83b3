"""The configuration of a training run: :class:`TrainConfig`, written to the run directory
as ``config.toml`` and read back from it (or from any TOML file of its keys).

The defaults are the study's: the K-Branch CNN with 1,024 units, TensorFlow 1's RMSProp at
1e-4, batch 1024, 80 epochs, the final epoch's model (docs/study.md lists every setting).
"""

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from keras_mlrs.core import losses
from keras_mlrs.data import sample_path
from keras_mlrs.data.patch import UPSAMPLING
from keras_mlrs.data.splits import SCHEMES, parse_fractions
from keras_mlrs.errors import InvalidParameterError, choose, did_you_mean
from keras_mlrs.files import toml_dumps
from keras_mlrs.models import MODELS
from keras_mlrs.version import __version__

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

#: ``tf1_rmsprop`` is the study's (TensorFlow 1's RMSProp update, :mod:`keras_mlrs.core.optimizers`);
#: ``rmsprop`` is Keras'.
OPTIMIZERS = ("tf1_rmsprop", "rmsprop", "adam", "adamw", "sgd")
#: How a run spreads over devices and processes (:mod:`keras_mlrs.runs.distributed`).
DISTRIBUTE = ("none", "mirrored", "data_parallel", "multiprocess")
#: How a run's data reaches the model (:func:`keras_mlrs.data.load`'s ``pipeline``).
PIPELINES = ("auto", "tf.data", "numpy")
#: How a run's data is split: ``auto`` picks ``random`` for the bundled sample, else ``official``.
SPLIT_SCHEMES = ("auto", *SCHEMES)


@dataclass
class TrainConfig:
    """Every option of a training run; ``config.toml`` in the run directory holds one.

    Attributes:
        loss: a registered loss (``keras_mlrs.core.losses.names()``).
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
        optimizer: ``tf1_rmsprop`` (the study's: TensorFlow 1's RMSProp, decay 0.9,
            epsilon 1e-10 inside the square root, accumulator starting at 1),
            ``rmsprop`` (Keras'), ``adam``, ``adamw`` or ``sgd``.
        lr: learning rate (the study's: 1e-4).
        seed: seeds weights, dropout, shuffling and the random split.
        keep_every: also keep the first and every N-th epoch's checkpoint
            (``checkpoints/epoch-0001.keras``, ``epoch-0020.keras``...), e.g. for LRP during
            training; 0 keeps only the last and the best.
        mixed_precision: compute in float16 (``mixed_float16``; losses stay float32).
        jit: XLA-compile the training step: ``"auto"`` (Keras' choice), true or false.
        distribute: ``none``; ``mirrored`` (TensorFlow: every local GPU, or every logical
            CPU device when there is no GPU); ``data_parallel`` (JAX: every local device);
            ``multiprocess`` (JAX: every device of every process of a cluster, see
            :mod:`keras_mlrs.runs.distributed`).
        pipeline: ``auto`` (``tf.data`` when TensorFlow can be imported, else ``numpy``; for
            prepared shards under PyTorch, ``numpy``; always ``numpy`` for ``multiprocess``),
            ``tf.data`` or ``numpy`` (prepared shards through Keras' backend-neutral PyDataset).
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
    optimizer: str = "tf1_rmsprop"
    lr: float = 1e-4
    seed: int = 0
    keep_every: int = 0
    mixed_precision: bool = False
    jit: str | bool = "auto"
    distribute: str = "none"
    pipeline: str = "auto"
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
        """The configuration as ``config.toml``, with the keras-mlrs version that wrote it."""
        header = (
            "# keras-mlrs training configuration: `mlrs train --config config.toml` reruns it.\n"
            '# data = "" is the bundled 6-patch sample.\n'
        )
        return header + toml_dumps({"keras_mlrs_version": __version__, **asdict(self)})

    def validate(self) -> None:
        """Raise :class:`MlrsError` naming the first invalid option."""
        for name, kind, word in (("loss", str, "a name"), ("model", str, "a name"), ("data", str, "a path"),
                                 ("split", str, "a name"), ("optimizer", str, "a name"), ("distribute", str, "a name"),
                                 ("upsampling", str, "a name"), ("pipeline", str, "a name"),
                                 ("loss_params", dict, "a table of name = value"),
                                 ("model_params", dict, "a table of name = value")):
            if not isinstance(getattr(self, name), kind):
                raise InvalidParameterError(f"{name} must be {word}, got {getattr(self, name)!r}.")
        losses.get(self.loss, **self.loss_params)
        MODELS.check(self.model, self.model_params)
        for name, lo in (("epochs", 1), ("batch_size", 1), ("keep_every", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise InvalidParameterError(f"{name} must be an integer >= {lo}, got {value!r}.")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (0 < self.lr < math.inf):
            raise InvalidParameterError(f"lr must be a positive number, got {self.lr!r}.")
        self.lr = float(self.lr)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidParameterError(f"seed must be an integer >= 0, got {self.seed!r}.")
        if self.distribute == "multiworker":
            raise InvalidParameterError(
                "distribute 'multiworker' is gone: Keras 3 does not support TensorFlow's MultiWorkerMirroredStrategy "
                "(keras-team/keras#20585); train on several machines with `distribute='multiprocess'` under JAX "
                "(docs/scaling.md).")
        for name, choices in (("optimizer", OPTIMIZERS), ("distribute", DISTRIBUTE), ("split", SPLIT_SCHEMES),
                              ("upsampling", UPSAMPLING), ("pipeline", PIPELINES)):
            choose(name, getattr(self, name), choices)
        if self.jit not in ("auto", True, False):
            raise InvalidParameterError(f"jit must be 'auto', true or false, got {self.jit!r}.")
        if not isinstance(self.mixed_precision, bool):
            raise InvalidParameterError(f"mixed_precision must be true or false, got {self.mixed_precision!r}.")
        self.fractions = list(parse_fractions(self.fractions))

    # -- derived ---------------------------------------------------------------------------
    def data_path(self) -> Path:
        """The data of the run (the bundled sample when ``data`` is empty)."""
        return Path(self.data).expanduser() if self.data else sample_path()

    def split_scheme(self) -> str:
        """``official`` or ``random``: ``split`` with ``auto`` resolved."""
        if self.split != "auto":
            return self.split
        return "random" if not self.data else "official"


#: What :func:`recipe_key` leaves out: the seed, where the data lies, and how the run was
#: carried out (which checkpoints it kept, over which devices, through which pipeline,
#: compiled or not), none of which changes what is trained.
NOT_RECIPE = ("seed", "data", "keep_every", "distribute", "pipeline", "jit")


def _canonical(value):
    """``value`` in one spelling: numbers as floats (``2`` and ``2.0`` are one value),
    tuples as lists, tables with sorted keys."""
    if isinstance(value, dict):
        return {str(k): _canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def recipe_identity(config: TrainConfig) -> dict:
    """What makes ``config`` the recipe it is: every option but those of :data:`NOT_RECIPE`,
    with the loss's and the model's parameters completed by their defaults, so that runs
    of one recipe with different seeds (or data folders) have the same identity."""
    values = {k: v for k, v in asdict(config).items() if k not in NOT_RECIPE}
    values["loss"], values["model"] = config.loss.strip().lower(), config.model.strip().lower()
    values["loss_params"] = {**losses.LOSSES.parameters(config.loss), **config.loss_params}
    values["model_params"] = {**MODELS.parameters(config.model), **config.model_params}
    return values


def recipe_key(config: TrainConfig) -> str:
    """A short, stable name of ``config``'s recipe (:func:`recipe_identity`): the loss and a
    hash, e.g. ``"focal-3f0c9a1b2d4e"``. Two runs have the same key when their
    configurations differ only in the seed, the data path or how they were run; a run
    directory's is ``recipe_key(RunDirectory(path).config())``. The key depends on the
    parameters' defaults, so compare keys computed by one version of keras-mlrs."""
    text = json.dumps(_canonical(recipe_identity(config)), sort_keys=True, separators=(",", ":"))
    return f"{config.loss.strip().lower()}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def toml_keys(path) -> set:
    """The options a configuration file sets (read after :meth:`TrainConfig.from_toml` has
    checked it)."""
    return set(tomllib.loads(Path(path).read_text()))


def parse_param(text: str) -> tuple[str, object]:
    """``"name=value"`` from the command line: the value read as JSON when it parses (numbers,
    ``true``, ``null``, lists), else kept as a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise InvalidParameterError(f"'{text}' is not name=value, e.g. gamma=2.")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.strip(), value
