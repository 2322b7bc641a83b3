"""Keras layers of keras-mlrs."""

import math

import keras

from keras_mlrs.errors import InvalidParameterError
from keras_mlrs.ops import sparsemax


@keras.saving.register_keras_serializable(package="keras_mlrs")
class Sparsemax(keras.layers.Layer):
    """Sparsemax activation: ``sparsemax(scale * x)`` along ``axis``.

    A drop-in replacement for a softmax output that puts exactly zero probability on
    low-scoring classes (see :func:`keras_mlrs.ops.sparsemax`). Train with logits and
    the ``sparsemax`` loss; use this layer to turn logits into sparse probabilities.

    Args:
        scale: multiplies the input first; larger values give sparser outputs. > 0.
        axis: the axis that sums to one.
    """

    def __init__(self, scale: float = 1.0, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        scale = float(scale)
        if not (scale > 0 and math.isfinite(scale)):
            raise InvalidParameterError(f"Sparsemax scale must be > 0, got {scale}.")
        self.scale = scale
        self.axis = int(axis)
        self.supports_masking = True

    def call(self, inputs):
        return sparsemax(inputs * self.scale if self.scale != 1.0 else inputs, axis=self.axis)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "axis": self.axis}
