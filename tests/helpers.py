"""What the tests share besides fixtures: running `mlrs` as a user does, asserting one-line
errors, gradients through the active backend, a Hugging Face cache seeded by hand, and the
independent references (rasterio reads, JSON labels) the data is checked against."""

import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_mlrs.bigearthnet import (
    CLASS_NAMES,
    CORINE_TO_19,
    GROUP_SIZES,
    GROUPS,
    NUM_CLASSES,
    STACKED_BANDS,
)
from keras_mlrs.core.layers import BandNormalization
from keras_mlrs.models import kbranch_cnn

BACKEND = keras.backend.backend()
#: What the suite keeps between its runs, outside the clone (as uv keeps its downloads): a
#: fresh clone on a machine that ran the suite once reuses it (iNNvestigate's reference
#: relevance, JAX's compiled programs). Deleting it costs only time.
TEST_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "keras-mlrs-tests"
PNG = b"\x89PNG\r\n\x1a\n"
#: `mlrs` in a fresh Python process: ``[sys.executable, "-c", MLRS, *args]``.
#: Code that makes ``import tensorflow`` fail in the process that runs it, as on a JAX or
#: PyTorch machine without TensorFlow (``tensorflow_available()`` is then False): a module
#: that is None in ``sys.modules`` cannot be imported, and ``importlib.util.find_spec`` finds
#: nothing for it, as for a package that is not installed (PyTorch probes for TensorFlow so)
NO_TENSORFLOW = """
import sys
sys.modules.update(dict.fromkeys(("tensorflow", "tf_keras", "tensorboard")))
"""
def tiny_model(num_classes=NUM_CLASSES):
    """A tiny model: the band groups averaged, two dense layers, dropout between them. JAX and
    tf.distribute compile its steps in a fraction of the K-Branch CNN's time, for the tests of
    how batches and gradients travel and of exact resumes; its dropout layer makes them check
    that every process draws the masks one process would, and that a resumed run draws them on."""
    inputs = {g: keras.Input((GROUP_SIZES[g], GROUP_SIZES[g], len(b)), name=g, dtype="uint16") for g, b in GROUPS.items()}
    pooled = [keras.layers.GlobalAveragePooling2D()(BandNormalization(GROUPS[g])(x)) for g, x in inputs.items()]
    x = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()(pooled))
    x = keras.layers.Dropout(0.25)(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x), name="tiny")


#: :func:`tiny_model` registered as "tiny", as code for a script of its own (``TINY_MLRS`` is
#: ``mlrs`` with it, as ``python -c TINY_MLRS args...``).
TINY_MODEL_CODE = """
import sys
from keras_mlrs import models  # first, as the mlrs command: Keras and TensorFlow then load quietly
from keras_mlrs.bigearthnet import GROUP_SIZES, GROUPS, NUM_CLASSES
from keras_mlrs.cli import registry
from keras_mlrs.core.layers import BandNormalization
import keras

""" + inspect.getsource(tiny_model) + """
models.MODELS.add("tiny", tiny_model)
registry.MODELS = (*registry.MODELS, "tiny")
"""
TINY_MLRS = TINY_MODEL_CODE + """
from keras_mlrs.cli.main import main
sys.argv = ["mlrs", *sys.argv[1:]]
main()
"""
MLRS = "import sys; from keras_mlrs.cli.main import main; sys.argv = ['mlrs', *sys.argv[1:]]; main()"
#: Narrow K-Branch CNNs for tests (the study's widths are what the zoo and `mlrs train` use).
TINY = {"width": 0.25, "units": 16}
TINY_FLAGS = [flag for k, v in TINY.items() for flag in ("--model-param", f"{k}={v}")]


