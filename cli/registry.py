"""The registries as the command line shows them before any command runs: loss names and
their hyperparameters, model names, LRP presets, decision rules (fixed or calibrated, and the
calibration objectives), heatmap band sets. ``mlrs train --help`` and an argument mistake answer from
here without importing Keras (and so TensorFlow), and so does a path argument that does not
exist (:func:`check_paths`); ``tests/cli/test_registry.py`` checks this
against the real registries, so a new loss or hyperparameter fails the tests until it is
added here."""

from pathlib import Path

#: loss name -> {hyperparameter: default}, as ``keras_mlrs.core.losses.spec(name).hyperparameters``.
LOSSES = {
    "bce": {"class_weights": None, "beta": 0.9999},
    "focal": {"gamma": 2.0, "alpha": None, "class_weights": None, "beta": 0.9999},
    "weighted_bce": {"class_weights": "inverse_frequency", "beta": 0.9999},
    "hamming": {},
    "huber": {},
    "ranking": {"margin": 1.0, "pair_reduction": "sum"},
    "sparsemax": {},
    "asl": {"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 0.05},
    "lsep": {},
    "zlpr": {},
    "two_way": {"tp": 4.0, "tn": 1.0},
}
#: As ``keras_mlrs.models.names()``.
MODELS = ("kbranch", "resnet50")
#: As ``keras_mlrs.explain.composites.PRESETS.names()``.
PRESETS = ("lrp.z", "lrp.epsilon", "lrp.alpha_beta", "lrp.alpha_1_beta_0", "lrp.alpha_2_beta_1", "lrp.z_plus",
           "lrp.flat", "lrp.w_square", "lrp.gamma", "lrp.sequential_preset_a", "lrp.sequential_preset_b",
           "lrp.sequential_preset_a_flat", "lrp.sequential_preset_b_flat")
#: As ``keras_mlrs.core.decision.names()``.
DECISIONS = ("sigmoid", "logit", "sparsemax_support", "calibrated")
#: As ``keras_mlrs.runs.THRESHOLDS``: the loss's own rule, or the calibrated thresholds.
THRESHOLDS = ("fixed", "calibrated")
#: As ``keras_mlrs.runs.OBJECTIVES``: what ``mlrs calibrate`` maximises.
OBJECTIVES = ("sample-f1", "per-class-f1")
#: As ``keras_mlrs.explain.heatmaps.BAND_SETS``.
BAND_SETS = ("rgb", "10m", "all")


def check_names(*, loss=None, model=None, preset=None, decision=None, bands=None, classes=(), thresholds=None,
                objective=None) -> None:
    """A one-line error for a mistyped name among these, before Keras loads."""
    from keras_mlrs.bigearthnet import class_index  # BigEarthNet's facts: no Keras
    from keras_mlrs.errors import choose

    if loss is not None:  # as the loss registry normalises names
        choose("loss", loss.strip().lower().replace("-", "_"), LOSSES)
    if model is not None:
        choose("model", model.strip().lower(), MODELS)
    if preset is not None:
        choose("LRP preset", preset.strip().lower(), PRESETS)
    if decision is not None:
        choose("decision rule", decision.strip().lower(), DECISIONS)
    if bands is not None:
        choose("band set", bands, BAND_SETS)
    if thresholds is not None:
        choose("thresholds", thresholds, THRESHOLDS)
    if objective is not None:
        choose("calibration objective", objective, OBJECTIVES)
    for c in classes or ():
        class_index(c)



#: kind of path argument -> what to give instead of one that does not exist
PATH_KINDS = {
    "models": "give a run directory, a .keras file, an exported model folder or hf://ORG/NAME",
    "runs": "give a run directory written by mlrs train or mlrs zoo build",
    "data": "give the path of BigEarthNet data (prepared shards, official TFRecords, a folder or tar of patches) or sample, the bundled patches",
    "inputs": "give patch folders, band files of patches or 12-band GeoTIFFs",
    "configs": "give a TOML file of the command's options",
}


def check_paths(**paths) -> None:
    """A one-line error for a path argument that does not exist, before Keras loads: ``kind=``
    one path or several, for each kind of :data:`PATH_KINDS` (``hf://`` models and the data
    name ``sample`` are not paths)."""
    from keras_mlrs.errors import InvalidParameterError  # the error types: no Keras

    for kind, given in paths.items():
        for path in given if isinstance(given, list | tuple) else [given]:
            if path is None or str(path).startswith("hf://") or (kind == "data" and str(path) == "sample"):
                continue
            if not Path(path).exists():
                raise InvalidParameterError(f"{path} does not exist; {PATH_KINDS[kind]}.")
