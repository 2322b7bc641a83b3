"""``mlrs explain-quality``: how faithful, sane and conserving a run's LRP heatmaps are."""

from pathlib import Path

import typer
from rich.table import Table

from keras_mlrs.cli import registry
from keras_mlrs.cli.app import RESULTS, ThresholdsOption, app, console, quiet_tensorflow, say
from keras_mlrs.files import check_folder_path


def _cell(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@app.command("explain-quality", rich_help_panel=RESULTS)
def explain_quality_command(
    run: Path = typer.Argument(..., help="A finished run directory (mlrs train or mlrs zoo build)."),
    data: str = typer.Option(None, "--data", help="Prepared data whose split to measure on (default: the run's own)."),
    split: str = typer.Option("test", "--split", help="The split whose first patches are explained."),
    patches: int = typer.Option(64, "--patches", min=1, help="How many patches (the first of the split)."),
    preset: str = typer.Option("lrp.epsilon", "--preset", help="LRP preset measured."),
    params: list[str] = typer.Option(None, "--param", help="A preset parameter, KEY=VALUE (e.g. epsilon=0.1); repeatable."),
    classes: str = typer.Option("labels", "--classes", help="Classes explained per patch: labels (those in its labels), predicted (and those the model predicts) or all (the 19)."),
    thresholds: ThresholdsOption = "fixed",
    checkpoint: str = typer.Option("last", "--checkpoint", help="last (the final epoch, the study's; default), best or epoch-N."),
    region: int = typer.Option(4, "--region", help="Side of a perturbed region, 10 m pixels (divides 120)."),
    steps: int = typer.Option(25, "--steps", min=1, help="Perturbation steps of a curve (the whole patch at the last)."),
    baseline: str = typer.Option("mean", "--baseline", help="What a region becomes: mean (the band means), blur or noise."),
    seeds: int = typer.Option(3, "--random-orders", min=0, help="Random orders (seeds 0, 1, ...) the LRP order is set against."),
    randomisation: bool = typer.Option(True, "--randomisation/--no-randomisation", help="Run the cascading layer-randomisation test (Adebayo et al. 2018)."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder of the report and figures (default: RUN/explanations-SPLIT)."),
    json_path: Path = typer.Option(None, "--json", help="Also write the report's JSON to this file."),
):
    """Faithfulness (region perturbation: AOPC of the LRP order, a random order and the
    reverse), conservation, the layer-randomisation sanity check and spectral relevance
    profiles, per class, on the first patches of a split: quality.json and figures."""
    registry.check_names(preset=preset, thresholds=thresholds)  # before Keras loads
    registry.check_paths(runs=run, data=data)
    quiet_tensorflow()
    # the library loads with the command (Keras off the --help path)
    from keras_mlrs.runs import explanation_quality as quality
    from keras_mlrs.runs import parse_param

    folder = out if out is not None else quality.quality_folder(run, split)
    check_folder_path(folder)
    if json_path is not None:
        check_folder_path(json_path.parent)
    report = quality.explanation_quality(
        run, data=data, split=split, patches=patches, preset=preset, classes=classes, checkpoint=checkpoint,
        thresholds=thresholds, region=region, steps=steps, baseline=baseline, random_seeds=tuple(range(seeds)),
        randomisation=randomisation, say=say, **dict(parse_param(p) for p in params or []))
    written = quality.write_quality(report, folder, json_path=json_path)

    p = report["perturbation"]
    table = Table(title=f"AOPC per class ({report['preset']}; {p['region']}×{p['region']} px regions, {p['steps']} "
                        f"steps, {p['baseline']} baseline; {report['patches']} {report['split']} patches)")
    for column in ("class", "patches", "AOPC LRP (MoRF)", "AOPC random", "AOPC LeRF"):
        table.add_column(column, justify="left" if column == "class" else "right",
                         style="bold cyan" if column == "class" else None)
    for name, row in [*report["per_class"].items(), ("mean", report["mean"])]:
        count = row.get("pairs", row["patches"])
        table.add_row(name, str(count), _cell(row["aopc_lrp"]), _cell(row["aopc_random"]), _cell(row["aopc_lerf"]))
    console.print(table)
    bands = Table(title="Spectral relevance profile: share of each class's relevance per resolution branch "
                        "(all 12 bands: spectral_profile.png)")
    bands.add_column("class", style="bold cyan")
    for sign in ("positive", "negative"):
        for group in ("10 m", "20 m", "60 m"):
            bands.add_column(f"{'+' if sign == 'positive' else '-'} {group}", justify="right")
    for name, entry in report["spectral"]["per_class"].items():
        cells = [_cell(None if v is None else 100 * v, 0) for sign in ("positive", "negative")
                 for v in (entry[f"{sign}_groups"][g] for g in ("b10m", "b20m", "b60m"))]
        bands.add_row(name, *cells)
    console.print(bands)
    c = report["conservation"]
    console.print(f"Conservation ({c['preset']}, {c['heatmaps']} heatmaps): relevance sum vs logit, mean |error| "
                  f"{_cell(c['mean_abs_error'], 4)}, mean relative error {_cell(c['mean_rel_error'], 4)}, mean bias "
                  f"share {_cell(c['mean_bias_share'], 4)}", highlight=False)
    if report["randomisation"]:
        r = report["randomisation"]
        v = r["verdict"]
        state = "passed" if r["passed"] else "FLAGGED: its heatmaps hardly change" if r["passed"] is False else "undefined"
        console.print(f"Randomisation test: {v['metric']} {_cell(v['final_mean'])} after all {len(r['order'])} kernel "
                      f"layers are randomised (flagged above {v['threshold']}): {state}", highlight=False)
    t = report["throughput"]
    console.print(f"Throughput, compiling included: LRP {t['heatmaps']:,} heatmaps in {t['lrp_seconds']:.1f} s "
                  f"({t['heatmaps_per_s']:.1f}/s); region perturbation {t['forward_passes']:,} forward passes in "
                  f"{t['perturbation_seconds']:.1f} s ({t['forward_passes_per_s']:.1f}/s)", highlight=False)
    for path in written.values():
        console.print(f"wrote {path}", highlight=False)
