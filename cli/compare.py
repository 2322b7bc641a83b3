"""``mlrs compare``: the study's comparison of any runs."""

from pathlib import Path

import typer
from rich.table import Table

from keras_mlrs.cli import registry
from keras_mlrs.cli.app import RESULTS, app, console, quiet_tensorflow, say


@app.command("compare", rich_help_panel=RESULTS)
def compare_command(
    runs: list[Path] = typer.Argument(..., help="Finished run directories (mlrs train or mlrs zoo build)."),
    out: Path = typer.Option(Path("comparison"), "--out", help="Report folder: report.md, report.html, figures/."),
    patch: list[Path] = typer.Option(None, "--patch", help="Patch for the LRP grid (repeatable; default: a bundled sample patch)."),
    classes: list[str] = typer.Option(None, "--class", help="Class to explain, name or index (repeatable; default: the patch's labels)."),
    split: str = typer.Option("test", "--split", help="Split every run is evaluated on."),
    target_f1: float = typer.Option(0.55, "--target-f1", help="Validation F1 whose first epoch measures learning efficiency."),
    average: str = typer.Option("samples", "--average", help="F1 average of the curves and efficiency: micro, macro or samples."),
    preset: str = typer.Option("lrp.epsilon", "--preset", help="LRP preset of the heatmaps."),
    bands: str = typer.Option("rgb", "--bands", help="Bands the heatmaps sum: rgb (the study's), 10m or all."),
    per_panel_scale: bool = typer.Option(False, "--per-panel-scale", help="Scale each heatmap to itself instead of one symmetric scale for all panels."),
    reference: str = typer.Option(None, "--reference", help="Recipe (name or loss) the paired tests compare every other with (default: bce, when compared)."),
    resamples: int = typer.Option(1000, "--resamples", min=1, help="Bootstrap resamples of the intervals and paired tests."),
    allow_different_data: bool = typer.Option(False, "--allow-different-data", help="Compare runs evaluated on different test sets (with a warning in every output)."),
    quality_patches: int = typer.Option(16, "--quality-patches", min=0, help="Patches of the split whose explanations are measured per run (AOPC, spectral profiles; 0: none)."),
    landscape_points: int = typer.Option(0, "--landscape-points", min=0, help="Points of each run's 1-D loss landscape, one shared random direction (odd, >= 3; 0: none)."),
):
    """The study's comparison for any runs: Table 6.1, per-class F1, learning curves, learning
    efficiency, LRP heatmaps, explanation quality (AOPC, spectral profiles) and optionally
    loss landscapes, as Markdown and a self-contained HTML page."""
    registry.check_names(preset=preset, bands=bands, classes=classes)  # before Keras loads
    registry.check_paths(runs=runs, inputs=patch)
    quiet_tensorflow()
    # the library loads with the command (Keras off --help)
    from keras_mlrs.core.metrics import STUDY_AVERAGES
    from keras_mlrs.study import compare

    result = compare.compare(runs, out, patches=patch, classes=classes, split=split, target_f1=target_f1,
                             average=average, preset=preset, bands=bands, per_panel_scale=per_panel_scale,
                             reference=reference, allow_different_data=allow_different_data, resamples=resamples,
                             quality_patches=quality_patches, landscape_points=landscape_points, say=say)
    table = Table(title=f"Overall scores on the {split} split (best per row in bold)")
    table.add_column("", style="bold cyan")
    names = list(result["runs"])
    for name in names:
        table.add_column(name, justify="right")
    for a in STUDY_AVERAGES:
        values = [result["overall"][n][a]["f1"] for n in names]
        best = compare.best(values)
        table.add_row(f"F1 ({a})", *(f"[bold]{v:.4f}[/bold]" if i in best else f"{v:.4f}" for i, v in enumerate(values)))
    console.print(table)
    seeds = Table(title=f"Sample F1 per recipe: mean ± std over seeds, {result['uncertainty']['level']:.0%} interval "
                        f"over the {split} patches, paired test against {result['uncertainty']['reference'] or '-'}")
    for col in ("recipe", "seeds", "sample F1", "interval", "difference", "p-value"):
        seeds.add_column(col, justify="left" if col == "recipe" else "right", style="bold cyan" if col == "recipe" else None)
    for name, recipe in result["recipes"].items():
        summary, interval = result["seeds"][name]["f1_samples"], result["uncertainty"]["intervals"][name]["f1_samples"]
        test = result["uncertainty"]["paired"].get(name)
        spread = f" ± {summary['std']:.4f}" if summary["std"] is not None else ""
        seeds.add_row(name, str(len(recipe["seeds"])), f"{summary['mean']:.4f}{spread}",
                      f"[{interval['low']:.4f}, {interval['high']:.4f}]",
                      f"{test['difference']:+.4f}" if test else "-", f"{test['p_value']:.3g}" if test else "-")
    console.print(seeds)
    if result["warning"]:
        console.print(f"[bold yellow]warning:[/bold yellow] {result['warning']}", highlight=False)
    console.print(f"Report: {result['files']['html']} and {result['files']['markdown']}", highlight=False)
