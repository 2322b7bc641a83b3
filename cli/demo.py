"""``mlrs demo``: the pipeline on the bundled real sample."""

from pathlib import Path

import typer
from rich.table import Table

from keras_mlrs.cli.app import TOOLS, app, console, quiet_tensorflow, say


@app.command("demo", rich_help_panel=TOOLS)
def demo_command(
    out: Path = typer.Option(Path("mlrs-demo"), "--out", help="Folder for the prepared data, runs and summary."),
    epochs: int = typer.Option(3, min=1, help="Training epochs per loss."),
    loss: list[str] = typer.Option(None, "--loss", help="Losses to train (default: bce and sparsemax)."),
    units: int = typer.Option(128, "--units", min=1, help="Width of the fully connected blocks: 128 (the official K-Branch CNN, default here) or 1024 (the study's; 134 M parameters, about 1 GB per checkpoint)."),
):
    """The pipeline on the bundled real sample: prepare, train two losses, evaluate, calibrate, predict, explain."""
    quiet_tensorflow()
    # the library loads with the command (Keras off --help)
    from keras_mlrs.cli.progress import TrainingProgress
    from keras_mlrs.core import losses
    from keras_mlrs.study import demo

    names = [losses.spec(n).name for n in loss] if loss else ["bce", "sparsemax"]
    console.print(
        f"[bold]keras-mlrs demo[/bold]: the K-Branch CNN ({units} units; the study's is 1024) trained with "
        f"{' and '.join(names)} on the 6 real BigEarthNet-S2 patches bundled with keras-mlrs.\n"
        "[yellow]Six patches demonstrate the pipeline, not accuracy[/yellow]: for the real thing, download "
        "BigEarthNet (docs/data.md), then `mlrs data prepare BigEarthNet-v1.0/ --out data/ben19` and "
        "`mlrs train --data data/ben19 --loss focal`."
    )
    progress = TrainingProgress(console)
    try:
        summary = demo.run_demo(out, names, epochs=epochs, units=units, callbacks=[progress], on_start=progress.start, say=say)
    finally:
        progress.stop()
    table = Table(title="Held-out test patch, each model with its own decision rule")
    table.add_column("loss", style="bold cyan")
    table.add_column("rule")
    for col in ("F1 micro", "F1 macro", "F1 samples"):
        table.add_column(col, justify="right")
    table.add_column("predicted labels of the test patch")
    for name, r in summary["runs"].items():
        t = r["test"]
        table.add_row(name, r["decision"], f"{t['micro']['f1']:.3f}", f"{t['macro']['f1']:.3f}",
                      f"{t['samples']['f1']:.3f}", "; ".join(r["prediction"]["predicted"]) or "(none)")
    console.print(table)
    calibrated = Table(title="Per-class thresholds calibrated on the validation patch (mlrs calibrate) against each "
                             "loss's own rule")
    calibrated.add_column("loss", style="bold cyan")
    for col in ("validation F1 samples: fixed", "calibrated", "test F1 samples: fixed", "calibrated"):
        calibrated.add_column(col, justify="right")
    calibrated.add_column("predicted labels of the test patch (calibrated)")
    for name, r in summary["runs"].items():
        c = r["calibrated"]
        calibrated.add_row(name, f"{c['validation']['fixed']['samples']:.3f}",
                           f"{c['validation']['calibrated']['samples']:.3f}", f"{r['test']['samples']['f1']:.3f}",
                           f"{c['test']['samples']['f1']:.3f}", "; ".join(c["predicted"]) or "(none)")
    console.print(calibrated)
    first = next(iter(summary["runs"].values()))["prediction"]
    console.print(f"true labels of {first['patch']}: {'; '.join(first['true'])}", highlight=False)
    console.print("[bold]Outputs[/bold]", highlight=False)
    console.print(f"  prepared data: {summary['data']} (manifest.json, shards)", highlight=False)
    for name, r in summary["runs"].items():
        console.print(f"  {name}: run {r['run_dir']} (last.keras, best.keras, calibration.json, history.csv, ...); "
                      f"evaluation {r['evaluation']}", highlight=False)
    console.print(f"  LRP heatmaps of {first['patch']}, both models: {summary['explanation']}", highlight=False)
    console.print(f"  summary: {out / 'summary.json'}", highlight=False)
