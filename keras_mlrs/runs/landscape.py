"""Loss landscapes of a run: its loss along random directions around its trained weights
(Li, Xu, Taylor, Studer & Goldstein, "Visualizing the Loss Landscape of Neural Nets",
NeurIPS 2018), the future work the thesis names.

Around a run's weights θ (its final epoch's model unless a checkpoint is named), one
direction δ (or two, δ and η) is drawn at random and *filter-normalised*, and the model is
evaluated at ``θ + α δ`` for ``α`` on a symmetric grid in ``[-span, span]`` (1-D), or at
``θ + α δ + β η`` on a ``points × points`` grid (2-D; it costs ``points²`` evaluations, so
its default is 11 points a side where the 1-D default is 21).

**The directions** (:func:`random_directions`). Each is drawn from a NumPy generator seeded
by ``seed``, one standard-normal array per perturbed variable in the model's variable order
(δ for every variable first, then η), so it depends neither on the backend nor on the run:
runs of one architecture get the same draws from the same seed, and a comparison puts them
on the same directions. A variable is perturbed when it is trainable and has two axes or
more: convolution kernels ``[kh, kw, in, out]`` and dense kernels ``[in, out]``. Filter
normalisation (Li et al., §4): each filter of the direction, one output channel of a
convolution or one output unit of a dense layer (a slice along the last axis), is scaled to
the Frobenius norm of the same filter of θ, so the step ``α`` means the same for layers of
every scale (and a filter of θ that is all zero gets no perturbation).

**What is not perturbed.** Batch normalisation is handled as Li et al. describe: the
direction is zero for its scale γ and offset β, and its moving mean and variance stay as
trained (they are non-trainable). Biases (the classifier's; the K-Branch CNN's other layers
have none) get a zero direction too, as in Li et al.'s plots. Non-trainable variables are
never perturbed, and :class:`~keras_mlrs.core.layers.BandNormalization`'s band statistics
are constants of the layer, not variables.

**What is evaluated.** The model in inference mode (``predict_on_batch``: dropout off,
batch normalisation on its moving statistics) on ``split`` of the run's own data, held in
memory once (``patches=N`` takes the split's first N patches; each K-Branch patch holds about
160 kB of uint16 bands). At each point: the run's own training loss with its
hyperparameters (``losses.get(config.loss, **config.loss_params)``), the mean over the
patches: the *data* loss, which is what the figures show; the L2 penalty of the model's
kernel regularisers at those weights (``sum(model.losses)``), reported beside it, so the
regularised objective of training is their sum; and the sample-averaged F1 under the loss's
decision rule (:class:`keras_mlrs.core.metrics.F1`). At ``α = 0`` (and ``β = 0``) the weights
are θ exactly, so the centre of every grid is the evaluation of the run's model. The weights
are restored to θ afterwards, also when the evaluation fails.

:func:`landscape` computes one run's, :func:`landscapes` several runs' with the same
directions, :func:`save_landscape` writes ``landscape.json`` and the figure into an owned
output folder (``<run>/landscape-<split>`` by default, :func:`landscape_folder`),
:func:`run_landscape` does both (``mlrs landscape``); :func:`landscape_figure` draws the
1-D curves of one or several runs, :func:`contour_figure` a 2-D landscape.
"""

import hashlib
import json
import math
from pathlib import Path

import keras
import numpy as np

from keras_mlrs.bigearthnet import split_name
from keras_mlrs.core import losses, metrics
from keras_mlrs.errors import InvalidParameterError, RunError
from keras_mlrs.files import (
    FigureFiles,
    atomic_folder,
    atomic_write_text,
    check_folder_path,
    check_replaceable,
    pyplot,
    save_figure,
    wrap_text,
)
from keras_mlrs.runs.directory import RunDirectory, load_model, run_names
from keras_mlrs.runs.evaluation import checkpoint_title, evaluation_data, evaluation_set, in_memory
from keras_mlrs.runs.plots import run_colours
from keras_mlrs.version import __version__

#: The kind of the folders :func:`save_landscape` writes (their owner mark).
KIND = "loss landscape"
#: The files of such a folder: the result and its figure (and the figure's PDF).
RESULT, FIGURE = "landscape.json", "landscape.png"
#: The format of ``landscape.json``.
FORMAT = 1
#: Grid points per direction when none are given: a 2-D grid costs points² evaluations.
DEFAULT_POINTS = {1: 21, 2: 11}
#: How the directions are normalised (Li et al.'s filter normalisation).
NORMALISATION = "filter"


