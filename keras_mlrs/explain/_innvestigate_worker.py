"""Runs iNNvestigate on a model exported by :mod:`keras_mlrs.explain.bridge`.

Started as a script in its own process (``python _innvestigate_worker.py DIR...``), because
iNNvestigate 2.1.2 needs legacy Keras (``TF_USE_LEGACY_KERAS=1``) and graph mode
(eager execution disabled) for the whole process. It imports neither Keras 3 nor
keras_mlrs. Each ``DIR`` holds ``spec.json`` (layers and their wiring), ``weights.npz`` and
``inputs.npz``; the relevance goes to ``relevance.npz`` (one array per input, shaped
``[batch, classes, ...]``), and timings to ``timing.json``.
"""

import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.compat.v1.disable_eager_execution()

import innvestigate  # noqa: E402
import tf_keras  # noqa: E402


def build(spec, weights):
    tensors, inputs = {}, []
    for item in spec["inputs"]:
        tensors[item["tensor"]] = tf_keras.Input(tuple(item["shape"]), name=item["name"])
        inputs.append(tensors[item["tensor"]])
    layers = []
    for item in spec["layers"]:
        # prefixed: iNNvestigate names its own layers "add", "add_1"... in the same model
        layer = getattr(tf_keras.layers, item["class"])(name="mlrs_" + item["name"], **item["config"])
        args = [tensors[t] for t in item["inputs"]]
        tensors[item["output"]] = layer(args if item["class"] in ("Concatenate", "Add") else args[0])
        layers.append((layer, item["name"]))
    model = tf_keras.Model(inputs, tensors[spec["output"]])
    for layer, name in layers:
        if name in weights:
            layer.set_weights(weights[name])
    return model


def main(folder):
    with open(os.path.join(folder, "spec.json")) as f:
        spec = json.load(f)
    with np.load(os.path.join(folder, "weights.npz")) as npz:
        weights = {}
        for key in sorted(npz.files, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
            weights.setdefault(key.rsplit("/", 1)[0], []).append(npz[key])
    with np.load(os.path.join(folder, "inputs.npz")) as npz:
        X = [npz[item["name"]] for item in spec["inputs"]]
    tf_keras.backend.set_floatx(spec.get("dtype", "float32"))
    start = time.perf_counter()
    model = build(spec, weights)
    # Its model checks raise NotImplementedError on any warning (e.g. a ReLU layer);
    # keras_mlrs checked the layers already.
    analyzer = innvestigate.create_analyzer(
        spec["preset"], model, neuron_selection_mode="index", disable_model_checks=True, **spec["params"]
    )
    analyzer.create_analyzer_model()
    built = time.perf_counter()
    batch = X[0].shape[0]
    per_class = []
    for c in spec["classes"]:
        # analyze() calls np.shape() on the input list, which NumPy 2 refuses for inputs
        # of different shapes; this is the same call without it.
        indices = analyzer._get_neuron_selection_array(int(c), batch)
        out = analyzer._analyzer_model.predict_on_batch([*X, indices])
        per_class.append(out if isinstance(out, list) else [out])
    done = time.perf_counter()
    result = {item["name"]: np.stack([pc[i] for pc in per_class], axis=1) for i, item in enumerate(spec["inputs"])}
    np.savez(os.path.join(folder, "relevance.npz"), **result)
    with open(os.path.join(folder, "timing.json"), "w") as f:
        json.dump({"build_s": built - start, "analyze_s": done - built}, f)


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        tf_keras.backend.clear_session()
        main(folder)
