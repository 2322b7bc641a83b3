"""The one registry helper and the errors: lookup with a suggestion, parameter checks,
identifiers resolved the way `get` functions take them."""

import pytest

from keras_mlrs.errors import (
    InvalidParameterError,
    MlrsError,
    Registry,
    UnknownNameError,
    choose,
    did_you_mean,
    keyword_defaults,
)

pytestmark = pytest.mark.backend_free


def build(name="x", size: int = 3, *, scale=1.0):
    return (name, size, scale)


def registry():
    r = Registry("widget", parameters=lambda fn: keyword_defaults(fn, skip=("name",)))
    r.add("Round", build)
    r.add("square", build)
    return r


def test_lookup_lists_the_names_and_suggests_the_closest():
    r = registry()
    assert r.names() == ["round", "square"] and "ROUND" in r and len(r) == 2
    assert r.get(" Round ") is build
    with pytest.raises(UnknownNameError, match=r"unknown widget 'sqare'; choose one of: round, square\. Did you mean 'square'\?"):
        r.get("sqare")
    with pytest.raises(ValueError, match="registered twice"):
        r.add("round", build)


def test_parameters_are_read_off_the_entry_and_checked():
    r = registry()
    assert r.parameters("round") == {"size": 3, "scale": 1.0}
    assert r.check("round", ["size"]) is build
    with pytest.raises(InvalidParameterError, match=r"widget 'round' has no parameter 'sise'; its parameters: size, scale\. Did you mean 'size'\?"):
        r.check("round", ["sise"])
    assert r.check("round", ["name"], ignore=["name"]) is build


def test_identifiers_resolve_as_get_functions_take_them():
    r = registry()

    def make(entry, params):
        return entry(**params)

    def deserialize(config):
        return ("deserialized", config["class_name"])

    assert r.resolve("round", {"size": 5}, tuple, make, deserialize) == ("x", 5, 1.0)
    assert r.resolve({"name": "round", "scale": 2.0}, {}, tuple, make, deserialize) == ("x", 3, 2.0)
    assert r.resolve({"class_name": "Thing"}, {}, tuple, make, deserialize) == ("deserialized", "Thing")
    assert r.resolve(("a", 1, 2), {}, tuple, make, deserialize) == ("a", 1, 2)
    with pytest.raises(InvalidParameterError, match="parameters cannot be given with a widget instance"):
        r.resolve(("a", 1, 2), {"size": 1}, tuple, make, deserialize)


def test_choices_and_suggestions():
    assert choose("optimizer", "adam", ("adam", "sgd")) == "adam"
    with pytest.raises(UnknownNameError, match=r"unknown optimizer 'adan'; choose one of: adam, sgd or your own\. Did you mean 'adam'"):
        choose("optimizer", "adan", ("adam", "sgd"), otherwise="or your own")
    assert did_you_mean("zzz", ["adam"]) == ""
    assert issubclass(UnknownNameError, MlrsError) and issubclass(MlrsError, ValueError)
