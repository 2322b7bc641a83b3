"""Standard backbones on the stacked 12-band layout, from ``keras.applications``.

They take one ``uint16[B, 120, 120, 12]`` tensor (bands in
:data:`keras_mlrs.bigearthnet.STACKED_BANDS` order, the 20 m and 60 m bands upsampled; see
``keras_mlrs.data.load(..., layout="stacked")``), normalise it with
:class:`~keras_mlrs.core.layers.BandNormalization`, and end in one logit per class. They are
trained from scratch: ImageNet weights expect three RGB bands, not twelve Sentinel-2 bands.
"""

import warnings

import keras

from keras_mlrs.bigearthnet import GROUP_SIZES, NUM_CLASSES, STACKED_BANDS
from keras_mlrs.core.layers import BandNormalization


def resnet50(num_classes: int = NUM_CLASSES, dropout: float = 0.0, name: str = "resnet50") -> keras.Model:
    """ResNet-50 (He et al., 2016; ``keras.applications.ResNet50``, random initialisation)
    on the stacked layout, with global average pooling, optional dropout and a linear
    logits layer.

    Args:
        num_classes: logits out (19 for BigEarthNet-19).
        dropout: dropout rate before the logits layer.
        name: the model name.
    """
    size = GROUP_SIZES["b10m"]
    inputs = keras.Input((size, size, len(STACKED_BANDS)), dtype="uint16", name="bands")
    x = BandNormalization(STACKED_BANDS, name="normalization")(inputs)
    with warnings.catch_warnings():  # Keras warns that ImageNet models expect 1 or 3 channels
        warnings.simplefilter("ignore", UserWarning)
        base = keras.applications.ResNet50(
            include_top=False, weights=None, input_shape=(size, size, len(STACKED_BANDS)), pooling="avg"
        )
    x = base(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name=name)
