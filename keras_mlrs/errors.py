"""Errors a user can cause, and the one registry helper every named thing goes through.

Every message names the problem and the fix. Messages speak the library's language: they
name arguments and functions in backticks as Python (`` `overwrite=True` ``,
`` `keras_mlrs.data.prepare()` ``); the ``mlrs`` command shows its own flags and commands
in their place (``--overwrite``, ``mlrs data prepare``). Library users catch
:class:`MlrsError` (a :class:`ValueError`); the command prints it on one line and exits 2.

:class:`Registry` is the lookup behind every set of names: losses, decision rules, models,
LRP presets and zoo recipes. It finds an entry (or suggests the closest name), lists the
names, and checks parameters against the entry's own.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Generic, TypeVar


class MlrsError(ValueError):
    """Base class of every error caused by a user's input."""


class UnknownNameError(MlrsError):
    """A name (loss, decision rule, model, preset, average...) that does not exist."""


class InvalidParameterError(MlrsError):
    """A parameter outside its valid range, or one its owner does not have."""


class ShapeMismatchError(MlrsError):
    """Labels and logits (or other tensors) whose shapes do not fit together."""


class UnknownLabelError(MlrsError):
    """A label that is neither a BigEarthNet-19 class nor one of the 43 CORINE labels."""


class TiffError(MlrsError):
    """A file that is not a readable TIFF."""


class PatchError(MlrsError):
    """A patch that cannot be read: missing or corrupt band file, wrong shape or dtype,
    unreadable labels."""


class ArchiveError(MlrsError):
    """A path that is not BigEarthNet data in a known format."""


class PrepareError(MlrsError):
    """``prepare`` cannot proceed (output folder in use, no patch, strict-mode failure)."""


class OutputError(MlrsError):
    """An output path keras-mlrs may not write: a file where a folder is needed, or a folder
    holding files keras-mlrs did not write."""


class RunError(MlrsError):
    """A run directory or model file that cannot be used as asked."""


class DistributedError(MlrsError):
    """A multi-process run that cannot start, or cannot go on (another process stopped)."""


class UnsupportedModelError(MlrsError):
    """A model LRP cannot explain: an unsupported layer, a shared layer, a nested model."""


class InnvestigateError(MlrsError):
    """iNNvestigate is missing or failed on the model."""


class HubError(MlrsError):
    """A Hub repository, model card or upload that cannot be used as asked."""


#: The Keras backends keras-mlrs runs on (each installed by the package of its name).
BACKENDS = ("tensorflow", "jax", "torch")


def installed_backend() -> str:
    """The Keras backend that ``import keras`` will load (``KERAS_BACKEND``, else Keras'
    configuration file, else TensorFlow), or a one-line :class:`MlrsError` naming the
    install command when it is not one keras-mlrs runs on or is not installed. Nothing is
    imported to find out: a missing backend otherwise fails deep inside ``import keras``."""
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        name = keras.backend.backend()
    else:
        name = os.environ.get("KERAS_BACKEND")
        if not name:
            home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
            try:
                name = json.loads((home / "keras.json").read_text()).get("backend")
            except (OSError, ValueError, AttributeError):
                name = None
        name = name or "tensorflow"
    if name not in BACKENDS:
        raise MlrsError(f"KERAS_BACKEND={name!r} is not a backend keras-mlrs runs on; set it to tensorflow, jax "
                        "or torch.")
    try:
        installed = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        raise MlrsError(f"the Keras backend {name} (KERAS_BACKEND) is not installed: `pip install "
                        f"{name}`, or choose another with KERAS_BACKEND={'|'.join(b for b in BACKENDS if b != name)}.")
    return name


