"""Numerics on ``keras.ops``, for every backend and no files: the sparsemax op, layers,
losses (with class weights), decision rules, metrics and the study's optimizer.

Importing this package registers every loss, metric, layer, decision rule and optimizer
with Keras' serialization (``keras.saving.load_model`` then restores models that use them).
"""

from keras_mlrs.core import decision, layers, losses, metrics, ops, optimizers

__all__ = ["decision", "layers", "losses", "metrics", "ops", "optimizers"]
