"""How a model takes BigEarthNet patches: its input layout, read off the model, and a
patch in that layout.

Two layouts exist (see :func:`keras_mlrs.data.load`): ``"groups"``, a dict of the 10 m, 20 m
and 60 m band groups (the K-Branch CNN), and ``"stacked"``, one 12-band tensor (standard
backbones). A saved model thus tells the loader how to feed it.
"""

from keras_mlrs.bigearthnet import GROUP_SIZES, GROUPS, NUM_CLASSES, STACKED_BANDS
from keras_mlrs.errors import MlrsError


def input_layout(model) -> str:
    """``"groups"`` or ``"stacked"``: how ``model`` takes BigEarthNet bands. Raises
    :class:`MlrsError` when the model fits neither or does not output the 19 classes."""
    out = model.outputs[0].shape if getattr(model, "outputs", None) else None
    if out is None or out[-1] != NUM_CLASSES:
        raise MlrsError(
            f"model '{model.name}' outputs {out[-1] if out is not None else 'no'} classes but the data has "
            f"{NUM_CLASSES} (BigEarthNet-19); use a model trained on BigEarthNet-19."
        )
    shapes = {t.name.split(":")[0]: tuple(t.shape[1:]) for t in model.inputs}
    groups = {g: (GROUP_SIZES[g], GROUP_SIZES[g], len(b)) for g, b in GROUPS.items()}
    if shapes == groups:
        return "groups"
    stacked = (GROUP_SIZES["b10m"], GROUP_SIZES["b10m"], len(STACKED_BANDS))
    if len(shapes) == 1 and next(iter(shapes.values())) == stacked:
        return "stacked"
    raise MlrsError(
        f"model '{model.name}' takes inputs {shapes}, which match neither BigEarthNet layout: "
        f"band groups {groups} or one stacked tensor {stacked}."
    )


def patch_inputs(patch, layout: str):
    """A batch of one :class:`~keras_mlrs.data.patch.Patch` in the model input ``layout``."""
    if layout == "stacked":
        return patch.stacked()[None]
    return {g: a[None] for g, a in patch.groups.items()}
