"""Training runs: their configuration (:mod:`~.config`), the run directory
(:mod:`~.directory`), training and exact resume (:mod:`~.training`), evaluation
(:mod:`~.evaluation`), prediction (:mod:`~.prediction`) and their figures (:mod:`~.plots`).

The most used names are importable from here: :class:`TrainConfig`, :func:`train`,
:func:`resume`, :func:`load_model`, :func:`evaluate`, :func:`predict`.
"""

from keras_mlrs.runs.config import TrainConfig, parse_param
from keras_mlrs.runs.directory import (
    BEST,
    CHECKPOINT_NAMES,
    CHECKPOINTS,
    CONFIG,
    CURVE,
    HISTORY,
    LAST,
    METRICS,
    STATE,
    TENSORBOARD,
    RunDirectory,
    finished_run,
    is_run_dir,
    load_model,
    model_file,
    read_state,
)
from keras_mlrs.runs.distributed import Cluster
from keras_mlrs.runs.evaluation import (
    checkpoint_title,
    evaluate,
    evaluation_data,
    run_report,
    write_report,
)
from keras_mlrs.runs.prediction import predict
from keras_mlrs.runs.training import describe_devices, resume, train

__all__ = [
    "Cluster", "BEST", "CHECKPOINTS", "CHECKPOINT_NAMES", "CONFIG", "CURVE", "HISTORY", "LAST", "METRICS", "STATE", "TENSORBOARD", "RunDirectory",
    "TrainConfig", "checkpoint_title", "describe_devices", "evaluate", "evaluation_data", "finished_run", "is_run_dir", "load_model",
    "model_file", "parse_param", "predict", "read_state", "resume", "run_report", "train", "write_report",
]
