"""The K-Branch CNN of Sumbul & Demir (IGARSS 2019), as the BigEarthNet authors' official
TensorFlow 1 code builds it (``models/K-BranchCNN.py`` of ``bigearthnet-models-tf``), and
the loss-comparison study's widening of it.

One branch per Sentinel-2 resolution group, each starting with band normalisation:

* 10 m (``b10m``, 120 × 120 × 4): conv 32·5×5 + pool, conv 32·5×5 + pool, conv 64·3×3;
* 20 m (``b20m``, 60 × 60 × 6): conv 32·3×3 + pool, conv 32·3×3, conv 64·3×3;
* 60 m (``b60m``, 20 × 20 × 2): three conv 32·2×2.

Every conv block is convolution ("same" padding), batch normalisation, ReLU, the 2 × 2
max-pooling where listed, and dropout 0.25. Each branch is flattened into a fully
connected block (dense, batch normalisation, ReLU) of ``units`` and dropout 0.5; the three
branch features are concatenated and fused by one more fully connected block of ``units``
with dropout 0.25; dropout 0.5 precedes the linear classifier (one logit per class). The
nine conv kernels and the four hidden dense kernels carry the L2 penalty of the official
code, ``tf.contrib.layers.l2_regularizer(2e-5)``, i.e. ``2e-5 · Σw²/2`` (Keras'
``L2(1e-5)``); the classifier's kernel carries none.

``units=128`` is the official model (its ``feature_size``); the study used 1,024 units in
"the last two fully connected layers" (paper §3), the branch and fusion blocks that share
``feature_size`` in the official code, so ``units=1024`` is the default. Convolutions and
dense layers before batch normalisation have no bias here: batch normalisation's offset
absorbs it, so the function is the same and the official model counts ``352 + 4·units``
more (redundant) parameters. docs/study.md maps every layer to the official code.
"""

import keras

from keras_mlrs.bigearthnet import GROUP_SIZES, GROUPS, NUM_CLASSES
from keras_mlrs.core.layers import BandNormalization
from keras_mlrs.errors import InvalidParameterError

#: (filters, kernel, pool) per conv block of each branch.
BRANCHES = {
    "b10m": ((32, 5, True), (32, 5, True), (64, 3, False)),
    "b20m": ((32, 3, True), (32, 3, False), (64, 3, False)),
    "b60m": ((32, 2, False), (32, 2, False), (32, 2, False)),
}
#: The study's width of the branch and fusion blocks (the official code's: 128).
STUDY_UNITS = 1024


def _check(units, width, l2, rates) -> None:
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise InvalidParameterError(f"units must be a whole number >= 1, got {units!r}.")
    for name, value in (("width", width), ("l2", l2)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise InvalidParameterError(f"{name} must be a number, got {value!r}.")
    if width <= 0 or round(32 * width) < 1:
        raise InvalidParameterError(f"width must give every convolution at least one filter (width >= 1/32), got {width!r}.")
    if l2 < 0:
        raise InvalidParameterError(f"l2 must be >= 0, got {l2!r}.")
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise InvalidParameterError(f"dropout rates must be in [0, 1), got {rate!r}.")


def kbranch_cnn(
    num_classes: int = NUM_CLASSES,
    units: int = STUDY_UNITS,
    width: float = 1.0,
    l2: float = 2e-5,
    conv_dropout: float = 0.25,
    branch_dropout: float = 0.5,
    fusion_dropout: float = 0.25,
    classifier_dropout: float = 0.5,
    name: str = "kbranch_cnn",
) -> keras.Model:
    """Build the K-Branch CNN (see the module docstring); the defaults are the study's.

    Args:
        num_classes: logits out (19 for BigEarthNet-19).
        units: units of the three branch blocks and of the fusion block (the study:
            1024; the official model: 128).
        width: multiplies every conv layer's filters (1.0 is the published model; smaller
            values make quick test models).
        l2: the scale of TensorFlow 1's ``l2_regularizer`` on the 9 conv and 4 hidden
            dense kernels: the loss gains ``l2 · Σw²/2`` (0 turns it off).
        conv_dropout: dropout after every conv block.
        branch_dropout: dropout after each branch's fully connected block.
        fusion_dropout: dropout after the fusion block.
        classifier_dropout: dropout before the classifier.
        name: the model name.

    Returns:
        A functional ``keras.Model`` taking ``{"b10m", "b20m", "b60m"}`` uint16 inputs and
        returning float32 logits ``[batch, num_classes]``.
    """
    _check(units, width, l2, (conv_dropout, branch_dropout, fusion_dropout, classifier_dropout))
    penalty = keras.regularizers.L2(l2 / 2) if l2 else None

    def fc_block(x, prefix, rate):
        x = keras.layers.Dense(units, use_bias=False, kernel_regularizer=penalty, name=f"{prefix}_fc")(x)
        x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
        x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
        return keras.layers.Dropout(rate, name=f"{prefix}_dropout")(x)

    inputs, features = {}, []
    for group, blocks in BRANCHES.items():
        size, bands = GROUP_SIZES[group], GROUPS[group]
        x = inputs[group] = keras.Input((size, size, len(bands)), dtype="uint16", name=group)
        x = BandNormalization(bands, name=f"{group}_normalization")(x)
        for i, (filters, kernel, pool) in enumerate(blocks, start=1):
            prefix = f"{group}_block{i}"
            x = keras.layers.Conv2D(round(filters * width), kernel, padding="same", use_bias=False,
                                    kernel_regularizer=penalty, name=f"{prefix}_conv")(x)
            x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
            if pool:
                x = keras.layers.MaxPooling2D(2, name=f"{prefix}_pool")(x)
            x = keras.layers.Dropout(conv_dropout, name=f"{prefix}_dropout")(x)
        x = keras.layers.Flatten(name=f"{group}_flatten")(x)
        features.append(fc_block(x, group, branch_dropout))
    x = keras.layers.Concatenate(name="concat")(features)
    x = fc_block(x, "fusion", fusion_dropout)
    x = keras.layers.Dropout(classifier_dropout, name="classifier_dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name=name)
