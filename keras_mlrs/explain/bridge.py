"""The iNNvestigate bridge: the same question asked of iNNvestigate 2.1.2, the study's library.

iNNvestigate works only on legacy Keras 2 (``tf_keras``) models in graph mode, so the
bridge rebuilds the model's layers in ``tf_keras`` with the same weights and runs the
analyzer of the same name in a separate Python process
(:mod:`keras_mlrs.explain._innvestigate_worker`). Band normalisation is applied here and
the normalised bands are what iNNvestigate sees: it is a pass-through for relevance in
both engines, so the heatmaps are on the same raw-band grid.

Install it apart from the rest (its metadata pins TensorFlow < 2.15 and NumPy < 2, yet it
runs on TensorFlow 2.21)::

    pip install --no-deps tf-keras==2.21.0 innvestigate==2.1.2 future

Batch normalisation is folded into the layer before it (with the correct ``sqrt(var + ε)``)
before the model is rebuilt, as the native engine does: iNNvestigate's own mapping of the
layer uses ``sqrt(var² + ε)``. The engines still differ by design on the α-β rule with bias:
iNNvestigate puts the whole bias into both denominators (``full_bias=True`` does the same
natively). See docs/explanations.md.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np

from keras_mlrs.core.layers import BandNormalization
from keras_mlrs.errors import InnvestigateError, choose
from keras_mlrs.explain import composites
from keras_mlrs.explain.canonizers import DEFAULT_CANONIZERS
from keras_mlrs.explain.engine import class_indices, flatten_inputs, prepared_graph
from keras_mlrs.explain.graph import trace
from keras_mlrs.explain.kernels import check_dtype

#: presets iNNvestigate 2.1.2 has (all of ours but lrp.gamma)
PRESETS = [p for p in composites.names() if p != "lrp.gamma"]
WORKER = Path(__file__).with_name("_innvestigate_worker.py")
INSTALL_HINT = "pip install --no-deps tf-keras==2.21.0 innvestigate==2.1.2 future"


def available() -> bool:
    """Whether iNNvestigate and tf_keras are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("innvestigate", "tf_keras"))


def export(model: keras.Model, folder: Path, inputs, classes, preset: str, params: dict,
           dtype: str = "float32") -> list[str]:
    """Write the worker's ``spec.json``, ``weights.npz`` and ``inputs.npz`` for ``model``,
    weights and inputs in ``dtype`` (the precision iNNvestigate computes in).

    Returns the model's input names, in the order of the relevance arrays."""
    check_dtype(dtype)  # the band normalisation below computes in it
    # batch normalisation folded as the native engine does: iNNvestigate's own mapping uses sqrt(var² + ε)
    graph, logit_tensor, last = prepared_graph(model, composites.get(preset), DEFAULT_CANONIZERS)
    steps = graph.steps[: last + 1]
    flat = flatten_inputs(graph, inputs)
    names = {tid: name for tid, name in zip(graph.inputs, graph.input_names)}
    values = dict(zip(graph.inputs, flat))
    spec_inputs, arrays, skip = [], {}, set()
    for tid in graph.inputs:
        readers = graph.consumers(tid)
        if len(readers) == 1 and isinstance(readers[0].layer, BandNormalization):
            norm = readers[0]
            skip.add(id(norm))
            x = np.asarray(keras.ops.convert_to_numpy(norm.layer.standardise(values[tid], dtype)))
            tensor = norm.outputs[0]
        else:
            x, tensor = np.asarray(values[tid], "float32"), tid
        spec_inputs.append({"name": names[tid], "tensor": str(tensor), "shape": list(x.shape[1:])})
        arrays[names[tid]] = x.astype(dtype)
    layers, weights = [], {}
    for step in steps:
        if id(step) in skip:
            continue
        if isinstance(step.layer, BandNormalization):
            raise InnvestigateError(
                f"the iNNvestigate bridge needs band normalisation right on a model input; '{step.name}' is not."
            )
        config = _tf_keras_config(step.layer)
        if step.outputs[0] == logit_tensor and "activation" in config:
            config["activation"] = "linear"  # start from the logit, as the native engine does
        if step.kernel is not None:  # kernel layers: the effective weights (a bias always, after folding)
            config["use_bias"] = True
            own = [step.kernel, step.bias]
        else:
            own = step.layer.get_weights()
        layers.append({
            "class": type(step.layer).__name__, "name": step.name, "config": config,
            "inputs": [str(t) for t in step.inputs], "output": str(step.outputs[0]),
        })
        for i, w in enumerate(own):
            weights[f"{step.name}/{i}"] = np.asarray(w, "float32").astype(dtype)
    spec = {
        "inputs": spec_inputs, "layers": layers, "output": str(logit_tensor),
        "preset": preset, "params": params, "classes": [int(c) for c in classes], "dtype": dtype,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec))
    np.savez(folder / "weights.npz", **weights)
    np.savez(folder / "inputs.npz", **arrays)
    return [names[tid] for tid in graph.inputs]


