"""``mlrs calibrate``: per-class thresholds fitted on a run's validation split."""

from pathlib import Path

import typer
from rich.table import Table

from keras_mlrs.cli import registry
from keras_mlrs.cli.app import RESULTS, app, console, quiet_tensorflow


@app.command("calibrate", rich_help_panel=RESULTS)
def calibrate_command(
    run: Path = typer.Argument(..., help="A finished run directory (mlrs train or mlrs zoo build)."),
    data: str = typer.Option(None, "--data", help="Data whose split to fit on (default: the run's own)."),
    split: str = typer.Option("validation", "--split", help="The split to fit on: validation (or train); never test."),
    objective: str = typer.Option("sample-f1", "--objective", help="What to maximise: sample-f1 (the sample-averaged F1, the study's headline) or per-class-f1 (each class's F1)."),
    checkpoint: str = typer.Option("last", "--checkpoint", help="last (the final epoch, the study's; default), best or epoch-N."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Patches per batch."),
):
    """Fit one threshold per class on the validation split and store them in the run
    (RUN/calibration.json); apply them with --thresholds calibrated (evaluate, predict, explain)."""
    registry.check_names(objective=objective)  # before Keras loads
    registry.check_paths(runs=run, data=data)
    quiet_tensorflow()
    from keras_mlrs import runs  # the library loads with the command (Keras off the --help path)

    with console.status(f"fitting thresholds on the {split} split..."):
        record = runs.calibrate(run, data=data, split=split, objective=objective, checkpoint=checkpoint,
                                batch_size=batch_size)
    base, thresholds = record["base"], record["thresholds"]
    fixed = base.get("threshold", 0.0)
    patches = f"{record['patches']:,} patch" + ("" if record["patches"] == 1 else "es")
    table = Table(title=f"Thresholds on the {record['confidence']} ({record['objective']}, {record['split']} split, "
                        f"{patches})")
    table.add_column("class", style="bold cyan")
    table.add_column("fixed", justify="right")
    table.add_column("calibrated", justify="right")
    for name, t in thresholds.items():
        table.add_row(name, f"{fixed:.4g}", f"{t:.4g}" if name not in record["kept_fixed"] else f"{t:.4g} (kept)")
    console.print(table)
    scores = Table(title=f"F1 on the {record['split']} split it was fitted on")
    scores.add_column("rule", style="bold cyan")
    for average in ("micro", "macro", "samples"):
        scores.add_column(f"F1 {average}", justify="right")
    for rule, values in record["scores"].items():
        scores.add_row(rule, *(f"{values[a]:.4f}" for a in ("micro", "macro", "samples")))
    console.print(scores)
    console.print(f"Written: {runs.calibration_file(run)}; apply with --thresholds calibrated "
                  f"(mlrs evaluate {run} --thresholds calibrated).", highlight=False)
