"""``mlrs explain``: LRP heatmaps of patches."""

from pathlib import Path

import typer
from rich.table import Table

from keras_mlrs.cli import registry
from keras_mlrs.cli.app import (
    RESULTS,
    ThresholdsOption,
    app,
    console,
    load_model_and_rule,
    quiet_tensorflow,
)
from keras_mlrs.errors import InvalidParameterError
from keras_mlrs.files import check_folder_path


@app.command("explain", rich_help_panel=RESULTS)
def explain_command(
    inputs: list[Path] = typer.Argument(
        ..., help="Patch folders, band files of patches, or 12-band GeoTIFFs. With --compare: one patch, then the models."
    ),
    model: str = typer.Option(None, "--model", "-m", help="A run directory, a .keras file, or hf://org/name (Hugging Face Hub)."),
    classes: list[str] = typer.Option(None, "--class", "-c", help="A class name (any case) or index; repeat for several."),
    all_predicted: bool = typer.Option(False, "--all-predicted", help="Also explain every class the model predicts."),
    thresholds: ThresholdsOption = "fixed",
    preset: str = typer.Option("lrp.epsilon", "--preset", help="LRP preset (iNNvestigate's names, e.g. lrp.sequential_preset_a)."),
    params: list[str] = typer.Option(None, "--param", help="A preset parameter, KEY=VALUE (e.g. epsilon=0.1); repeatable."),
    engine: str = typer.Option("native", "--engine", help="native, or innvestigate (needs iNNvestigate installed)."),
    bands: str = typer.Option("rgb", "--bands", help="Bands the heatmaps (PNG, GeoTIFF) sum: rgb (the study's), 10m or all; the .npy keeps every band."),
    out: Path = typer.Option(Path("explanations"), "--out", "-o", help="Folder for the PNG, NPY and GeoTIFF outputs."),
    compare: bool = typer.Option(False, "--compare", help="One patch across several models (given after it) in one figure."),
    per_panel_scale: bool = typer.Option(False, "--per-panel-scale", help="Scale each heatmap to its own largest |relevance| (default: one symmetric scale shared by every panel)."),
):
    """LRP heatmaps of patches: <name>_lrp.png and .pdf (RGB beside one heatmap per class),
    <name>_lrp.npy (relevance per class and band, 10 m grid) and <name>_lrp.tif (GeoTIFF)."""
    registry.check_names(preset=preset, bands=bands, classes=classes, thresholds=thresholds)  # before Keras loads
    registry.check_paths(inputs=inputs[:1] if compare else inputs, models=[model, *inputs[1:]] if compare else model)
    check_folder_path(out)  # before the relevance is computed, not after
    quiet_tensorflow()
    # the library loads with the command (Keras off the --help path)
    from keras_mlrs.data import read_patch
    from keras_mlrs.explain import composites, heatmaps, render
    from keras_mlrs.runs import parse_param

    rule_params = dict(parse_param(p) for p in params or [])
    composites.get(preset, **rule_params)  # unknown preset or parameter: fail before any work
    heatmaps.band_indices(bands)
    if compare:
        if model or len(inputs) < 2:
            raise InvalidParameterError("--compare takes one patch then the models: mlrs explain PATCH --compare RUN_A RUN_B ...")
        patch, sources = read_patch(inputs[0]), [str(p) for p in inputs[1:]]
        models = [load_model_and_rule(s, thresholds=thresholds) for s in sources]
        done = [heatmaps.explain_patch(m, patch, classes, all_predicted, preset, engine, decision=rule, bands=bands,
                                       **rule_params) for m, rule in models]
        wanted = list(dict.fromkeys(c for e in done for c in e.classes))  # every row shows the same classes
        done = [e if e.classes == wanted else heatmaps.explain_patch(m, patch, wanted, False, preset, engine,
                                                                     decision=rule, bands=bands, **rule_params)
                for e, (m, rule) in zip(done, models)]
        for e, source in zip(done, sources):
            e.model = Path(source).name
        figure = render.heatmap_figure(done, out / f"{patch.name}_lrp_compare.png", per_panel_scale=per_panel_scale,
                                       title=f"LRP ({preset}) of patch {patch.name}: {', '.join(map(_named, sources))}")
        _report(done, [figure.paths] * len(done))
        return
    if not model:
        raise InvalidParameterError("give the model to explain: --model RUN_DIR or --model model.keras.")
    patches = [read_patch(p) for p in inputs]
    net, rule = load_model_and_rule(model, thresholds=thresholds)
    done = [heatmaps.explain_patch(net, p, classes, all_predicted, preset, engine, decision=rule, bands=bands,
                                   **rule_params) for p in patches]
    for e in done:
        e.model = Path(model).name
    written = [render.save(e, out, per_panel_scale=per_panel_scale,
                           title=f"LRP ({preset}) of patch {e.patch} by {_named(model)}") for e in done]
    _report(done, written)


def _named(source: str) -> str:
    """A model as figure titles name it: a run with the checkpoint explained, else its file."""
    from keras_mlrs import runs  # loaded with the command already

    if runs.is_run_dir(source):
        return f"{Path(source).name} ({runs.checkpoint_title(runs.RunDirectory(source).resolve_checkpoint('last')[1])})"
    return Path(source).name


def _report(explanations, written):
    table = Table(title="LRP explanations")
    for column in ("patch", "model", "class", "score", "predicted", "in labels", "relevance (all bands)",
                   "relevance (heatmap bands)"):
        table.add_column(column)
    for e in explanations:
        for i, name in enumerate(e.class_names):
            truth = "?" if e.in_truth is None else ("yes" if e.in_truth[i] else "no")
            table.add_row(e.patch, e.model, name, f"{e.scores[i]:.3f}", "yes" if e.predicted[i] else "no", truth,
                          f"{e.relevance[i].sum():.4g}", f"{e.heatmaps[i].sum():.4g}")
    console.print(table)
    for paths in dict.fromkeys(tuple(p) for p in written):
        for p in paths:
            console.print(f"wrote {p}")
