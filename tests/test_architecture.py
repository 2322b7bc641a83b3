"""The package's structure as tests: every function-local import says why, no module uses
another's private names, the installed packages are the tree, `import keras_mlrs` is cheap
and still registers its Keras objects, and the documented public names work. (The layers
and the absence of import cycles are import-linter's contracts, run by the test command.)"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

pytestmark = pytest.mark.backend_free

ROOT = Path(__file__).resolve().parent.parent
#: the folders that install as the keras_mlrs package (see [tool.setuptools.package-dir])
SOURCES = {"keras_mlrs": ROOT / "keras_mlrs", "keras_mlrs.cli": ROOT / "cli", "keras_mlrs.zoo": ROOT / "zoo"}


def modules():
    """(dotted name, path, syntax tree) of every module of the package."""
    out = []
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if package == "keras_mlrs" and parts[0] in ("cli", "zoo"):
                continue
            name = ".".join((package, *parts)).removesuffix(".__init__")
            out.append((name, path, ast.parse(path.read_text())))
    return out


def _explained(lines, i) -> bool:
    """Whether the import on line ``i`` (0-based), or the group of imports it ends, carries a
    comment on one of its lines or on the line above the group."""
    while True:
        if "#" in lines[i]:
            return True
        j = i - 1
        while not lines[j].strip():  # blank lines between the imports of one group
            j -= 1
        above = lines[j].strip()
        if above.startswith("#"):
            return True
        if not above.startswith(("import ", "from ")):
            return False
        i = j


def test_every_function_local_import_says_why():
    """An import inside a function hides the import graph; each needs a comment, on its line
    or the line above, saying why it is not at the top (e.g. Keras kept off `mlrs --help`)."""
    missing = []
    for _, path, tree in modules():
        lines = path.read_text().splitlines()
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Import | ast.ImportFrom) and not _explained(lines, node.lineno - 1):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not missing, "function-local imports without a reason:\n" + "\n".join(sorted(set(missing)))


def test_no_module_uses_another_modules_private_names():
    used = []
    names = {name for name, _, _ in modules()}
    for _, path, tree in modules():
        aliases = {}  # local name -> module of the package it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_mlrs"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if alias.name.startswith("_") and not alias.name.startswith("__") and target not in names:
                        used.append(f"{path.relative_to(ROOT)}: from {node.module} import {alias.name}")
                    if target in names:
                        aliases[alias.asname or alias.name] = target
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("keras_mlrs") and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                used.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not used, "private names used across modules:\n" + "\n".join(used)


def test_the_installed_packages_are_the_source_tree():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {name: str(folder.relative_to(ROOT)) for name, folder in SOURCES.items()}
    tree = {name for name, path, _ in modules() if path.name == "__init__.py"}
    assert set(config["packages"]) == tree
    assert config.get("py-modules") is None  # no top-level module besides the package


def test_import_is_cheap_quiet_and_registers_the_keras_objects_whichever_comes_first():
    """`import keras_mlrs` loads neither Keras nor TensorFlow; once Keras is loaded, before or
    after it (or TensorFlow first, which asks for Keras' spec without importing it), every loss
    (class and function), layer, metric and decision rule is registered. Loaded through
    keras-mlrs, TensorFlow prints nothing (TF 2.21's C++ start-up lines ignore
    TF_CPP_MIN_LOG_LEVEL; the user did not set it here)."""
    check = (
        "import keras; names = ['keras_mlrs>Focal', 'keras_mlrs>focal', 'keras_mlrs>Sparsemax', "
        "'keras_mlrs>BandNormalization', 'keras_mlrs>F1', 'keras_mlrs>SparsemaxSupport']; "
        "print([n for n in names if keras.saving.get_registered_object(n) is None])"
    )
    quiet = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    for first, env in (
        ("import keras_mlrs, sys; assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules "
         "and 'jax' not in sys.modules; import tensorflow", {**quiet, "KERAS_BACKEND": "tensorflow"}),
        ("import keras, keras_mlrs", {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "jax"}),
    ):
        done = subprocess.run([sys.executable, "-c", f"{first}; {check}"], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == "[]", first
        if "TF_CPP_MIN_LOG_LEVEL" not in env:
            assert done.stderr == "", first

PUBLIC = [
    "keras_mlrs.from_pretrained", "keras_mlrs.MlrsError", "keras_mlrs.__version__",
    "keras_mlrs.losses.get", "keras_mlrs.losses.Focal", "keras_mlrs.losses.focal", "keras_mlrs.metrics.standard",
    "keras_mlrs.layers.Sparsemax", "keras_mlrs.layers.BandNormalization", "keras_mlrs.decision.get",
    "keras_mlrs.ops.sparsemax", "keras_mlrs.data.load", "keras_mlrs.data.prepare", "keras_mlrs.data.read_patch",
    "keras_mlrs.data.sample_path", "keras_mlrs.data.CLASS_NAMES", "keras_mlrs.models.kbranch_cnn",
    "keras_mlrs.models.get", "keras_mlrs.explain.lrp", "keras_mlrs.explain.LRP", "keras_mlrs.runs.train",
    "keras_mlrs.runs.TrainConfig", "keras_mlrs.runs.evaluate", "keras_mlrs.runs.load_model", "keras_mlrs.hub.push",
    "keras_mlrs.runs.calibrate", "keras_mlrs.decision.Calibrated", "keras_mlrs.decision.fit_thresholds",
    "keras_mlrs.hub.from_pretrained", "keras_mlrs.bigearthnet.CLASS_NAMES",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_documented_public_names_resolve(name):
    import keras_mlrs

    obj = keras_mlrs
    for part in name.split(".")[1:]:
        obj = getattr(obj, part)
    assert obj is not None