def value_and_grad(fn, x):
    """Value of scalar ``fn(x)`` and its gradient with respect to ``x`` (a numpy float32 array),
    through the active backend's autodiff. Returns numpy arrays."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            value = fn(xt)
        return np.asarray(value), np.asarray(tape.gradient(value, xt))
    if BACKEND == "jax":
        import jax

        value, grad = jax.value_and_grad(lambda t: fn(t))(x)
        return np.asarray(value), np.asarray(grad)
    if BACKEND == "torch":
        import torch

        xt = torch.tensor(x, requires_grad=True)
        value = fn(xt)
        (grad,) = torch.autograd.grad(value, xt)
        return value.detach().cpu().numpy(), grad.cpu().numpy()
    pytest.fail(f"no gradient helper for backend {BACKEND}")


def run_mlrs_here(capsys, *args):
    """`mlrs` in this process, without a new interpreter's start-up:
    the entry point with its error handling, output captured by ``capsys``."""
    from keras_mlrs.cli.main import main

    saved = sys.argv
    sys.argv = ["mlrs", *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = saved
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def one_line_error(result, *fragments):
    """Assert that ``result`` (of :func:`run_mlrs_here`) is a user error: exit code 1, one line
    on stderr containing every fragment, no traceback. Returns the line."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def seed_hub_cache(folder, repo: str, cache, commit: str = "0" * 40, branch: str = "main"):
    """Put the repository content ``folder`` (as ``mlrs push --to`` writes it) into the
    Hugging Face cache ``cache`` in the layout huggingface_hub itself writes: files under
    ``blobs/`` named by their hash, ``snapshots/<commit>/`` linking to them, and
    ``refs/<branch>`` naming the commit. Only files travel, as on the Hub (no empty folders)."""
    root = Path(cache) / f"models--{repo.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = root / "snapshots" / commit
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file() or path.name.startswith(".keras-mlrs"):  # the output mark is not uploaded
            continue
        content = path.read_bytes()
        blob = root / "blobs" / hashlib.sha256(content).hexdigest()
        blob.write_bytes(content)
        link = snapshot / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / branch).write_text(commit)
    return snapshot


def header_only_tiff(path, width, height, samples=1, tile=256):
    """A ~200-byte tiled TIFF whose header claims ``width`` × ``height`` pixels: no pixel data."""
    import struct

    entries = [(256, 4, width), (257, 4, height), (258, 3, 16), (259, 3, 1), (262, 3, 1), (277, 3, samples),
               (322, 3, tile), (323, 3, tile), (324, 4, 8), (325, 4, 0)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, typ, 1) + (struct.pack("<I", v) if typ == 4 else struct.pack("<HH", v, 0))
        for tag, typ, v in entries) + struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd)
    return path


def rasterio_groups(folder) -> dict:
    """The band groups of a v1 patch folder, each band file read by rasterio (GDAL): the
    independent reference of the readers."""
    import rasterio

    folder = Path(folder)
    bands = {}
    for path in folder.glob(f"{folder.name}_B*.tif"):
        with rasterio.open(path) as src:
            bands[path.stem.rsplit("_", 1)[1]] = src.read(1)
    return {group: np.dstack([bands[b] for b in names]) for group, names in GROUPS.items()}


def reference_labels(folder) -> np.ndarray:
    """The multi-hot labels of a v1 patch folder, from its JSON and the 43 -> 19 mapping."""
    folder = Path(folder)
    labels = json.loads((folder / f"{folder.name}_labels_metadata.json").read_text())["labels"]
    y = np.zeros(len(CLASS_NAMES), "float32")
    for label in labels:
        if CORINE_TO_19[label] is not None:
            y[CLASS_NAMES.index(CORINE_TO_19[label])] = 1
    return y


def sample_folders(root) -> list[Path]:
    """The patch folders of a v1 archive, sorted by name."""
    return sorted(p for p in Path(root).iterdir() if p.is_dir())


# -- the bundled sample and what the loader gives ------------------------------------------------
#: The sample's patches by official split (the sixth is excluded for seasonal snow).
SAMPLE_TRAIN = {
    "S2A_MSIL2A_20170617T113321_36_85",
    "S2A_MSIL2A_20170617T113321_4_55",
    "S2A_MSIL2A_20171221T112501_56_35",
    "S2B_MSIL2A_20170924T93020_69_24",
}
SAMPLE_TEST = {"S2A_MSIL2A_20170613T101031_87_48"}
SAMPLE_SNOW = "S2B_MSIL2A_20180204T94161_57_38"


def collect(ds):
    """Every batch of a dataset, concatenated: ``(band groups, labels)`` as numpy."""
    groups, ys = {g: [] for g in GROUPS}, []
    for x, y in ds:
        for g in GROUPS:
            groups[g].append(np.asarray(x[g]))
        ys.append(np.asarray(y))
    return {g: np.concatenate(v) for g, v in groups.items()}, np.concatenate(ys)


def sort_by_labels_and_pixels(groups, ys):
    """Patches in a canonical order (labels, then pixel sum), to compare sets of patches."""
    key = [(tuple(y), int(groups["b10m"][i].sum())) for i, y in enumerate(ys)]
    order = sorted(range(len(ys)), key=lambda i: key[i])
    return {g: a[order] for g, a in groups.items()}, ys[order]


def which_patch(x, y, i, reference):
    """The index in ``reference`` (``[(groups, labels)]``) of row ``i`` of a batch, checked
    to match it exactly."""
    hits = [k for k, (groups, labels) in enumerate(reference)
            if all(np.array_equal(np.asarray(x[g][i]), groups[g]) for g in GROUPS)
            and np.array_equal(np.asarray(y[i]), labels)]
    assert len(hits) == 1, "a loaded patch matches no patch of the archive"
    return hits[0]


