"""The model zoo: one recipe per published checkpoint, built and published in bulk.

A recipe (``zoo/recipes/<name>.toml``, installed as ``keras_mlrs.zoo``) names a loss of the
registry and the study's setup for it (the authors' K-Branch CNN with 1024-unit fully
connected blocks, TensorFlow 1's RMSProp at 1e-4, batch 1024, 80 epochs, the official
BigEarthNet-19 splits, every 20th epoch's checkpoint kept for LRP during training); its
``[train]`` table holds options of :class:`keras_mlrs.runs.TrainConfig`. :func:`build`
trains each recipe into ``OUT/<name>`` (resuming an interrupted one, skipping a finished
one) and evaluates it on the test split; :func:`publish` pushes each finished one with its
model card (or writes the repositories to folders).
"""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from pathlib import Path

from keras_mlrs.core import losses
from keras_mlrs.data import detect_format
from keras_mlrs.errors import MlrsError, Registry
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

    def config(self, data, epochs: int | None = None, batch_size: int | None = None,
               model_params: dict | None = None) -> TrainConfig:
        """Its :class:`~keras_mlrs.runs.TrainConfig` on ``data`` (``epochs``, ``batch_size``
        and ``model_params`` override the recipe's, e.g. for a quick trial)."""
        values = {**self.train, "data": str(Path(data).expanduser().resolve()) if data else ""}
        if model_params:
            values["model_params"] = {**values.get("model_params", {}), **model_params}
        if epochs is not None:
            values["epochs"] = epochs
        if batch_size is not None:
            values["batch_size"] = batch_size
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


def status(out_dir, recipe: Recipe) -> dict:
    """How far ``recipe`` is built in ``out_dir``: ``{"state": "not built" | "partial" |
    "built", "epoch", "epochs", "run_dir"}``."""
    run = RunDirectory(Path(out_dir) / recipe.name)
    if not run.exists():
        return {"state": "not built", "epoch": 0, "epochs": recipe.train.get("epochs"), "run_dir": run.path}
    state = run.state()
    built = state.get("finished") and (run.evaluation("test") / "report.json").is_file()
    return {"state": "built" if built else "partial", "epoch": state.get("epoch", 0), "epochs": run.config().epochs,
            "run_dir": run.path}


def build(data, out_dir, names=None, epochs: int | None = None, batch_size: int | None = None,
          model_params: dict | None = None, callbacks=(), on_start=None, say=lambda text: None) -> dict:
    """Train every chosen recipe on the prepared ``data`` into ``out_dir/<name>`` and
    evaluate it on the test split. Finished recipes are skipped, interrupted ones resumed
    from their last completed epoch (with their saved configuration). Returns
    ``{name: {"state": "skipped" | "resumed" | "trained", "run_dir", "test": report}}``."""
    chosen = select(names)
    check_folder_path(out_dir)
    data = Path(data).expanduser()
    if not data.exists():
        raise MlrsError(f"{data} does not exist; prepare BigEarthNet first (`keras_mlrs.data.prepare()`).")
    if detect_format(data) != "prepared":
        raise MlrsError(f"{data} is not prepared data (no manifest.json); prepare it (`keras_mlrs.data.prepare()`) "
                        "and build the zoo from the prepared folder.")
    configs = {r.name: r.config(data, epochs, batch_size, model_params) for r in chosen}  # every recipe checked before training
    results = {}
    for recipe in chosen:
        run = RunDirectory(Path(out_dir) / recipe.name)
        run_dir = run.path
        current = status(out_dir, recipe)
        if current["state"] == "built":
            say(f"{recipe.name}: already built ({current['epoch']} epochs), skipped")
            action = "skipped"
        elif run.exists() and not run.state().get("finished"):
            say(f"{recipe.name}: resuming at epoch {current['epoch']} of {current['epochs']}")
            if current["epoch"]:
                resume(run_dir, callbacks=callbacks, on_start=on_start)
            else:
                train(run.config(), run_dir, overwrite=True, callbacks=callbacks, on_start=on_start)
            action = "resumed"
        elif run.exists():
            action = "evaluated"
        else:
            say(f"{recipe.name}: training {configs[recipe.name].epochs} epochs into {run_dir}")
            train(configs[recipe.name], run_dir, callbacks=callbacks, on_start=on_start)
            action = "trained"
        report = run_report(run_dir, "test")
        results[recipe.name] = {"state": action, "run_dir": str(run_dir), "test": report}
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


__all__ = ["DEFAULT_ORG", "Recipe", "build", "publish", "recipes", "select", "status"]
