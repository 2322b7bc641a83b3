"""Training runs: their configuration (:mod:`~.config`), the run directory
(:mod:`~.directory`), training and exact resume (:mod:`~.training`), evaluation
(:mod:`~.evaluation`), prediction (:mod:`~.prediction`), calibrated thresholds (fitted by
:mod:`~.calibration`, applied through :mod:`~.thresholds`) and their figures (:mod:`~.plots`).

The most used names are importable from here: :class:`TrainConfig`, :func:`train`,
:func:`resume`, :func:`load_model`, :func:`evaluate`, :func:`predict`, :func:`calibrate`.
"""

from keras_mlrs.runs.calibration import OBJECTIVES, calibrate
from keras_mlrs.runs.config import TrainConfig, parse_param
from keras_mlrs.runs.directory import (
    BEST,
    CALIBRATION,
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
    run_names,
)
from keras_mlrs.runs.distributed import Cluster
from keras_mlrs.runs.evaluation import (
    checkpoint_title,
    evaluate,
    evaluation_data,
    evaluation_set,
    run_data,
    run_evaluation_set,
    run_outputs,
    run_report,
    training_support,
    write_report,
)
from keras_mlrs.runs.prediction import predict
from keras_mlrs.runs.thresholds import (
    THRESHOLDS,
    calibrated_rule,
    calibration_file,
    decision_rule,
    read_calibration,
    weights_fingerprint,
)
from keras_mlrs.runs.training import describe_devices, resume, train

__all__ = [
    "Cluster", "BEST", "CHECKPOINTS", "CHECKPOINT_NAMES", "CONFIG", "CURVE", "HISTORY", "LAST", "METRICS", "STATE", "TENSORBOARD", "RunDirectory",
    "TrainConfig", "checkpoint_title", "describe_devices", "evaluate", "evaluation_data", "evaluation_set", "finished_run", "is_run_dir", "load_model",
    "model_file", "parse_param", "predict", "read_state", "resume", "run_names", "run_data", "run_evaluation_set", "run_outputs", "run_report", "train", "training_support", "write_report",
    "CALIBRATION", "OBJECTIVES", "THRESHOLDS", "calibrate", "calibrated_rule", "calibration_file", "decision_rule",
    "read_calibration", "weights_fingerprint",
]