_SKIP_CONFIG = {"name", "dtype", "trainable", "seed"}


def _tf_keras_config(layer) -> dict:
    """The layer's Keras 3 config reduced to what its ``tf_keras`` twin accepts: plain
    values only (initialisers and regularisers do not matter for inference)."""
    import tf_keras  # the optional iNNvestigate engine's Keras 2; imported only when that engine is asked for

    twin = getattr(tf_keras.layers, type(layer).__name__, None)
    if twin is None:
        raise InnvestigateError(f"layer '{layer.name}' ({type(layer).__name__}) has no tf_keras equivalent.")
    accepted = set(inspect.signature(twin.__init__).parameters)
    config = {}
    for key, value in layer.get_config().items():
        if key in _SKIP_CONFIG or key not in accepted or key.endswith(("initializer", "regularizer", "constraint")):
            continue
        if isinstance(value, dict):
            continue
        config[key] = list(value) if isinstance(value, tuple) else value
    return config


def innvestigate_lrp(model, inputs, classes, preset: str = "lrp.epsilon", timeout: float = 1800,
                     dtype: str = "float32", **params):
    """Relevance by iNNvestigate 2.1.2, in the structure :func:`keras_mlrs.explain.lrp`
    returns (each array ``[batch, len(classes), *input_shape]``).

    Args:
        model: the Keras 3 model (its layers are rebuilt in ``tf_keras``).
        inputs: as for :func:`keras_mlrs.explain.lrp`.
        classes: as for :func:`keras_mlrs.explain.lrp` (indices or names).
        preset: an iNNvestigate analyzer name (see :data:`PRESETS`).
        timeout: seconds before the worker process is stopped.
        dtype: ``"float32"`` or ``"float64"``, the precision of iNNvestigate's model
            (``tf_keras`` floatx); the native engine takes the same argument.
        **params: the analyzer's parameters (``epsilon``, ``alpha``, ``beta``, ``bias``).

    Returns:
        ``(relevance, timing)``: timing has ``build_s`` (analyzer construction) and
        ``analyze_s`` (the analysis calls) measured inside the worker.
    """
    return run_many([(model, inputs, classes, preset, {**params, "dtype": dtype})], timeout=timeout)[0]


def run_many(requests, timeout: float = 1800, processes: int = 1) -> list:
    """Several :func:`innvestigate_lrp` requests ``(model, inputs, classes, preset, params)``,
    shared among ``processes`` worker processes (TensorFlow starts once in each); one
    ``(relevance, timing)`` each, in order. ``params`` may hold ``dtype``; ``full_bias`` is
    ignored (iNNvestigate always does that)."""
    if not available():
        raise InnvestigateError(f"the iNNvestigate engine needs iNNvestigate and tf_keras; install them: {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="mlrs-innvestigate-") as tmp:
        folders, names = [], []
        for i, (model, inputs, classes, preset, params) in enumerate(requests):
            choose("iNNvestigate preset", preset, PRESETS)
            dtype = params.get("dtype", "float32")
            params = {k: v for k, v in params.items() if k not in ("full_bias", "dtype")}
            class_ids = class_indices(classes, int(model.outputs[0].shape[-1]))
            folders.append(Path(tmp) / str(i))
            names.append(export(model, folders[-1], inputs, class_ids, preset, params, dtype))
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("KERAS_BACKEND", None)
        groups = [folders[i::processes] for i in range(max(1, min(processes, len(folders))))]
        workers = [subprocess.Popen([sys.executable, str(WORKER), *map(str, group)], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True) for group in groups]
        try:
            errors = [worker.communicate(timeout=timeout)[1] for worker in workers]
        except subprocess.TimeoutExpired:
            raise InnvestigateError(f"iNNvestigate did not finish within {timeout:.0f} s.") from None
        finally:
            for worker in workers:
                worker.kill()
        for worker, stderr in zip(workers, errors):
            if worker.returncode != 0:
                last = [line for line in stderr.strip().splitlines() if line.strip()][-1:] or ["no message"]
                raise InnvestigateError(f"iNNvestigate failed: {last[0]}")
        results = []
        for folder, input_names, request in zip(folders, names, requests):
            with np.load(folder / "relevance.npz") as npz:
                flat = [npz[name] for name in input_names]
            timing = json.loads((folder / "timing.json").read_text())
            results.append((keras.tree.pack_sequence_as(trace(request[0]).structure, flat), timing))
    return results
