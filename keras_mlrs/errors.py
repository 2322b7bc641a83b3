"""Errors a user can cause. Each message names the problem and the fix.

The ``mlrs`` command prints these on one line and exits non-zero; library
users can catch :class:`MlrsError` (a :class:`ValueError`).
"""


class MlrsError(ValueError):
    """Base class of every error caused by a user's input."""


class UnknownNameError(MlrsError):
    """A registry name (loss, decision rule, metric average...) that does not exist."""


class InvalidParameterError(MlrsError):
    """A hyperparameter outside its valid range."""


class ShapeMismatchError(MlrsError):
    """Labels and logits (or other tensors) whose shapes do not fit together."""


def did_you_mean(name: str, choices) -> str:
    """A ``' Did you mean 'x'?'`` suffix when ``name`` is close to one of ``choices``."""
    import difflib

    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""
