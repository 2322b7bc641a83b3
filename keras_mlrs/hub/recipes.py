"""The model zoo: one recipe per published checkpoint, built and published in bulk.

A recipe (``zoo/recipes/<name>.toml``, installed as ``keras_mlrs.zoo``) names a loss of the
registry and the study's setup for it (the authors' K-Branch CNN with 1024-unit fully
connected blocks, TensorFlow 1's RMSProp at 1e-4, batch 1024, 80 epochs, the official
BigEarthNet-19 splits, every 20th epoch's checkpoint kept for LRP during training); its
``[train]`` table holds options of :class:`keras_mlrs.runs.TrainConfig`. :func:`build`
trains each recipe into ``OUT/<name>`` (resuming an interrupted one, skipping a finished
one) and evaluates it on the test split; :func:`publish` pushes each finished one with its
model card (or writes the repositories to folders).

With ``seeds=K``, :func:`build` trains each recipe K times, with seeds ``s, s+1, ...,
s+K-1`` where ``s`` is the recipe's own seed (0 for every recipe): the run of seed ``s``
is ``OUT/<name>`` as with one seed, the others ``OUT/<name>-seed<N>`` (:func:`run_name`,
:func:`plan`). Each run records its seed in its ``config.toml``; only ``OUT/<name>`` is
published.
"""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from pathlib import Path

from keras_mlrs.core import losses
from keras_mlrs.data import detect_format
from keras_mlrs.errors import InvalidParameterError, MlrsError, Registry
from keras_mlrs.files import check_folder_path
from keras_mlrs.hub import repository
from keras_mlrs.runs import RunDirectory, TrainConfig, resume, run_report, train

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

#: The organisation the zoo is published under by default.
DEFAULT_ORG = "keras-mlrs"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One published checkpoint: ``name`` (the loss's registry name), the repository
    ``repo`` (``NAME`` within an organisation), a description, whether it is one of the
    study's seven losses, and the training options."""

    name: str
    repo: str
    description: str
    study: bool
    train: dict

    @property
    def seed(self) -> int:
        """The recipe's own seed (``[train] seed``, 0 in every recipe)."""
        return self.train.get("seed", 0)

    def config(self, data, epochs: int | None = None, batch_size: int | None = None,
               model_params: dict | None = None, seed: int | None = None) -> TrainConfig:
        """Its :class:`~keras_mlrs.runs.TrainConfig` on ``data`` (``epochs``, ``batch_size``,
        ``model_params`` and ``seed`` override the recipe's, e.g. for a quick trial or
        another seed)."""
        values = {**self.train, "data": str(Path(data).expanduser().resolve()) if data else ""}
        if model_params:
            values["model_params"] = {**values.get("model_params", {}), **model_params}
        for name, value in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed)):
            if value is not None:
                values[name] = value
        return TrainConfig.from_dict(values, source=f"zoo recipe '{self.name}'")

    def repo_id(self, org: str = DEFAULT_ORG) -> str:
        return f"{org}/{self.repo}"

    def card_info(self) -> dict:
        return {"name": self.name, "description": self.description}


@functools.cache
def _registry() -> Registry[Recipe]:
    found = []
    for entry in resources.files("keras_mlrs.zoo").joinpath("recipes").iterdir():
        if entry.name.endswith(".toml"):
            table = tomllib.loads(entry.read_text())
            meta = table["recipe"]
            found.append(Recipe(meta["name"], meta["repo"], meta["description"], bool(meta["study"]), table["train"]))
    order = losses.names()
    found.sort(key=lambda r: (not r.study, order.index(r.name) if r.name in order else len(order)))
    registry = Registry("zoo recipe")
    for recipe in found:
        registry.add(recipe.name, recipe)
    return registry


def recipes() -> dict[str, Recipe]:
    """Every recipe, by name: the study's seven losses first, then the others."""
    return dict(_registry().items())


def select(names=None) -> list[Recipe]:
    """The recipes called ``names`` (all when empty), refusing unknown names."""
    registry = _registry()
    chosen = [registry.get(name) for name in names] if names else [entry for _, entry in registry.items()]
    return list({r.name: r for r in chosen}.values())


def run_name(recipe: Recipe, seed: int | None = None) -> str:
    """The run directory name of ``recipe`` trained with ``seed`` in a build folder: the
    recipe's name for its own seed (``None``), ``<name>-seed<N>`` for another seed N."""
    return recipe.name if seed is None or seed == recipe.seed else f"{recipe.name}-seed{seed}"


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One run of a zoo build: ``recipe`` trained with ``seed`` into ``path``."""

    recipe: Recipe
    seed: int
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def check_seeds(seeds) -> int:
    """``seeds``, the number of seeds to train each recipe with, checked (an integer >= 1)."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise InvalidParameterError(f"`seeds` must be an integer >= 1 (the number of seeds per recipe), got {seeds!r}.")
    return seeds


def plan(out_dir, names=None, seeds: int = 1) -> list[PlannedRun]:
    """The runs :func:`build` makes in ``out_dir``: the recipes called ``names`` (all when
    empty), each with ``seeds`` seeds (the recipe's seed ``s``, then ``s+1``...), seed by
    seed: every recipe's first seed before any second one, so an interrupted build has
    whole sets of recipes. Writes nothing."""
    check_seeds(seeds)
    chosen = select(names)
    return [PlannedRun(recipe, recipe.seed + i, Path(out_dir) / run_name(recipe, recipe.seed + i))
            for i in range(seeds) for recipe in chosen]