# -- options ------------------------------------------------------------------------------------
def _whole(value, lowest: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= lowest


def check_options(directions: int = 1, points: int | None = None, span: float = 1.0, seed: int = 0,
                  patches: int | None = None, batch_size: int = 256) -> int:
    """A one-line :class:`InvalidParameterError` for an option of :func:`landscape` out of
    range; returns the grid points per direction (``points``, or its default for
    ``directions``)."""
    if directions not in (1, 2) or isinstance(directions, bool):
        raise InvalidParameterError(f"give `directions=1` (a line) or `directions=2` (a plane), got {directions!r}.")
    if points is None:
        points = DEFAULT_POINTS[directions]
    if not _whole(points, 3) or points % 2 == 0:
        raise InvalidParameterError(f"`points` must be an odd whole number >= 3, so that the grid holds the trained "
                                    f"weights (0) at its centre, got {points!r}.")
    if isinstance(span, bool) or not isinstance(span, (int, float)) or not 0 < span < math.inf:
        raise InvalidParameterError(f"`span` must be a positive number (the grid runs from -span to span), got {span!r}.")
    if not _whole(seed, 0):
        raise InvalidParameterError(f"`seed` must be a whole number >= 0, got {seed!r}.")
    if patches is not None and not _whole(patches, 1):  # no backticks: the command's flag is --patches
        raise InvalidParameterError(f"the number of patches must be a whole number >= 1 (the split's first N), "
                                    f"got {patches!r}.")
    if not _whole(batch_size, 1):
        raise InvalidParameterError(f"`batch_size` must be a whole number >= 1, got {batch_size!r}.")
    return int(points)


def grid(points: int, span: float = 1.0) -> np.ndarray:
    """``points`` steps from ``-span`` to ``span`` (``points`` odd): exactly symmetric about
    0, which it holds exactly at its centre."""
    half = (points - 1) // 2
    return span * np.arange(-half, half + 1, dtype=np.float64) / half


# -- directions ---------------------------------------------------------------------------------
def perturbed(variable) -> bool:
    """Whether a landscape perturbs ``variable``: trainable, with two axes or more (the
    kernels of convolutions and dense layers; not biases, batch normalisation's γ and β,
    nor any non-trainable variable)."""
    return bool(variable.trainable) and len(variable.shape) >= 2


def _keys(model) -> list[str]:
    """A unique name per variable of ``model``, in its order: the variable's path."""
    keys, seen = [], {}
    for v in model.weights:
        seen[v.path] = seen.get(v.path, 0) + 1
        keys.append(v.path if seen[v.path] == 1 else f"{v.path}#{seen[v.path]}")
    return keys


def filter_norms(array) -> np.ndarray:
    """The Frobenius norm of each filter of a kernel: over every axis but the last."""
    array = np.asarray(array, np.float64)
    return np.sqrt(np.sum(array * array, axis=tuple(range(array.ndim - 1))))


def filter_normalise(direction, weights) -> np.ndarray:
    """``direction`` with each filter (slice along the last axis) scaled to the norm of the
    same filter of ``weights`` (Li et al.'s filter normalisation), in float64."""
    direction = np.asarray(direction, np.float64)
    norms, target = filter_norms(direction), filter_norms(weights)
    return direction * np.where(norms > 0, target / np.where(norms > 0, norms, 1.0), 0.0)


def random_directions(model, seed: int = 0, count: int = 1) -> list[dict]:
    """``count`` filter-normalised random directions around ``model``'s weights: for each,
    ``{variable path: array}`` over every variable of ``model`` (``model.weights``, in its
    order), zero where :func:`perturbed` is false. The draws depend only on ``seed`` and
    the shapes of the perturbed variables (see the module docstring)."""
    check_options(seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        direction = {}
        for key, v in zip(_keys(model), model.weights):
            dtype = np.dtype(keras.backend.standardize_dtype(v.dtype))
            if perturbed(v):
                draw = rng.standard_normal(tuple(v.shape))
                direction[key] = filter_normalise(draw, keras.ops.convert_to_numpy(v)).astype(dtype)
            else:
                direction[key] = np.zeros(tuple(v.shape), dtype)
        out.append(direction)
    return out


def architecture(model) -> str:
    """A fingerprint of what the directions are drawn for: the paths and shapes of the
    perturbed variables. Runs with one fingerprint get the same draws from one seed."""
    text = json.dumps([[k, list(v.shape)] for k, v in zip(_keys(model), model.weights) if perturbed(v)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- evaluation ---------------------------------------------------------------------------------
def evaluate_landscape(model, inputs, labels, loss, rule, directions: list, alphas, betas=None,
                       batch_size: int = 256, progress=None) -> dict:
    """``model`` (its weights θ) evaluated at ``θ + α δ`` for each ``α`` of ``alphas``, or at
    ``θ + α δ + β η`` for each pair of ``alphas`` × ``betas`` when ``betas`` is given
    (``directions``: ``[δ]`` or ``[δ, η]`` as :func:`random_directions` gives them), on
    ``inputs`` and their multi-hot ``labels`` held in memory.

    Returns ``{"loss", "penalty", "f1_samples"}``: numpy arrays of shape ``[len(alphas)]``,
    or ``[len(alphas), len(betas)]`` (row: α, column: β): the mean of ``loss`` over the
    patches, the regularisation penalty ``sum(model.losses)``, and the sample-averaged F1
    under ``rule``. The model runs in inference mode; its weights are θ again afterwards,
    whatever happens. ``progress(done, total)`` is called after each point."""
    keys = _keys(model)
    for direction in directions:
        if set(direction) != set(keys) or any(tuple(direction[k].shape) != tuple(v.shape)
                                              for k, v in zip(keys, model.weights)):
            raise InvalidParameterError("the directions do not fit the model (drawn for another architecture); "
                                        "draw them for it with `random_directions(model)`.")
    if len(directions) != (1 if betas is None else 2):
        raise InvalidParameterError(f"a {'1' if betas is None else '2'}-D landscape takes "
                                    f"{'one direction' if betas is None else 'two directions'}, got {len(directions)}.")
    moved = [(k, v) for k, v in zip(keys, model.weights) if perturbed(v)]
    theta = {k: keras.ops.convert_to_numpy(v).copy() for k, v in moved}
    n = len(labels)
    batches = [keras.tree.map_structure(lambda a, s=start: a[s:s + batch_size], inputs) for start in range(0, n, batch_size)]
    f1 = metrics.F1(average="samples", decision=rule)
    alphas = np.asarray(alphas, np.float64)
    shape = (len(alphas),) if betas is None else (len(alphas), len(betas))
    coords = [(a,) for a in alphas] if betas is None else [(a, b) for a in alphas for b in np.asarray(betas, np.float64)]
    values = {name: np.zeros(len(coords)) for name in ("loss", "penalty", "f1_samples")}
    try:
        for i, steps in enumerate(coords):
            for k, v in moved:
                w = theta[k].astype(np.float64)
                for step, direction in zip(steps, directions):
                    w = w + step * direction[k].astype(np.float64)
                v.assign(w.astype(theta[k].dtype))
            logits = np.concatenate([np.asarray(model.predict_on_batch(x), np.float32) for x in batches])
            values["loss"][i] = float(keras.ops.convert_to_numpy(loss(labels, logits)))
            values["penalty"][i] = float(sum(float(keras.ops.convert_to_numpy(p)) for p in model.losses))
            f1.reset_state()
            f1.update_state(labels, logits)
            values["f1_samples"][i] = float(keras.ops.convert_to_numpy(f1.result()))
            if progress is not None:
                progress(i + 1, len(coords))
    finally:
        for k, v in moved:
            v.assign(theta[k])
    return {name: array.reshape(shape) for name, array in values.items()}


def _numbers(array):
    """A numpy array as nested lists of floats, None where not finite (JSON has no NaN)."""
    if np.ndim(array) == 0:
        value = float(array)
        return value if math.isfinite(value) else None
    return [_numbers(a) for a in array]


def landscape(run_dir, split: str = "validation", directions: int = 1, points: int | None = None, span: float = 1.0,
              seed: int = 0, checkpoint: str = "last", patches: int | None = None, batch_size: int = 256, model=None,
              progress=None) -> dict:
    """The loss landscape of the run's ``checkpoint`` (default: the final epoch's model, the
    study's) on ``split`` of its own data (see the module docstring); nothing is written.

    Args:
        run_dir: a finished run directory.
        split: ``train``, ``validation`` (default) or ``test``.
        directions: 1 (a line through θ) or 2 (a plane).
        points: grid points per direction, odd and >= 3 (default 21 for 1-D, 11 for 2-D;
            2-D evaluates ``points²``).
        span: the grid runs from ``-span`` to ``span`` (in units of the filter-normalised
            direction: 1 is a step as large as the weights).
        seed: seeds the directions; runs of one architecture share them.
        checkpoint: ``last``, ``best`` or ``epoch-N``.
        patches: evaluate on the split's first N patches only (default: all, held in memory).
        batch_size: patches per forward pass.
        model: that checkpoint's model, when the caller has loaded it already (its weights
            are perturbed, and restored).
        progress: ``progress(done, total)`` after each evaluated point.

    Returns:
        ``{"format", "keras_mlrs", "run", "name", "checkpoint": {"name", "epoch"}, "data",
        "split", "patches", "evaluation_set", "loss": {"name", "params"}, "decision",
        "directions", "points", "span", "seed", "normalisation", "architecture",
        "perturbed": {"variables", "parameters"}, "fixed": {"variables", "parameters"},
        "alphas", "betas" (None for 1-D), "loss_values", "penalty_values", "f1_values",
        "origin": {"loss", "penalty", "f1_samples"}, "minimum": {"loss", "alpha", "beta"}}``.
        The values are lists over ``alphas`` (1-D) or lists of rows, one per α, each over
        ``betas`` (2-D); ``loss_values`` is the data loss, without ``penalty_values`` (the L2
        term of the kernel regularisers); ``origin`` is the centre (the model itself).
    """
    points = check_options(directions, points, span, seed, patches, batch_size)
    split = split_name(split)
    run = RunDirectory(run_dir).finished()
    model_path, which = run.resolve_checkpoint(checkpoint)
    config = run.config()
    loss = losses.get(config.loss, **config.loss_params)
    model = model if model is not None else load_model(model_path)
    dataset, data_path, names = evaluation_data(model, run.path, split, batch_size=batch_size)
    inputs, labels = in_memory(dataset, patches)
    if not len(labels):
        raise RunError(f"{data_path} has no patch in the {split} split of run {run.path}; give another "
                       f"`split` (train, validation or test).")
    drawn = random_directions(model, seed, directions)
    alphas = grid(points, span)
    betas = alphas.copy() if directions == 2 else None
    values = evaluate_landscape(model, inputs, labels, loss, loss.decision, drawn, alphas, betas, batch_size, progress)
    moved = [v for v in model.weights if perturbed(v)]
    kept = [v for v in model.weights if not perturbed(v)]
    centre = (points - 1) // 2
    at = (centre,) if directions == 1 else (centre, centre)
    lowest = np.unravel_index(int(np.nanargmin(values["loss"])), values["loss"].shape) \
        if np.isfinite(values["loss"]).any() else None
    rule = loss.decision
    return {
        "format": FORMAT, "keras_mlrs": __version__,
        "run": str(run.path), "name": run.path.name, "checkpoint": which, "data": str(data_path), "split": split,
        "patches": int(len(labels)),
        "evaluation_set": evaluation_set(names[:len(labels)] if names is not None else None, split),
        "loss": {"name": config.loss, "params": dict(config.loss_params)},
        "decision": {"name": rule.name, **rule.get_config()},
        "directions": directions, "points": points, "span": float(span), "seed": int(seed),
        "normalisation": NORMALISATION, "architecture": architecture(model),
        "perturbed": {"variables": len(moved), "parameters": int(sum(math.prod(v.shape) for v in moved))},
        "fixed": {"variables": len(kept), "parameters": int(sum(math.prod(v.shape) for v in kept))},
        "alphas": alphas.tolist(), "betas": None if betas is None else betas.tolist(),
        "loss_values": _numbers(values["loss"]), "penalty_values": _numbers(values["penalty"]),
        "f1_values": _numbers(values["f1_samples"]),
        "origin": {name: _numbers(values[name][at]) for name in ("loss", "penalty", "f1_samples")},
        "minimum": None if lowest is None else {
            "loss": float(values["loss"][lowest]), "alpha": float(alphas[lowest[0]]),
            "beta": None if betas is None else float(betas[lowest[1]])},
    }


def landscapes(run_dirs, **options) -> dict:
    """:func:`landscape` of each run of ``run_dirs`` with the same ``options`` (the same
    seed, so runs of one architecture share their directions): ``{run name: result}``,
    the names as :func:`run_names`, in order. Draw them with :func:`landscape_figure`."""
    return {name: landscape(run_dir, **options) for name, run_dir in zip(run_names(run_dirs), run_dirs)}


# -- figures ------------------------------------------------------------------------------------
def _grid_sentence(result: dict) -> str:
    lines = "one filter-normalised random direction" if result["directions"] == 1 else \
        "two filter-normalised random directions"
    grid_size = f"{result['points']}" if result["directions"] == 1 else f"{result['points']} by {result['points']}"
    patches = f"{result['patches']:,} patch" + ("" if result["patches"] == 1 else "es")
    return (f"along {lines}, seed {result['seed']}; {grid_size} points in [-{result['span']:g}, {result['span']:g}]; "
            f"{patches}")


def landscape_figure(results: dict, path, title: str | None = None) -> FigureFiles:
    """The 1-D landscapes of ``results`` (run name -> a 1-D :func:`landscape` result), one
    line per run: the data loss (left; a log axis when the losses span more than a factor of
    ten, as losses differ in scale) and the sample-F1 (right) against the step α, the
    trained weights (α = 0) marked on each curve. Results with different seeds are refused:
    the curves of one figure share their directions (for runs of one architecture).

    ``info``: ``{"runs", "seed", "loss_scale", "same_directions"}``, ``same_directions``
    true when every run has the same architecture fingerprint (and so the same draws)."""
    if not results:
        raise InvalidParameterError("give at least one landscape to draw.")
    if any(r["directions"] != 1 for r in results.values()):
        raise InvalidParameterError("landscape_figure draws 1-D landscapes; draw a 2-D one with `contour_figure`.")
    seeds = {r["seed"] for r in results.values()}
    if len(seeds) > 1:
        raise InvalidParameterError(f"the landscapes were drawn along different directions (seeds "
                                    f"{', '.join(map(str, sorted(seeds)))}); compute them with one `seed`.")
    plt = pyplot()
    fig, (loss_ax, f1_ax) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    values = []
    for colour, (name, r) in zip(run_colours(plt, len(results)), results.items()):
        alphas = np.asarray(r["alphas"])
        centre = (len(alphas) - 1) // 2
        loss = np.array([np.nan if v is None else v for v in r["loss_values"]], np.float64)
        f1 = np.array([np.nan if v is None else v for v in r["f1_values"]], np.float64)
        marker = "o" if len(alphas) <= 31 else None
        loss_ax.plot(alphas, loss, color=colour, marker=marker, markersize=3.5, linewidth=1.6, label=name)
        f1_ax.plot(alphas, f1, color=colour, marker=marker, markersize=3.5, linewidth=1.6, label=name)
        for ax, series in ((loss_ax, loss), (f1_ax, f1)):
            ax.plot([0.0], [series[centre]], marker="*", markersize=13, color=colour, markeredgecolor="black",
                    markeredgewidth=0.6, linestyle="none", zorder=5)
        values += [v for v in loss if np.isfinite(v)]
    log = bool(values) and min(values) > 0 and max(values) / min(values) > 10
    if log:
        loss_ax.set_yscale("log")
    names = list(results)
    first = results[names[0]]
    loss_names = sorted({r["loss"]["name"] for r in results.values()})
    loss_label = (f"{loss_names[0]} loss" if len(loss_names) == 1 else "each run's loss") + " (data term)"
    for ax, label in ((loss_ax, loss_label + (", log scale" if log else "")), (f1_ax, "F1 (samples)")):
        ax.axvline(0.0, color="0.5", linestyle=":", linewidth=1.0)
        ax.xaxis.set_major_formatter("{x:g}")
        ax.set_xlabel("step α along the direction δ (0: the trained weights)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    loss_ax.set_title("loss", fontsize=10)
    f1_ax.set_title("sample-F1 (the run's decision rule)", fontsize=10)
    f1_ax.set_ylim(-0.02, 1.02)
    from matplotlib.lines import Line2D  # with pyplot, on its backend

    handles = [Line2D([], [], color=c, linewidth=2.5, label=n) for c, n in zip(run_colours(plt, len(results)), names)]
    handles.append(Line2D([], [], color="white", marker="*", markersize=12, markerfacecolor="0.6",
                          markeredgecolor="black", label="trained weights (α = 0)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=9, frameon=False)
    same = len({r["architecture"] for r in results.values()}) == 1
    if title is None:
        splits = sorted({r["split"] for r in results.values()})
        where = f"the {splits[0]} split" if len(splits) == 1 else "their splits"
        if len(results) == 1:
            head = f"Loss landscape of {names[0]} ({checkpoint_title(first['checkpoint'])}) on {where}"
        else:
            head = f"Loss landscapes of {', '.join(names)} on {where}"
        shared = "" if len(results) == 1 else ("; the same directions for every run" if same else
                                               "; architectures differ, so their directions do too")
        title = f"{head}\n{_grid_sentence(first)}{shared}; the L2 penalty left out"
    fig.suptitle("\n".join(wrap_text(line, 120) for line in title.split("\n")), fontsize=11)
    return save_figure(fig, path, title=title, info={
        "runs": names, "seed": first["seed"], "loss_scale": "log" if log else "linear", "same_directions": same})


def contour_figure(result: dict, path, title: str | None = None) -> FigureFiles:
    """A 2-D :func:`landscape` result as filled contours over the plane (α along δ, β along
    η): the data loss (left) and the sample-F1 (right), each with its colour bar and the
    trained weights (the origin) marked with a star, the lowest loss of the grid with a
    cross (where it is not the origin). ``info``: ``{"loss_range": [min, max], "f1_range": [min, max], "levels"}``."""
    if result["directions"] != 2:
        raise InvalidParameterError("contour_figure draws 2-D landscapes; draw a 1-D one with `landscape_figure`.")
    plt = pyplot()
    alphas, betas = np.asarray(result["alphas"]), np.asarray(result["betas"])
    loss = np.array([[np.nan if v is None else v for v in row] for row in result["loss_values"]], np.float64)
    f1 = np.array([[np.nan if v is None else v for v in row] for row in result["f1_values"]], np.float64)
    fig, (loss_ax, f1_ax) = plt.subplots(1, 2, figsize=(11.5, 4.8), layout="constrained")
    # rows are α, columns β: contourf takes Z[y, x], so β runs up the axis and α across
    B, A = np.meshgrid(betas, alphas)
    finite = loss[np.isfinite(loss)]
    levels = 20
    if finite.size and finite.max() > finite.min():
        drawn = loss_ax.contourf(A, B, loss, levels=levels, cmap="viridis")
        lines = loss_ax.contour(A, B, loss, levels=drawn.levels[::4], colors="white", linewidths=0.6, alpha=0.7)
        loss_ax.clabel(lines, fontsize=7, fmt="%.3g")
    else:  # a flat grid: one colour
        drawn = loss_ax.pcolormesh(A, B, loss, cmap="viridis", shading="nearest")
    fig.colorbar(drawn, ax=loss_ax, label=f"{result['loss']['name']} loss (data term)")
    scores = f1_ax.contourf(A, B, np.nan_to_num(f1), levels=np.linspace(0, 1, 11), cmap="magma", vmin=0.0, vmax=1.0)
    fig.colorbar(scores, ax=f1_ax, label="F1 (samples)")
    minimum = result.get("minimum")
    for ax in (loss_ax, f1_ax):
        ax.plot([0.0], [0.0], marker="*", markersize=14, color="white", markeredgecolor="black", linestyle="none",
                zorder=5, label="trained weights")
        if minimum and (minimum["alpha"], minimum["beta"]) != (0.0, 0.0):
            ax.plot([minimum["alpha"]], [minimum["beta"]], marker="X", markersize=9, color="red",
                    markeredgecolor="white", linestyle="none", zorder=5, label="lowest loss of the grid")
        ax.set_xlabel("step α along δ")
        ax.set_ylabel("step β along η")
        ax.xaxis.set_major_formatter("{x:g}")
        ax.yaxis.set_major_formatter("{x:g}")
        ax.set_xlim(alphas[0], alphas[-1])
        ax.set_ylim(betas[0], betas[-1])
        ax.set_aspect("equal")
    loss_ax.set_title("loss", fontsize=10)
    f1_ax.set_title("sample-F1 (the run's decision rule)", fontsize=10)
    handles, labels = loss_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), fontsize=9, frameon=False)
    if title is None:
        title = (f"Loss landscape of {result['name']} ({checkpoint_title(result['checkpoint'])}) on the "
                 f"{result['split']} split\n{_grid_sentence(result)}; the L2 penalty left out")
    fig.suptitle("\n".join(wrap_text(line, 120) for line in title.split("\n")), fontsize=11)
    return save_figure(fig, path, title=title, info={
        "loss_range": [float(finite.min()), float(finite.max())] if finite.size else None,
        "f1_range": [float(np.nanmin(f1)), float(np.nanmax(f1))], "levels": levels})


def draw(result: dict, path, title: str | None = None) -> FigureFiles:
    """The figure of one result: :func:`landscape_figure` (1-D) or :func:`contour_figure` (2-D)."""
    if result["directions"] == 1:
        return landscape_figure({result["name"]: result}, path, title)
    return contour_figure(result, path, title)


# -- files --------------------------------------------------------------------------------------
def landscape_folder(run_dir, split: str = "validation", checkpoint: str = "last", directions: int = 1) -> Path:
    """Where :func:`save_landscape` writes a run's landscape by default:
    ``<run>/landscape-<split>``, ``-<checkpoint>`` appended for another checkpoint than
    ``last``, ``-2d`` for two directions."""
    name = f"landscape-{split_name(split)}" + ("" if checkpoint == "last" else f"-{checkpoint}")
    return RunDirectory(run_dir).path / (name + ("-2d" if directions == 2 else ""))


def save_landscape(result: dict, out_dir=None, json_path=None) -> list[Path]:
    """Write ``result`` (of :func:`landscape`) into the folder ``out_dir`` (default:
    :func:`landscape_folder` of its run), replacing only a landscape folder keras-mlrs wrote
    (:func:`keras_mlrs.files.check_replaceable`): ``landscape.json`` and the figure
    (``landscape.png`` and ``.pdf``, :func:`draw`), all or nothing; and a copy of the JSON at
    ``json_path`` when given. Returns the paths written."""
    folder = Path(out_dir) if out_dir is not None else landscape_folder(
        result["run"], result["split"], result["checkpoint"]["name"], result["directions"])
    text = json.dumps(result, indent=1)
    with atomic_folder(folder, KIND) as staging:
        atomic_write_text(staging / RESULT, text)
        figure = draw(result, staging / FIGURE)
        written = [folder / RESULT, *(folder / p.name for p in figure.paths)]
    if json_path is not None:
        written.append(atomic_write_text(json_path, text))
    return written


def run_landscape(run_dir, out_dir=None, json_path=None, **options) -> dict:
    """:func:`landscape` of a run, written by :func:`save_landscape` (``mlrs landscape``).
    Every argument is checked before anything is computed: the options, the run, and that
    the output folder may be written. Returns the result with ``"files"``: the paths
    written."""
    directions = options.get("directions", 1)
    check_options(**{k: options[k] for k in ("directions", "points", "span", "seed", "patches", "batch_size")
                     if k in options})
    run = RunDirectory(run_dir).finished()
    checkpoint = options.get("checkpoint", "last")
    run.resolve_checkpoint(checkpoint)
    folder = Path(out_dir) if out_dir is not None else landscape_folder(
        run.path, options.get("split", "validation"), checkpoint, directions)
    check_replaceable(folder, KIND)
    check_folder_path(folder)
    if json_path is not None:
        check_folder_path(Path(json_path).parent)
        if Path(json_path).is_dir():
            raise InvalidParameterError(f"{json_path} is a folder; give a file name for the JSON.")
    result = landscape(run.path, **options)
    return {**result, "files": [str(p) for p in save_landscape(result, folder, json_path)]}


__all__ = ["DEFAULT_POINTS", "FIGURE", "KIND", "RESULT", "architecture", "check_options", "contour_figure", "draw",
           "evaluate_landscape", "filter_norms", "filter_normalise", "grid", "landscape",
           "landscape_figure", "landscape_folder", "landscapes", "perturbed", "random_directions", "run_landscape",
           "save_landscape"]
