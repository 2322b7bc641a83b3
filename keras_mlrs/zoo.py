"""The model zoo: one recipe per published checkpoint, built and published in bulk.

A recipe (``zoo/recipes/<name>.toml``) names a loss of the registry and the study's setup
for it (K-Branch CNN with 1024-unit fully connected layers, RMSprop at 1e-4, batch 1024,
80 epochs, the official BigEarthNet-19 splits); its ``[train]`` table holds options of
:class:`keras_mlrs.training.TrainConfig`. :func:`build` trains each recipe into
``OUT/<name>`` (resuming an interrupted one, skipping a finished one) and evaluates it on
the test split; :func:`publish` pushes each finished one with its model card (or writes
the repositories to folders).
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

from keras_mlrs.errors import MlrsError, UnknownNameError, did_you_mean

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

    def config(self, data, epochs: int | None = None, batch_size: int | None = None):
        """Its :class:`~keras_mlrs.training.TrainConfig` on ``data`` (``epochs`` and
        ``batch_size`` override the recipe's, e.g. for a quick trial)."""
        from keras_mlrs.training import TrainConfig

        values = {**self.train, "data": str(Path(data).expanduser().resolve()) if data else ""}
        if epochs is not None:
            values["epochs"] = epochs
        if batch_size is not None:
            values["batch_size"] = batch_size
        return TrainConfig.from_dict(values, source=f"zoo recipe '{self.name}'")

    def repo_id(self, org: str = DEFAULT_ORG) -> str:
        return f"{org}/{self.repo}"

    def card_info(self) -> dict:
        return {"name": self.name, "description": self.description}


def recipes() -> dict[str, Recipe]:
    """Every recipe, by name: the study's seven losses first, then the others."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    found = []
    for entry in resources.files("zoo").joinpath("recipes").iterdir():
        if entry.name.endswith(".toml"):
            table = tomllib.loads(entry.read_text())
            meta = table["recipe"]
            found.append(Recipe(meta["name"], meta["repo"], meta["description"], bool(meta["study"]), table["train"]))
    found.sort(key=lambda r: (not r.study, _order(r.name)))
    return {r.name: r for r in found}


def _order(name: str) -> int:
    from keras_mlrs import losses

    names = losses.names()
    return names.index(name) if name in names else len(names)


def select(names=None) -> list[Recipe]:
    """The recipes called ``names`` (all when empty), refusing unknown names."""
    table = recipes()
    if not names:
        return list(table.values())
    chosen = []
    for name in names:
        key = str(name).strip()
        if key not in table:
            raise UnknownNameError(f"unknown zoo recipe '{key}'; the recipes are {', '.join(table)}.{did_you_mean(key, table)}")
        chosen.append(table[key])
    return list({r.name: r for r in chosen}.values())


def status(out_dir, recipe: Recipe) -> dict:
    """How far ``recipe`` is built in ``out_dir``: ``{"state": "not built" | "partial" |
    "built", "epoch", "epochs", "run_dir"}``."""
    from keras_mlrs import runs
    from keras_mlrs.training import TrainConfig

    run_dir = Path(out_dir) / recipe.name
    if not runs.is_run_dir(run_dir):
        return {"state": "not built", "epoch": 0, "epochs": recipe.train.get("epochs"), "run_dir": run_dir}
    state = runs.read_state(run_dir)
    epochs = TrainConfig.from_toml(run_dir / runs.CONFIG).epochs
    built = state.get("finished") and (run_dir / "evaluation-test" / "report.json").is_file()
    return {"state": "built" if built else "partial", "epoch": state.get("epoch", 0), "epochs": epochs,
            "run_dir": run_dir}


def build(data, out_dir, names=None, epochs: int | None = None, batch_size: int | None = None, callbacks=(),
          on_start=None, say=lambda text: None) -> dict:
    """Train every chosen recipe on the prepared ``data`` into ``out_dir/<name>`` and
    evaluate it on the test split. Finished recipes are skipped, interrupted ones resumed
    from their last completed epoch (with their saved configuration). Returns
    ``{name: {"state": "skipped" | "resumed" | "trained", "run_dir", "test": report}}``."""
    from keras_mlrs import evaluation, runs, training
    from keras_mlrs.data import detect_format

    chosen = select(names)
    data = Path(data).expanduser()
    if not data.exists():
        raise MlrsError(f"{data} does not exist; prepare BigEarthNet with `mlrs data prepare ARCHIVE --out DIR` first.")
    if detect_format(data) != "prepared":
        raise MlrsError(f"{data} is not prepared data (no manifest.json); run `mlrs data prepare {data} --out DIR` "
                        "and build the zoo from DIR.")
    configs = {r.name: r.config(data, epochs, batch_size) for r in chosen}  # every recipe checked before training
    results = {}
    for recipe in chosen:
        run_dir = Path(out_dir) / recipe.name
        current = status(out_dir, recipe)
        if current["state"] == "built":
            say(f"{recipe.name}: already built ({current['epoch']} epochs), skipped")
            action = "skipped"
        elif runs.is_run_dir(run_dir) and not runs.read_state(run_dir).get("finished"):
            say(f"{recipe.name}: resuming at epoch {current['epoch']} of {current['epochs']}")
            if current["epoch"]:
                training.resume(run_dir, callbacks=callbacks, on_start=on_start)
            else:
                training.train(training.TrainConfig.from_toml(run_dir / runs.CONFIG), run_dir, overwrite=True,
                               callbacks=callbacks, on_start=on_start)
            action = "resumed"
        elif runs.is_run_dir(run_dir):
            action = "evaluated"
        else:
            say(f"{recipe.name}: training {configs[recipe.name].epochs} epochs into {run_dir}")
            training.train(configs[recipe.name], run_dir, callbacks=callbacks, on_start=on_start)
            action = "trained"
        report = evaluation.run_report(run_dir, "test")
        results[recipe.name] = {"state": action, "run_dir": str(run_dir), "test": report}
    return results


def publish(out_dir, org: str = DEFAULT_ORG, to=None, names=None, private: bool = False, say=lambda text: None) -> dict:
    """Publish every built recipe of ``out_dir`` as ``org/<recipe repo>`` with its model card;
    with ``to``, write each repository to ``to/<recipe repo>`` instead of uploading.
    Returns ``{name: URL or folder}``; recipes not built are reported, not published."""
    from keras_mlrs import hub

    hub.repo_id(f"{org}/x")  # a valid organisation, before any work
    done, missing = {}, []
    for recipe in select(names):
        if status(out_dir, recipe)["state"] != "built":
            missing.append(recipe.name)
            continue
        run_dir, repo = Path(out_dir) / recipe.name, recipe.repo_id(org)
        if to is not None:
            say(f"{recipe.name}: writing hf://{repo} to {Path(to) / recipe.repo}")
            done[recipe.name] = str(hub.export(run_dir, Path(to) / recipe.repo, repo, recipe=recipe.card_info(), say=say))
        else:
            say(f"{recipe.name}: publishing hf://{repo}")
            done[recipe.name] = hub.push(run_dir, repo, private=private, recipe=recipe.card_info(), say=say)
    if not done:
        raise MlrsError(f"no built recipe in {out_dir} to publish; build them with `mlrs zoo build --data DIR --out {out_dir}`.")
    return {"published": done, "not_built": missing}


__all__ = ["DEFAULT_ORG", "Recipe", "build", "publish", "recipes", "select", "status"]
