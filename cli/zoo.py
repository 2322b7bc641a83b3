"""``mlrs zoo list|build|publish``: the model zoo."""

from pathlib import Path

import typer
from rich.table import Table

from keras_mlrs.cli import registry
from keras_mlrs.cli.app import console, quiet_tensorflow, say, zoo_app


@zoo_app.command("list")
def zoo_list_command(
    out: Path = typer.Option(Path("zoo-runs"), "--dir", help="Build folder whose progress to show."),
    org: str = typer.Option("keras-mlrs", "--org", help="Organisation of the Hub ids."),
):
    """The zoo's recipes, their Hub ids, and whether each is built in --dir."""
    quiet_tensorflow()
    # the library loads with the command (Keras off the --help path)
    from keras_mlrs.hub import recipes as zoo
    from keras_mlrs.hub import repo_id

    repo_id(f"{org}/x")
    table = Table(title=f"keras-mlrs zoo (build folder {out})")
    for column in ("recipe", "study", "Hub id", "loss parameters", "built"):
        table.add_column(column, style="bold cyan" if column == "recipe" else None, no_wrap=column == "Hub id")
    settings = set()
    for recipe in zoo.recipes().values():
        s = zoo.status(out, recipe)
        built = {"built": f"[green]yes[/green] ({s['epoch']} epochs)",
                 "partial": f"[yellow]partial[/yellow] ({s['epoch']}/{s['epochs']} epochs)"}.get(s["state"], "no")
        t = recipe.train
        settings.add(f"{t['model']} {t.get('model_params', {})}, {t['optimizer']} at {t['lr']:g}, batch "
                     f"{t['batch_size']}, {t['epochs']} epochs, {t['split']} splits")
        params = ", ".join(f"{k}={v}" for k, v in t.get("loss_params", {}).items()) or "-"
        table.add_row(recipe.name, "yes" if recipe.study else "", recipe.repo_id(org), params, built)
    console.print(table)
    console.print("Training: " + "; ".join(sorted(settings)), highlight=False)


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
):
    """Train each recipe (resumable: finished recipes are skipped, interrupted ones resumed)
    and evaluate it on the test split."""
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
                            callbacks=[progress], on_start=progress.start, say=say)
    finally:
        progress.stop()
    table = Table(title=f"Zoo build in {out} (test split, each model with its own decision rule)")
    for column in ("recipe", "this run", "F1 micro", "F1 macro", "F1 samples", "run directory"):
        table.add_column(column, style="bold cyan" if column == "recipe" else None)
    for name, r in results.items():
        t = r["test"]
        table.add_row(name, r["state"], f"{t['micro']['f1']:.4f}", f"{t['macro']['f1']:.4f}",
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
