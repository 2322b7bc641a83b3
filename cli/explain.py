"""``mlrs explain`` and ``mlrs bench explain``."""

from pathlib import Path

import typer
from rich.table import Table

from cli.app import app, bench_app, console, quiet_tensorflow


@app.command("explain")
def explain_command(
    inputs: list[Path] = typer.Argument(
        ..., help="Patch folders, band files of patches, or 12-band GeoTIFFs. With --compare: one patch, then the models."
    ),
    model: str = typer.Option(None, "--model", "-m", help="A run directory, a .keras file, or hf://org/name (Hugging Face Hub)."),
    classes: list[str] = typer.Option(None, "--class", "-c", help="A class name (any case) or index; repeat for several."),
    all_predicted: bool = typer.Option(False, "--all-predicted", help="Also explain every class the model predicts."),
    preset: str = typer.Option("lrp.epsilon", "--preset", help="LRP preset (iNNvestigate's names, e.g. lrp.sequential_preset_a)."),
    params: list[str] = typer.Option(None, "--param", help="A preset parameter, KEY=VALUE (e.g. epsilon=0.1); repeatable."),
    engine: str = typer.Option("native", "--engine", help="native, or innvestigate (needs iNNvestigate installed)."),
    out: Path = typer.Option(Path("explanations"), "--out", "-o", help="Folder for the PNG, NPY and GeoTIFF outputs."),
    compare: bool = typer.Option(False, "--compare", help="One patch across several models (given after it) in one figure."),
):
    """LRP heatmaps of patches: <name>_lrp.png (RGB beside one heatmap per class),
    <name>_lrp.npy (relevance per class and band, 10 m grid) and <name>_lrp.tif (GeoTIFF)."""
    quiet_tensorflow()
    from keras_mlrs import runs
    from keras_mlrs.data import read_patch
    from keras_mlrs.errors import InvalidParameterError
    from keras_mlrs.explain import composites, heatmaps, render
    from keras_mlrs.training import parse_param

    rule_params = dict(parse_param(p) for p in params or [])
    composites.get(preset, **rule_params)  # unknown preset or parameter: fail before any work
    if compare:
        if model or len(inputs) < 2:
            raise InvalidParameterError("--compare takes one patch then the models: mlrs explain PATCH --compare RUN_A RUN_B ...")
        patch, sources = read_patch(inputs[0]), [str(p) for p in inputs[1:]]
        models = [runs.load_model(s) for s in sources]
        done = [heatmaps.explain_patch(m, patch, classes, all_predicted, preset, engine, **rule_params) for m in models]
        for e, source in zip(done, sources):
            e.model = Path(source).name
        path = render.heatmap_figure(done, out / f"{patch.name}_lrp_compare.png", title=f"{patch.name}: {preset}")
        _report(done, [[path]] * len(done))
        return
    if not model:
        raise InvalidParameterError("give the model to explain: --model RUN_DIR or --model model.keras.")
    patches = [read_patch(p) for p in inputs]
    net = runs.load_model(model)
    done = [heatmaps.explain_patch(net, p, classes, all_predicted, preset, engine, **rule_params) for p in patches]
    written = [heatmaps.save(e, out) for e in done]
    _report(done, written)


def _report(explanations, written):
    table = Table(title="LRP explanations")
    for column in ("patch", "model", "class", "score", "predicted", "in labels", "relevance sum"):
        table.add_column(column)
    for e in explanations:
        for i, name in enumerate(e.class_names):
            truth = "?" if e.in_truth is None else ("yes" if e.in_truth[i] else "no")
            table.add_row(e.patch, e.model, name, f"{e.scores[i]:.3f}", "yes" if e.predicted[i] else "no", truth,
                          f"{e.heatmaps[i].sum():.4g}")
    console.print(table)
    for paths in dict.fromkeys(tuple(p) for p in written):
        for p in paths:
            console.print(f"wrote {p}")


@bench_app.command("explain")
def bench_explain_command(
    batch_size: int = typer.Option(8, min=1, help="Patches per call."),
    classes: int = typer.Option(19, min=1, max=19, help="Classes explained per patch."),
    preset: str = typer.Option("lrp.epsilon", help="LRP preset, the same for both engines."),
    rounds: int = typer.Option(3, min=1, help="Timed calls per engine (the best is kept)."),
):
    """Heatmaps/s of the native engine and of iNNvestigate on the same K-Branch CNN, batch
    and preset, side by side, and how far apart their heatmaps are."""
    quiet_tensorflow()
    from keras_mlrs import bench

    console.print(f"Timing LRP ({preset}) on the K-Branch CNN: {batch_size} patches x {classes} classes...")
    result = bench.bench_explain(batch_size=batch_size, classes=classes, preset=preset, rounds=rounds)
    table = Table(title=f"LRP throughput on {result['device']} ({result['backend']} backend)")
    for column in ("engine", "heatmaps/s", "first call, s", "ratio"):
        table.add_column(column, justify="right" if column != "engine" else "left")
    native, inn = result["native"], result["innvestigate"]
    table.add_row("keras-mlrs (native)", f"{native['heatmaps_per_s']:.1f}", f"{native['first_call_s']:.1f}",
                  f"{native['heatmaps_per_s'] / inn['heatmaps_per_s']:.1f}x")
    table.add_row("iNNvestigate 2.1.2", f"{inn['heatmaps_per_s']:.1f}", f"{inn['first_call_s']:.1f}", "1.0x")
    console.print(table)
    console.print(f"largest difference, relative to each heatmap's largest value: {result['max_relative_difference']:.2e}")
