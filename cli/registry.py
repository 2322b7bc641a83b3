"""The registries as the command line shows them before any command runs: loss names and
their hyperparameters, model names. ``mlrs train --help`` and an argument mistake answer from
here without importing Keras (and so TensorFlow); ``tests/cli/test_registry.py`` checks this
against the real registries, so a new loss or hyperparameter fails the tests until it is
added here."""

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