def seeds_in(out_dir, recipe: Recipe) -> list[int]:
    """The seeds other than its own that ``recipe`` has a run directory for in ``out_dir``
    (``<name>-seed<N>``), in order."""
    found = []
    for path in Path(out_dir).glob(f"{recipe.name}-seed*"):
        suffix = path.name.removeprefix(f"{recipe.name}-seed")
        if suffix.isdigit() and run_name(recipe, int(suffix)) == path.name and RunDirectory(path).exists():
            found.append(int(suffix))
    return sorted(found)


def status(out_dir, recipe: Recipe, seed: int | None = None) -> dict:
    """How far ``recipe`` (with ``seed``, default its own) is built in ``out_dir``:
    ``{"state": "not built" | "partial" | "built", "epoch", "epochs", "run_dir"}``."""
    run = RunDirectory(Path(out_dir) / run_name(recipe, seed))
    if not run.exists():
        return {"state": "not built", "epoch": 0, "epochs": recipe.train.get("epochs"), "run_dir": run.path}
    state = run.state()
    built = state.get("finished") and (run.evaluation("test") / "report.json").is_file()
    return {"state": "built" if built else "partial", "epoch": state.get("epoch", 0), "epochs": run.config().epochs,
            "run_dir": run.path}


def build(data, out_dir, names=None, epochs: int | None = None, batch_size: int | None = None,
          model_params: dict | None = None, seeds: int = 1, callbacks=(), on_start=None,
          say=lambda text: None) -> dict:
    """Train every chosen recipe on the prepared ``data`` into ``out_dir/<name>`` and
    evaluate it on the test split; with ``seeds=K``, K runs per recipe (see :func:`plan`:
    ``out_dir/<name>`` with the recipe's seed, ``out_dir/<name>-seed<N>`` with seed N).
    Finished runs are skipped, interrupted ones resumed from their last completed epoch
    (with their saved configuration). Returns ``{run name: {"recipe", "seed", "state":
    "skipped" | "resumed" | "trained" | "evaluated", "run_dir", "test": report}}``."""
    planned = plan(out_dir, names, seeds)
    check_folder_path(out_dir)
    data = Path(data).expanduser()
    if not data.exists():
        raise MlrsError(f"{data} does not exist; prepare BigEarthNet first (`keras_mlrs.data.prepare()`).")
    if detect_format(data) != "prepared":
        raise MlrsError(f"{data} is not prepared data (no manifest.json); prepare it (`keras_mlrs.data.prepare()`) "
                        "and build the zoo from the prepared folder.")
    # every run checked before any training: the configurations, and that an existing run has the seed its name says
    configs = {p.name: p.recipe.config(data, epochs, batch_size, model_params, seed=p.seed) for p in planned}
    for p in planned:
        run = RunDirectory(p.path)
        if run.exists() and run.config().seed != p.seed:
            raise MlrsError(f"{p.path} holds a run with seed {run.config().seed}, not the seed {p.seed} its name "
                            "stands for in a zoo build; move it out of the build folder.")
    results = {}
    for p in planned:
        run = RunDirectory(p.path)
        run_dir = run.path
        current = status(out_dir, p.recipe, p.seed)
        if current["state"] == "built":
            say(f"{p.name}: already built ({current['epoch']} epochs), skipped")
            action = "skipped"
        elif run.exists() and not run.state().get("finished"):
            say(f"{p.name}: resuming at epoch {current['epoch']} of {current['epochs']}")
            if current["epoch"]:
                resume(run_dir, callbacks=callbacks, on_start=on_start)
            else:
                train(run.config(), run_dir, overwrite=True, callbacks=callbacks, on_start=on_start)
            action = "resumed"
        elif run.exists():
            action = "evaluated"
        else:
            seed = f", seed {p.seed}" if seeds > 1 else ""
            say(f"{p.name}: training {configs[p.name].epochs} epochs{seed} into {run_dir}")
            train(configs[p.name], run_dir, callbacks=callbacks, on_start=on_start)
            action = "trained"
        report = run_report(run_dir, "test")
        results[p.name] = {"recipe": p.recipe.name, "seed": p.seed, "state": action, "run_dir": str(run_dir),
                           "test": report}
    return results


def publish(out_dir, org: str = DEFAULT_ORG, to=None, names=None, private: bool = False, say=lambda text: None) -> dict:
    """Publish every built recipe of ``out_dir`` as ``org/<recipe repo>`` with its model card;
    with ``to``, write each repository to ``to/<recipe repo>`` instead of uploading.
    Returns ``{name: URL or folder}``; recipes not built are reported, not published."""
    repository.repo_id(f"{org}/x")  # a valid organisation, before any work
    done, missing = {}, []
    for recipe in select(names):
        if status(out_dir, recipe)["state"] != "built":
            missing.append(recipe.name)
            continue
        run_dir, repo = Path(out_dir) / recipe.name, recipe.repo_id(org)
        if to is not None:
            say(f"{recipe.name}: writing hf://{repo} to {Path(to) / recipe.repo}")
            done[recipe.name] = str(repository.export(run_dir, Path(to) / recipe.repo, repo, recipe=recipe.card_info(),
                                                      say=say))
        else:
            say(f"{recipe.name}: publishing hf://{repo}")
            done[recipe.name] = repository.push(run_dir, repo, private=private, recipe=recipe.card_info(), say=say)
    if not done:
        raise MlrsError(f"no built recipe in {out_dir} to publish; build them first (`keras_mlrs.hub.recipes.build()`).")
    return {"published": done, "not_built": missing}


__all__ = ["DEFAULT_ORG", "PlannedRun", "Recipe", "build", "check_seeds", "plan", "publish", "recipes", "run_name",
           "seeds_in", "select", "status"]
