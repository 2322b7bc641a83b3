"""A Keras functional model as a list of steps that LRP can walk in both directions.

:func:`trace` reads the model's graph once: each step is one layer call with the ids of
the tensors it reads and writes, in an order where every step comes after the steps
that produce its inputs. Kernel layers (``Conv2D``, ``Dense``) carry their weights as
float32 arrays, so a canonizer (:mod:`keras_mlrs.explain.canonizers`) can rewrite them
without touching the model, and :func:`to_model` can turn the steps back into a model.
Which layers LRP can pass relevance through is the composite's business
(:mod:`keras_mlrs.explain.composites`), not the graph's.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_mlrs.core.layers import Sparsemax
from keras_mlrs.errors import UnsupportedModelError

#: layers whose rule the composite gives: linear in their input, plus a bias
KERNEL = (keras.layers.Conv2D, keras.layers.Dense)
#: may end a model after its logits; stripped, so relevance starts from the logit
OUTPUT_ACTIVATIONS = (keras.layers.Activation, keras.layers.Softmax, Sparsemax)


@dataclasses.dataclass
class Step:
    """One layer call: ``outputs = layer(*inputs)`` on tensor ids."""

    layer: keras.layers.Layer
    inputs: list[int]
    outputs: list[int]
    kernel: np.ndarray | None = None  # kernel layers: effective float32 weights
    bias: np.ndarray | None = None
    folded: tuple[str, ...] = ()  # names of layers folded into this one

    @property
    def name(self) -> str:
        return self.layer.name


@dataclasses.dataclass
class Graph:
    """The steps of a model plus its input ids (in ``model.inputs`` order) and output id."""

    steps: list[Step]
    inputs: list[int]
    input_names: list[str]
    output: int
    structure: object  # the model's input structure (dict, list or single tensor)
    name: str

    def consumers(self, tensor: int) -> list[Step]:
        return [s for s in self.steps if tensor in s.inputs]

    def producer(self, tensor: int) -> Step | None:
        return next((s for s in self.steps if tensor in s.outputs), None)

    def logit(self) -> tuple[int, int]:
        """The id of the logit tensor and the index of the step producing it: the last kernel
        layer before the output, past any output activation."""
        tensor = self.output
        while True:
            step = self.producer(tensor)
            if step is None:
                raise UnsupportedModelError(f"model '{self.name}' has no Conv2D or Dense layer before its output.")
            if isinstance(step.layer, KERNEL):
                return tensor, self.steps.index(step)
            if not isinstance(step.layer, OUTPUT_ACTIVATIONS):
                raise UnsupportedModelError(
                    f"model '{self.name}' ends with layer '{step.name}' ({type(step.layer).__name__}); LRP starts "
                    "from logits, so the model must end with a Dense (or Conv2D) layer, optionally followed by "
                    "an activation."
                )
            tensor = step.inputs[0]


def trace(model: keras.Model) -> Graph:
    """The graph of a functional (or Sequential) Keras model. Raises
    :class:`UnsupportedModelError` for a model whose graph LRP cannot walk: subclassed,
    nested, with several outputs, or with a layer called more than once."""
    if isinstance(model, keras.Sequential):
        model = _functional(model)
    if not hasattr(model, "_nodes_by_depth"):
        raise UnsupportedModelError(
            f"model '{model.name}' is a subclassed model; LRP needs a functional or Sequential "
            "model, whose layer graph can be read."
        )
    if len(model.outputs) != 1:
        raise UnsupportedModelError(f"model '{model.name}' has {len(model.outputs)} outputs; LRP explains one output.")
    steps, seen = [], set()
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            layer = node.operation
            if node.is_input or isinstance(layer, keras.layers.InputLayer):
                continue
            if isinstance(layer, keras.Model):
                raise UnsupportedModelError(
                    f"layer '{layer.name}' is a nested model; LRP needs a flat functional model "
                    "(rebuild it without nesting)."
                )
            if id(layer) in seen:
                raise UnsupportedModelError(
                    f"layer '{layer.name}' is called more than once; LRP needs each layer used once."
                )
            seen.add(id(layer))
            step = Step(layer, [id(t) for t in node.input_tensors], [id(t) for t in node.output_tensors])
            if isinstance(layer, KERNEL):
                _check_kernel_layer(layer)
                weights = [np.asarray(keras.ops.convert_to_numpy(w), "float32") for w in (layer.kernel, layer.bias) if w is not None]
                step.kernel = weights[0]
                step.bias = weights[1] if len(weights) > 1 else np.zeros(weights[0].shape[-1], "float32")
            steps.append(step)
    return Graph(
        steps=steps,
        inputs=[id(t) for t in model.inputs],
        input_names=[t.name.split(":")[0] for t in model.inputs],
        output=id(model.outputs[0]),
        structure=model._inputs_struct,
        name=model.name,
    )


def _functional(model: keras.Sequential) -> keras.Model:
    if not model.built or not getattr(model, "_functional", None):
        raise UnsupportedModelError(
            f"Sequential model '{model.name}' has no input shape; build it with keras.Input first."
        )
    return model._functional


def _check_kernel_layer(layer) -> None:
    if isinstance(layer, keras.layers.Conv2D):
        if getattr(layer, "groups", 1) != 1:
            raise UnsupportedModelError(f"layer '{layer.name}' is a grouped convolution; LRP supports groups=1.")
        if layer.data_format != "channels_last":
            raise UnsupportedModelError(f"layer '{layer.name}' is channels_first; LRP supports channels_last.")


def to_model(graph: Graph) -> keras.Model:
    """A new functional model computing ``graph`` (after a canonizer rewrote it): kernel
    layers get the graph's effective weights; other layers are copied."""
    tensors = {}
    inputs = []
    for tid, name, spec in zip(graph.inputs, graph.input_names, _input_specs(graph)):
        tensors[tid] = keras.Input(spec[0], dtype=spec[1], name=name)
        inputs.append(tensors[tid])
    for step in graph.steps:
        config = step.layer.get_config()
        if step.kernel is not None:
            config["use_bias"] = True
        layer = type(step.layer).from_config(config)
        args = [tensors[t] for t in step.inputs]
        out = layer(args if isinstance(step.layer, keras.layers.Concatenate | keras.layers.Add) else args[0])
        if step.kernel is not None:
            layer.set_weights([step.kernel, step.bias])
        elif step.layer.weights:
            layer.set_weights(step.layer.get_weights())
        for tid, t in zip(step.outputs, keras.tree.flatten(out)):
            tensors[tid] = t
    structure = keras.tree.pack_sequence_as(graph.structure, inputs)
    return keras.Model(structure, tensors[graph.output], name=f"{graph.name}_canonized")


def _input_specs(graph: Graph):
    flat = keras.tree.flatten(graph.structure)
    return [(tuple(t.shape[1:]), t.dtype) for t in flat]
