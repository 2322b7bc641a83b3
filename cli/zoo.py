"""``mlrs zoo list|build|publish``: the model zoo."""

from pathlib import Path

import typer
from rich.table import Table

from keras_mlrs.cli import registry
from keras_mlrs.cli.app import console, quiet_tensorflow, say, zoo_app
from keras_mlrs.errors import MlrsError


@zoo_app.command("list")
def zoo_list_command(
    out: Path = typer.Option(Path("zoo-runs"), "--dir", help="Build folder whose progress to show."),
    org: str = typer.Option("keras-mlrs", "--org", help="Organisation of the Hub ids."),
    hub: bool = typer.Option(True, "--hub/--no-hub", help="Ask the Hub which repositories exist (a few seconds at most; skipped with HF_HUB_OFFLINE=1)."),
):
    """The zoo's recipes, their Hub ids, whether each is on the Hub, and whether each is
    built in --dir."""
    quiet_tensorflow()
    # the library loads with the command (Keras off the --help path)
    from keras_mlrs.hub import recipes as zoo
    from keras_mlrs.hub import repository

    repository.repo_id(f"{org}/x")
    chosen = list(zoo.recipes().values())
    ids = [recipe.repo_id(org) for recipe in chosen]
    if hub:
        on_hub, why = repository.hub_status(ids)
    else:
        on_hub, why = dict.fromkeys(ids, "not checked"), "--no-hub"
    table = Table(title=f"keras-mlrs zoo (build folder {out})")
    for column in ("recipe", "study", "Hub id", "on the Hub", "loss parameters", "built"):
        table.add_column(column, style="bold cyan" if column == "recipe" else None, no_wrap=column == "Hub id")
    settings = set()
    for recipe, repo in zip(chosen, ids):
        s = zoo.status(out, recipe)
        built = {"built": f"[green]yes[/green] ({s['epoch']} epochs)",
                 "partial": f"[yellow]partial[/yellow] ({s['epoch']}/{s['epochs']} epochs)"}.get(s["state"], "no")
        seeds = zoo.seeds_in(out, recipe)
        if seeds:
            done = sum(zoo.status(out, recipe, seed)["state"] == "built" for seed in seeds)
            named = f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
            built += f"; {named} built" if done == len(seeds) else f"; {named}: {done} of {len(seeds)} built"
        t = recipe.train
        settings.add(f"{t['model']} {t.get('model_params', {})}, {t['optimizer']} at {t['lr']:g}, batch "
                     f"{t['batch_size']}, {t['epochs']} epochs, {t['split']} splits")
        params = ", ".join(f"{k}={v}" for k, v in t.get("loss_params", {}).items()) or "-"
        state = on_hub[repo]
        shown = {"published": "[green]published[/green]", "not published": "not published"}.get(state, f"[yellow]{state}[/yellow]")
        table.add_row(recipe.name, "yes" if recipe.study else "", repo, shown, params, built)
    console.print(table)
    console.print("Training: " + "; ".join(sorted(settings)), highlight=False)
    counts = {state: sum(v == state for v in on_hub.values()) for state in ("published", "not published")}
    if not any(counts.values()):
        console.print(f"On the Hub: not checked ({why}). A Hub id is where `mlrs zoo publish --org {org}` would put "
                      "the recipe's checkpoint, not a sign that it exists.", highlight=False)
    else:
        unchecked = len(ids) - sum(counts.values())
        console.print(f"On the Hub: {counts['published']} of {len(ids)} recipes published under {org}/, "
                      f"{counts['not published']} not published (recipes only: build them with `mlrs zoo build`)"
                      + (f", {unchecked} not checked ({why})" if unchecked else "") + ".", highlight=False)


def _names(values) -> list:
    return [n for v in values or [] for n in v.split(",") if n.strip()]


@zoo_app.command("build")
def zoo_build_command(
    data: Path = typer.Option(..., "--data", help="Prepared BigEarthNet shards (mlrs data prepare)."),
    out: Path = typer.Option(Path("zoo-runs"), "--out", help="Build folder: one run directory per recipe."),
    losses: list[str] = typer.Option(None, "--losses", help="Recipes to build, comma-separated or repeated (default: all)."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Override the recipes' 80 epochs (e.g. for a trial)."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Override the recipes' batch of 1024."),
    model_param: list[str] = typer.Option(None, "--model-param", help="Override a model parameter, name=value (repeatable), e.g. units=128 for a trial at the official width."),
    seeds: int = typer.Option(1, "--seeds", help="Train each recipe with this many seeds: its own (0) into OUT/<recipe>, then 1, 2... into OUT/<recipe>-seed1, -seed2..."),
):
    """Train each recipe (resumable: finished runs are skipped, interrupted ones resumed)
    and evaluate it on the test split."""
    if isinstance(seeds, bool) or seeds < 1:  # before Keras loads, and before anything is written
        raise MlrsError(f"--seeds must be at least 1 (the number of seeds per recipe), got {seeds}.")
    registry.check_paths(data=data)  # before Keras loads
    quiet_tensorflow()
    # the library loads with the command (Keras off --help)
    from keras_mlrs.cli.progress import TrainingProgress
    from keras_mlrs.hub import recipes as zoo
    from keras_mlrs.runs import parse_param

    params = dict(parse_param(p) for p in model_param or [])
    progress = TrainingProgress(console)
    try:
        results = zoo.build(data, out, _names(losses), epochs=epochs, batch_size=batch_size, model_params=params,
                            seeds=seeds, callbacks=[progress], on_start=progress.start, say=say)
    finally:
        progress.stop()
    table = Table(title=f"Zoo build in {out} (test split, each model with its own decision rule)")
    for column in ("recipe", "seed", "this run", "F1 micro", "F1 macro", "F1 samples", "run directory"):
        table.add_column(column, style="bold cyan" if column == "recipe" else None)
    for r in results.values():
        t = r["test"]
        table.add_row(r["recipe"], str(r["seed"]), r["state"], f"{t['micro']['f1']:.4f}", f"{t['macro']['f1']:.4f}",
                      f"{t['samples']['f1']:.4f}", r["run_dir"])
    console.print(table)
    console.print(f"Compare them with: mlrs compare {' '.join(r['run_dir'] for r in results.values())} --out report",
                  highlight=False)


@zoo_app.command("publish")
def zoo_publish_command(
    out: Path = typer.Argument(..., help="The build folder of mlrs zoo build."),
    org: str = typer.Option(..., "--org", help="Hub organisation (or user) to publish under."),
    to: Path = typer.Option(None, "--to", help="Write each repository to TO/<name> instead of uploading."),
    losses: list[str] = typer.Option(None, "--losses", help="Recipes to publish (default: every built one)."),
    private: bool = typer.Option(False, "--private", help="Create the repositories private."),
):
    """Publish every built recipe with its model card (or write the repositories --to a folder)."""
    quiet_tensorflow()
    # the library loads with the command (Keras off the --help path)
    from keras_mlrs.hub import recipes as zoo

    result = zoo.publish(out, org=org, to=to, names=_names(losses), private=private, say=say)
    for name, where in result["published"].items():
        console.print(f"{name}: {where}", highlight=False)
    if result["not_built"]:
        console.print(f"[yellow]not built, not published[/yellow]: {', '.join(result['not_built'])}")
