"""The K-Branch CNN of Sumbul & Demir, the architecture of the loss-comparison study.

One branch per Sentinel-2 resolution group, each starting with band normalisation:

* 10 m (``b10m``, 120 × 120 × 4): conv 32·5×5 + pool, conv 32·5×5 + pool, conv 64·3×3;
* 20 m (``b20m``, 60 × 60 × 6): conv 32·3×3 + pool, conv 32·3×3, conv 64·3×3;
* 60 m (``b60m``, 20 × 20 × 2): three conv 32·2×2.

Every conv block is convolution, batch normalisation, ReLU, the 2 × 2 max-pooling where
listed, and dropout. Each branch ends in a fully connected layer of ``branch_units``; the
three are concatenated and fused by a fully connected layer of ``fc_units``, followed by
dropout and a linear layer with one logit per class.

``branch_units=128, fc_units=128`` is the BigEarthNet authors' official model; the study
widened its last fully connected layer to 1,024 units, which is the default here.
"""

import keras

from keras_mlrs.bigearthnet import GROUP_SIZES, GROUPS, NUM_CLASSES
from keras_mlrs.core.layers import BandNormalization

#: (filters, kernel, pool) per conv block of each branch.
BRANCHES = {
    "b10m": ((32, 5, True), (32, 5, True), (64, 3, False)),
    "b20m": ((32, 3, True), (32, 3, False), (64, 3, False)),
    "b60m": ((32, 2, False), (32, 2, False), (32, 2, False)),
}


def kbranch_cnn(
    num_classes: int = NUM_CLASSES,
    branch_units: int = 128,
    fc_units: int = 1024,
    dropout: float = 0.5,
    width: float = 1.0,
    name: str = "kbranch_cnn",
) -> keras.Model:
    """Build the K-Branch CNN (see the module docstring).

    Args:
        num_classes: logits out (19 for BigEarthNet-19).
        branch_units: units of each branch's fully connected layer (official: 128).
        fc_units: units of the fusion layer (the study: 1024; official: 128).
        dropout: dropout rate after each conv block and after the fusion layer.
        width: multiplies every conv layer's filters (1.0 is the published model; smaller
            values make quick test models).
        name: the model name.

    Returns:
        A functional ``keras.Model`` taking ``{"b10m", "b20m", "b60m"}`` uint16 inputs and
        returning float32 logits ``[batch, num_classes]``.
    """
    inputs, features = {}, []
    for group, blocks in BRANCHES.items():
        size, bands = GROUP_SIZES[group], GROUPS[group]
        x = inputs[group] = keras.Input((size, size, len(bands)), dtype="uint16", name=group)
        x = BandNormalization(bands, name=f"{group}_normalization")(x)
        for i, (filters, kernel, pool) in enumerate(blocks, start=1):
            prefix = f"{group}_block{i}"
            x = keras.layers.Conv2D(max(1, round(filters * width)), kernel, padding="same", use_bias=False,
                                    name=f"{prefix}_conv")(x)
            x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
            if pool:
                x = keras.layers.MaxPooling2D(2, name=f"{prefix}_pool")(x)
            x = keras.layers.Dropout(dropout, name=f"{prefix}_dropout")(x)
        x = keras.layers.Flatten(name=f"{group}_flatten")(x)
        x = keras.layers.Dense(branch_units, activation="relu", name=f"{group}_fc")(x)
        features.append(x)
    x = keras.layers.Concatenate(name="concat")(features)
    x = keras.layers.Dense(fc_units, activation="relu", name="fusion_fc")(x)
    x = keras.layers.Dropout(dropout, name="fusion_dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name=name)
