"""Keras layers of keras-mlrs: the sparsemax activation and the band normalisation every model starts with."""

import math

import keras
from keras import ops

from keras_mlrs.bigearthnet import BAND_MEAN, BAND_STD
from keras_mlrs.core.ops import sparsemax
from keras_mlrs.errors import InvalidParameterError


@keras.saving.register_keras_serializable(package="keras_mlrs")
class Sparsemax(keras.layers.Layer):
    """Sparsemax activation: ``sparsemax(scale * x)`` along ``axis``.

    A drop-in replacement for a softmax output that puts exactly zero probability on
    low-scoring classes (see :func:`keras_mlrs.core.ops.sparsemax`). Train with logits and
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


@keras.saving.register_keras_serializable(package="keras_mlrs")
class BandNormalization(keras.layers.Layer):
    """Standardise raw Sentinel-2 bands: ``(x - mean_b) / std_b`` per band, in float32.

    The first layer of every keras-mlrs model, so that the input pipeline stays uint16
    and a saved model carries its own normalisation. The statistics default to the
    BigEarthNet-S2 training-set mean and standard deviation of each band
    (:data:`keras_mlrs.bigearthnet.BAND_MEAN` / ``BAND_STD``).

    Args:
        bands: the band names of the input's last axis, in order, e.g.
            ``("B04", "B03", "B02", "B08")``.
        mean: optional per-band means overriding the BigEarthNet ones.
        std: optional per-band standard deviations overriding the BigEarthNet ones.
    """

    def __init__(self, bands, mean=None, std=None, **kwargs):
        super().__init__(**kwargs)
        self.bands = tuple(str(b).upper() for b in bands)
        unknown = [b for b in self.bands if b not in BAND_MEAN]
        if unknown and (mean is None or std is None):
            raise InvalidParameterError(
                f"unknown band(s) {', '.join(unknown)}; give mean and std for them or use "
                f"BigEarthNet band names ({', '.join(BAND_MEAN)})."
            )
        self.mean = [float(m) for m in (mean if mean is not None else [BAND_MEAN[b] for b in self.bands])]
        self.std = [float(s) for s in (std if std is not None else [BAND_STD[b] for b in self.bands])]
        if len(self.mean) != len(self.bands) or len(self.std) != len(self.bands):
            raise InvalidParameterError("mean and std need one value per band.")
        if min(self.std) <= 0:
            raise InvalidParameterError("every band's std must be > 0.")

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != len(self.bands):
            raise InvalidParameterError(
                f"{self.name}: input has {input_shape[-1]} bands on its last axis, "
                f"expected {len(self.bands)} ({', '.join(self.bands)})."
            )

    def call(self, inputs):
        return self.standardise(inputs)

    def standardise(self, inputs, dtype: str = "float32"):
        """``(x - mean) / std`` computed in ``dtype`` (the layer's call: float32)."""
        x = ops.cast(inputs, dtype)
        return (x - ops.convert_to_tensor(self.mean, dtype)) / ops.convert_to_tensor(self.std, dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")

    def get_config(self):
        return {**super().get_config(), "bands": list(self.bands), "mean": self.mean, "std": self.std}
