"""Models: every model takes BigEarthNet inputs as uint16 and returns logits."""

from keras_mlrs.models.kbranch import kbranch_cnn

__all__ = ["kbranch_cnn"]