def printable(text) -> str:
    """Text (a file name, a message naming one) that can be printed and written to JSON:
    bytes of a file name that are not UTF-8 are shown as ``\\xff``."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def did_you_mean(name, choices: Iterable) -> str:
    """A ``' Did you mean 'x'?'`` suffix when ``name`` is close to one of ``choices``."""
    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""


def choose(kind: str, value, choices: Iterable[str], otherwise: str = "") -> str:
    """``value`` when it is one of ``choices``; otherwise an :class:`UnknownNameError` naming
    them (``kind`` says what is chosen, e.g. ``"optimizer"``; ``otherwise`` an alternative
    to the choices, e.g. ``"or give one weight per class"``)."""
    choices = list(choices)
    if value not in choices:
        alternative = f" {otherwise}" if otherwise else ""
        raise UnknownNameError(
            f"unknown {kind} '{value}'; choose one of: {', '.join(choices)}{alternative}.{did_you_mean(value, choices)}"
        )
    return value


def keyword_defaults(fn: Callable, skip: Iterable[str] = ()) -> dict:
    """The parameters of ``fn`` (a function or a class) that have defaults, in order, without ``skip``."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    skip = {"self", *skip}
    return {
        p.name: p.default
        for p in inspect.signature(target).parameters.values()
        if p.name not in skip and p.default is not inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, in registration order.

    Args:
        kind: what the entries are, in messages (``"loss"``, ``"LRP preset"``...).
        parameters: an entry's parameters and their defaults (default: none).
        key: how a name is normalised before lookup (default: stripped and lower-cased).
        parameter_word: what a parameter is called in messages (``"hyperparameter"``...).
    """

    def __init__(self, kind: str, parameters: Callable[[T], dict] = lambda entry: {},
                 key: Callable[[str], str] = lambda name: str(name).strip().lower(),
                 parameter_word: str = "parameter"):
        self.kind, self._parameters, self._key, self._word = kind, parameters, key, parameter_word
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name`` (a name is registered once)."""
        key = self._key(name)
        if key in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[key] = entry
        return entry

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def items(self):
        return self._entries.items()

    def __contains__(self, name) -> bool:
        return self._key(name) in self._entries

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name) -> T:
        """The entry called ``name``; an :class:`UnknownNameError` listing the names (and
        suggesting the closest) otherwise."""
        key = self._key(name)
        if key not in self._entries:
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'; choose one of: {', '.join(self._entries)}.{did_you_mean(key, self._entries)}"
            )
        return self._entries[key]

    def parameters(self, name) -> dict:
        """The parameters of entry ``name`` with their defaults."""
        return self._parameters(self.get(name))

    def resolve(self, identifier, params: dict, instance_of: type, construct: Callable, deserialize: Callable,
                ignore: Iterable[str] = ()):
        """What ``get`` functions return: an ``instance_of`` instance as it is; a config dict,
        Keras' serialization of an object (``deserialize``) or ``{"name": ..., **params}``;
        or a registered name, ``construct(entry, params)`` after :meth:`check`."""
        if isinstance(identifier, instance_of):
            if params:
                raise InvalidParameterError(f"parameters cannot be given with a {self.kind} instance.")
            return identifier
        if isinstance(identifier, dict):
            if "class_name" in identifier:
                return deserialize(identifier)
            identifier = dict(identifier)
            name = identifier.pop("name")
            identifier, params = name, {**identifier, **params}
        return construct(self.check(identifier, params, ignore), params)

    def check(self, name, params: Iterable[str], ignore: Iterable[str] = ()) -> T:
        """The entry ``name``, after checking that it has every parameter in ``params``
        (those in ``ignore`` are always accepted)."""
        entry = self.get(name)
        allowed = self._parameters(entry)
        unknown = [p for p in params if p not in allowed and p not in set(ignore)]
        if unknown:
            word = self._word + ("s" if len(unknown) > 1 else "")
            raise InvalidParameterError(
                f"{self.kind} '{self._key(name)}' has no {word} {', '.join(map(repr, unknown))}; its {self._word}s: "
                f"{', '.join(allowed) or 'none'}.{did_you_mean(unknown[0], allowed)}"
            )
        return entry
