"""``mlrs landscape``: a run's loss along random filter-normalised directions around its
weights (Li et al. 2018)."""

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from keras_mlrs.cli import registry
from keras_mlrs.cli.app import RESULTS, app, console, quiet_tensorflow


@app.command("landscape", rich_help_panel=RESULTS)
def landscape_command(
    run: Path = typer.Argument(..., help="A finished run directory (mlrs train or mlrs zoo build)."),
    split: str = typer.Option("validation", "--split", help="The split to evaluate on: train, validation or test."),
    directions: int = typer.Option(1, "--directions", help="1: a line through the weights; 2: a plane (points² evaluations)."),
    points: int = typer.Option(None, "--points", help="Grid points per direction, odd and >= 3 (default: 21 for 1-D, 11 for 2-D)."),
    span: float = typer.Option(1.0, "--span", help="The grid runs from -span to span (1: a step as large as the weights, filter by filter)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the directions: runs of one architecture share them."),
    checkpoint: str = typer.Option("last", "--checkpoint", help="last (the final epoch, the study's; default), best or epoch-N."),
    patches: int = typer.Option(None, "--patches", help="Use the split's first N patches (default: all, held in memory)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Patches per forward pass."),
    out: Path = typer.Option(None, "--out", help="Folder for landscape.json and the figure (default: RUN/landscape-<split>, -<checkpoint> for another than last, -2d for two directions)."),
    json_path: Path = typer.Option(None, "--json", help="Also write landscape.json here."),
):
    """The run's training loss and sample-F1 along one or two random filter-normalised
    directions around its weights (Li et al. 2018; batch normalisation and biases kept as
    trained, the L2 penalty reported apart)."""
    registry.check_paths(runs=run)  # before Keras loads
    quiet_tensorflow()
    # the library loads with the command (Keras off the --help path)
    from keras_mlrs.runs import checkpoint_title, landscape

    bar = Progress(TextColumn("[bold]landscape"), BarColumn(), MofNCompleteColumn(), TextColumn("points"),
                   TimeRemainingColumn(), console=console, transient=True)
    task = None

    def progress(done, total):  # the bar appears once the checks passed and the data is in memory
        nonlocal task
        if task is None:
            task = bar.add_task("landscape", total=total)
            bar.start()
        bar.update(task, completed=done)

    try:
        result = landscape.run_landscape(
            run, out_dir=out, json_path=json_path, split=split, directions=directions, points=points, span=span,
            seed=seed, checkpoint=checkpoint, patches=patches, batch_size=batch_size, progress=progress)
    finally:
        if task is not None:
            bar.stop()
    _print(result, checkpoint_title(result["checkpoint"]))
    console.print("Written: " + ", ".join(result["files"]), highlight=False)


def _print(result: dict, which: str) -> None:
    patches = f"{result['patches']:,} patch" + ("" if result["patches"] == 1 else "es")
    grid = f"{result['points']}" if result["directions"] == 1 else f"{result['points']}×{result['points']}"
    lines = "direction" if result["directions"] == 1 else "directions"
    console.print(f"[bold]{result['name']}[/bold] ({which}) "
                  f"on the {result['split']} split ({patches}): {result['loss']['name']} loss, decision rule "
                  f"{result['decision']['name']}; {result['directions']} filter-normalised random {lines}, seed "
                  f"{result['seed']}, {grid} points in [-{result['span']:g}, {result['span']:g}]; "
                  f"{result['perturbed']['parameters']:,} parameters perturbed, {result['fixed']['parameters']:,} kept "
                  "(batch normalisation, biases)", highlight=False)
    alphas = result["alphas"]
    if result["directions"] == 1:
        table = Table(title="Loss along δ (α = 0: the trained weights)")
        for name in ("α", "loss", "L2 penalty", "sample-F1"):
            table.add_column(name, justify="right", style="bold cyan" if name == "α" else None)
        for a, loss, penalty, f1 in zip(alphas, result["loss_values"], result["penalty_values"], result["f1_values"]):
            style = "bold" if a == 0 else None
            table.add_row(_step(a), _cell(loss), _cell(penalty), _cell(f1), style=style)
    else:
        table = Table(title="Loss at α δ + β η (rows α, columns β; 0, 0: the trained weights)")
        table.add_column("α \\ β", justify="right", style="bold cyan")
        for b in result["betas"]:
            table.add_column(_step(b), justify="right")
        for a, row in zip(alphas, result["loss_values"]):
            table.add_row(_step(a), *(_cell(v) for v in row), style="bold" if a == 0 else None)
    console.print(table)
    origin, low = result["origin"], result["minimum"]
    where = "" if low is None else f"; lowest loss on the grid {low['loss']:.4f} at α {_step(low['alpha'])}" + (
        "" if low["beta"] is None else f", β {_step(low['beta'])}")
    console.print(f"At the trained weights: loss {_cell(origin['loss'])} (+ L2 penalty {_cell(origin['penalty'])}), "
                  f"sample-F1 {_cell(origin['f1_samples'])}{where}.", highlight=False)


def _cell(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _step(value: float) -> str:
    return f"{value:+.3g}" if value else "0"
