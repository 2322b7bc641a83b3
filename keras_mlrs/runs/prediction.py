"""Prediction: the label sets of single patches, with the model's decision rule."""

import numpy as np

from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.core.decision import rule_of
from keras_mlrs.models import input_layout, patch_inputs


def predict(model, patches, decision=None) -> list[dict]:
    """Label sets of single patches (:class:`keras_mlrs.data.Patch`, e.g. from
    :func:`keras_mlrs.data.read_patch`), with the model's decision rule (or ``decision``).

    Returns one ``{"input", "labels", "scores"}`` per patch: ``labels`` the predicted class
    names (in nomenclature order), ``scores`` every class's ``rule.confidence``: the
    probability for ``sigmoid`` and ``sparsemax_support``, the logit for ``logit``.
    """
    rule = rule_of(model, decision)
    layout = input_layout(model)
    out = []
    for patch in patches:
        logits = model.predict_on_batch(patch_inputs(patch, layout))
        chosen = np.asarray(rule(logits))[0]
        confidence = np.asarray(rule.confidence(logits))[0]
        out.append({
            "input": patch.name,
            "labels": [n for n, c in zip(CLASS_NAMES, chosen) if c > 0],
            "scores": {n: float(s) for n, s in zip(CLASS_NAMES, confidence)},
        })
    return out