# -- models for the LRP tests -------------------------------------------------------------------
def relative_difference(a, b) -> float:
    """Max-abs difference over the heatmap, normalised by its max-abs."""
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))

def mlp(seed, sizes=(10, 16, 12, 5)):
    """A ReLU MLP with weights drawn by NumPy (:func:`numpy_weights`): the same model under
    every backend (Keras' own initialisers draw differently on each)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((sizes[0],))
    x = inputs
    for units in sizes[1:-1]:
        x = keras.layers.Dense(units, activation="relu")(x)
    return numpy_weights(keras.Model(inputs, keras.layers.Dense(sizes[-1])(x)), seed)


def numpy_weights(model, seed):
    """``model`` with He-normal kernels and small random biases drawn by NumPy, so the
    weights (and the cached iNNvestigate results) are the same under every backend."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            kernel = layer.kernel
            fan_in = int(np.prod(kernel.shape[:-1]))
            values = [rng.normal(0, np.sqrt(2 / fan_in), kernel.shape)]
            if layer.bias is not None:
                values.append(rng.normal(0, 0.05, layer.bias.shape))
            layer.set_weights([v.astype("float32") for v in values])
    return model

def small_kbranch(seed, zero_bias=False):
    """A narrow K-Branch CNN with random weights and random batch-normalisation statistics
    (so folding them matters); ``zero_bias``: every bias, folded ones included, is zero."""
    model = numpy_weights(kbranch_cnn(width=0.25, units=16), seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            mean = np.zeros(n) if zero_bias else rng.normal(0, 0.2, n)
            beta = np.zeros(n) if zero_bias else rng.normal(0, 0.2, n)
            layer.set_weights([rng.uniform(0.5, 1.5, n), beta, mean, rng.uniform(0.5, 2.0, n)])
        elif isinstance(layer, keras.layers.Dense) and layer.bias is not None:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, np.zeros_like(bias) if zero_bias else rng.normal(0, 0.1, bias.shape)])
    return model

def residual_net(seed):
    """A small stacked-layout CNN with a strided convolution, zero padding, overlapping
    max pooling, a residual Add, average pooling and global average pooling."""
    inputs = keras.Input((120, 120, 12), dtype="uint16", name="bands")
    x = BandNormalization(STACKED_BANDS)(inputs)
    x = keras.layers.ZeroPadding2D(1)(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Conv2D(16, 2, padding="valid")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return numpy_weights(keras.Model(inputs, keras.layers.Dense(19)(x)), seed)

def float64_mode():
    """JAX computes in float64 only in its 64-bit mode; TensorFlow always can."""
    import contextlib

    if keras.backend.backend() == "jax":
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def replicate_patches(sample, root, copies):
    """A larger v1 archive: the 5 usable sample patches, each copied under new names that the
    random split accepts."""
    root.mkdir()
    for folder in sorted(p for p in sample.iterdir() if p.is_dir() and p.name != SAMPLE_SNOW):
        for k in range(copies):
            name = f"{folder.name}_copy{k:03d}"
            dst = root / name
            dst.mkdir()
            for f in folder.iterdir():
                shutil.copy(f, dst / f.name.replace(folder.name, name))
    return root


def figure_title(png) -> str:
    """Check a figure written by ``keras_mlrs.files.save_figure``, an independent reading of
    the files: the PNG at 300 dpi (its ``pHYs`` chunk) and the PDF beside it, both carrying
    one title in their metadata (PNG ``tEXt``, the PDF's info dictionary). Returns it."""
    png = Path(png)
    data = png.read_bytes()
    assert data[:8] == PNG, png
    pos, text, dpi = 8, {}, None
    while pos < len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"pHYs" and body[8] == 1:  # pixels per metre
            dpi = round(int.from_bytes(body[:4], "big") * 0.0254)
        elif kind == b"tEXt":
            key, value = body.split(b"\0", 1)
            text[key.decode("latin-1")] = value.decode("latin-1")
        pos += 12 + length
    assert dpi == 300, (png, dpi)
    pdf = png.with_suffix(".pdf").read_bytes()
    assert pdf[:5] == b"%PDF-" and pdf.rstrip().endswith(b"%%EOF"), png.with_suffix(".pdf")
    found = re.search(rb"/Title \(((?:\\.|[^\\)])*)\)", pdf)
    assert found, "no /Title in the PDF"
    title = re.sub(rb"\\(.)", lambda m: b"\n" if m.group(1) == b"n" else m.group(1), found.group(1)).decode("latin-1")
    assert title == text["Title"], (title, text)
    return title
