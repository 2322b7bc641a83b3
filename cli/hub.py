"""``mlrs push``, ``mlrs pull``, ``mlrs zoo list|build|publish`` and ``mlrs compare``."""

from pathlib import Path

import typer
from rich.table import Table

from cli.app import app, console, quiet_tensorflow, zoo_app


def _say(text):
    console.print(f"[bold cyan]>[/bold cyan] {text}", highlight=False)


@app.command("push")
def push_command(
    run: Path = typer.Argument(..., help="A finished run directory (mlrs train or mlrs zoo build)."),
    repo: str = typer.Option(..., "--repo", help="Hub repository ORG/NAME (created when missing)."),
    private: bool = typer.Option(False, "--private", help="Create the repository private."),
    revision: str = typer.Option(None, "--revision", help="Branch to publish to (created when missing)."),
    split: str = typer.Option("test", "--split", help="Split whose evaluation goes into the card's model-index."),
    license: str = typer.Option("apache-2.0", "--license", help="Licence of the published model (Hub licence id)."),
    to: Path = typer.Option(None, "--to", help="Write the exact repository content to this folder instead of uploading."),
):
    """Publish a trained model to the Hugging Face Hub with its model card (or --to a folder)."""
    quiet_tensorflow()
    from keras_mlrs import hub

    hub.repo_id(repo)
    if to is not None:
        folder = hub.export(run, to, repo, split=split, license=license, say=_say)
        console.print(f"Wrote the repository hf://{hub.repo_id(repo)} to [bold]{folder}[/bold] "
                      f"({', '.join(sorted(p.name for p in folder.iterdir()))}).", highlight=False)
        return
    url = hub.push(run, repo, private=private, revision=revision, split=split, license=license, say=_say)
    console.print(f"Published [bold]{url}[/bold]; load it with keras_mlrs.from_pretrained('{hub.repo_id(repo)}') "
                  f"or --model hf://{hub.repo_id(repo)}.", highlight=False)


@app.command("pull")
def pull_command(
    repo: str = typer.Argument(..., help="Hub repository ORG/NAME (or hf://ORG/NAME)."),
    revision: str = typer.Option(None, "--revision", help="Branch, tag or commit (default: main)."),
):
    """Download a published model into the Hugging Face cache and check that it loads."""
    quiet_tensorflow()
    from keras_mlrs import hub, runs

    folder = hub.resolve(f"hf://{hub.repo_id(repo)}", revision)
    model = runs.load_model(folder)
    card = hub.read_card(folder)
    meta = card.data.to_dict().get(hub.CARD_KEY, {}) if card else {}
    table = Table(title=f"hf://{hub.repo_id(repo)}" + (f" @ {revision}" if revision else ""))
    table.add_column("", style="bold cyan")
    table.add_column("")
    table.add_row("local folder", str(folder))
    table.add_row("loss", f"{meta.get('loss', '?')} {meta.get('loss_params', '')}")
    table.add_row("decision rule", runs.decision_of(model).describe())
    table.add_row("inputs", f"{meta.get('input_layout', '?')}: {meta.get('bands', '?')}")
    table.add_row("parameters", f"{model.count_params():,}")
    for result in (card.data.eval_results or []) if card else []:
        table.add_row(f"{result.metric_name} ({result.dataset_split})", f"{result.metric_value:.4f}")
    console.print(table)


@zoo_app.command("list")
def zoo_list_command(
    out: Path = typer.Option(Path("zoo-runs"), "--dir", help="Build folder whose progress to show."),
    org: str = typer.Option("keras-mlrs", "--org", help="Organisation of the Hub ids."),
):
    """The zoo's recipes, their Hub ids, and whether each is built in --dir."""
    quiet_tensorflow()
    from keras_mlrs import hub, zoo

    hub.repo_id(f"{org}/x")
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
):
    """Train each recipe (resumable: finished recipes are skipped, interrupted ones resumed)
    and evaluate it on the test split."""
    quiet_tensorflow()
    from cli.progress import TrainingProgress
    from keras_mlrs import zoo

    progress = TrainingProgress(console)
    try:
        results = zoo.build(data, out, _names(losses), epochs=epochs, batch_size=batch_size, callbacks=[progress],
                            on_start=progress.start, say=_say)
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
    from keras_mlrs import zoo

    result = zoo.publish(out, org=org, to=to, names=_names(losses), private=private, say=_say)
    for name, where in result["published"].items():
        console.print(f"{name}: {where}", highlight=False)
    if result["not_built"]:
        console.print(f"[yellow]not built, not published[/yellow]: {', '.join(result['not_built'])}")


@app.command("compare")
def compare_command(
    runs: list[Path] = typer.Argument(..., help="Finished run directories (mlrs train or mlrs zoo build)."),
    out: Path = typer.Option(Path("comparison"), "--out", help="Report folder: report.md, report.html, figures/."),
    patch: list[Path] = typer.Option(None, "--patch", help="Patch for the LRP grid (repeatable; default: a bundled sample patch)."),
    classes: list[str] = typer.Option(None, "--class", help="Class to explain, name or index (repeatable; default: the patch's labels)."),
    split: str = typer.Option("test", "--split", help="Split every run is evaluated on."),
    target_f1: float = typer.Option(0.55, "--target-f1", help="Validation F1 whose first epoch measures learning efficiency."),
    average: str = typer.Option("samples", "--average", help="F1 average of the curves and efficiency: micro, macro or samples."),
    preset: str = typer.Option("lrp.epsilon", "--preset", help="LRP preset of the heatmaps."),
):
    """The study's comparison for any runs: Table 6.1, per-class F1, learning curves, learning
    efficiency and LRP heatmaps, as Markdown and a self-contained HTML page."""
    quiet_tensorflow()
    from keras_mlrs import compare

    result = compare.compare(runs, out, patches=patch, classes=classes, split=split, target_f1=target_f1,
                             average=average, preset=preset, say=_say)
    table = Table(title=f"Overall scores on the {split} split (best per row in bold)")
    table.add_column("", style="bold cyan")
    names = list(result["runs"])
    for name in names:
        table.add_column(name, justify="right")
    for a in compare.AVERAGES:
        values = [result["overall"][n][a]["f1"] for n in names]
        best = compare.best(values)
        table.add_row(f"F1 ({a})", *(f"[bold]{v:.4f}[/bold]" if i in best else f"{v:.4f}" for i, v in enumerate(values)))
    console.print(table)
    console.print(f"Report: {result['files']['html']} and {result['files']['markdown']}", highlight=False)
