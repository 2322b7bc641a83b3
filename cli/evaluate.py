"""``mlrs evaluate`` and ``mlrs predict``."""

import json
from pathlib import Path

import typer
from rich.table import Table

from keras_mlrs.cli import registry
from keras_mlrs.cli.app import (
    RESULTS,
    DecisionOption,
    ThresholdOption,
    ThresholdsOption,
    app,
    console,
    load_model_and_rule,
    overall_table,
    quiet_tensorflow,
)
from keras_mlrs.errors import InvalidParameterError
from keras_mlrs.files import check_folder_path


def check_rule_options(decision, threshold, thresholds) -> None:
    """The decision-rule options of a command, checked before Keras loads."""
    registry.check_names(decision=decision, thresholds=thresholds)
    if decision is not None and decision.strip().lower() == "calibrated":
        raise InvalidParameterError("the calibrated rule needs thresholds fitted by mlrs calibrate: pass "
                                    "--thresholds calibrated instead of --decision calibrated.")
    if thresholds == "calibrated" and (decision is not None or threshold is not None):
        raise InvalidParameterError("--thresholds calibrated applies the thresholds fitted by mlrs calibrate; leave "
                                    "out --decision and --threshold.")


def _decision(decision, threshold, model, rule):
    # imported with the model, which loaded Keras already
    from keras_mlrs.core.decision import rule_of

    if decision is None and threshold is None:
        return rule  # the model's own: fixed or calibrated
    rule = rule_of(model, decision)
    if threshold is not None:
        if rule.name == "sparsemax_support":
            raise InvalidParameterError("--threshold does not apply to the sparsemax_support rule; "
                                        "choose --decision sigmoid or logit.")
        rule = type(rule)(threshold=threshold)
    return rule


@app.command("evaluate", rich_help_panel=RESULTS)
def evaluate_command(
    model: str = typer.Argument(..., help="A run directory or a .keras file."),
    checkpoint: str = typer.Option(None, "--checkpoint", help="For run directories: last (the final epoch, the study's; default), best (best validation sample-F1) or epoch-N (kept with --keep-every)."),
    data: str = typer.Option(None, "--data", help="Data to evaluate on (default: the run's own, else the bundled sample)."),
    split: str = typer.Option("test", "--split", help="train, validation or test."),
    split_scheme: str = typer.Option(None, "--split-scheme", help="For raw archives: official or random (default: the run's)."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Patches per batch."),
    decision: DecisionOption = None,
    threshold: ThresholdOption = None,
    thresholds: ThresholdsOption = "fixed",
    out: Path = typer.Option(None, "--out", help="Folder for every output (default: <run>/evaluation-<split>, or ./evaluation-<model>-<split>; -calibrated appended with --thresholds calibrated)."),
    json_path: Path = typer.Option(None, "--json", help="Write the report as JSON here."),
    csv_dir: Path = typer.Option(None, "--csv", help="Write overall.csv and per_class.csv in this folder."),
    markdown_path: Path = typer.Option(None, "--markdown", help="Write the tables as Markdown here."),
    figure: Path = typer.Option(None, "--figure", help="Write the per-class F1 bar chart here (PNG)."),
):
    """The study's tables for a trained model: P/R/F1 micro/macro/weighted/samples, per class, ranking metrics."""
    check_rule_options(decision, threshold, thresholds)  # before Keras loads
    registry.check_paths(models=model, data=data)
    for folder in (out, csv_dir, *(p.parent for p in (json_path, markdown_path, figure) if p)):
        if folder is not None:
            check_folder_path(folder)  # before the evaluation, not after it
    quiet_tensorflow()
    from keras_mlrs import runs  # the library loads with the command (Keras off the --help path)

    run = runs.RunDirectory(model)
    which = run.resolve_checkpoint(checkpoint or "last")[1] if run.exists() else None
    net, rule = load_model_and_rule(model, checkpoint, thresholds)
    rule = _decision(decision, threshold, net, rule)
    ds, path, names = runs.evaluation_data(net, model, split, data, split_scheme, batch_size)
    with console.status(f"evaluating on the {split} split..."):
        report = runs.evaluate(net, ds, decision=rule)
    report = {"model": str(model), "checkpoint": which, "data": str(path), "split": split,
              "evaluation_set": runs.evaluation_set(names, split), **report}
    calibrated = ", calibrated thresholds" if thresholds == "calibrated" else ""
    title = f"{Path(model).name} ({runs.checkpoint_title(which)}{calibrated}) on {split}"
    if any((json_path, csv_dir, markdown_path, figure)):
        runs.write_report(report, json_path=json_path, csv_dir=csv_dir, markdown_path=markdown_path,
                          figure_path=figure, title=title)
        written = [p for p in (json_path, csv_dir, markdown_path, figure) if p]
    else:
        if out is None:
            out = (run.evaluation(split, which["name"], thresholds) if run.exists()
                   else Path(f"evaluation-{Path(model).stem}-{split}" + ("-calibrated" if calibrated else "")))
        runs.write_report(report, out, title=title)
        written = [out]
    _print_report(report, title, rule)
    console.print("Written: " + ", ".join(map(str, written)), highlight=False)


def _print_report(report, title, rule):
    console.print(f"[bold]{title}[/bold]: {report['patches']:,} patches, decision rule "
                  f"{report['decision']['name']} ({rule.describe()})", highlight=False)
    console.print(overall_table(report, "Overall (Table 6.1)"))
    per_class = Table(title="Per class (Tables 6.2-6.4)")
    per_class.add_column("class", style="bold cyan")
    for col in ("precision", "recall", "F1", "support"):
        per_class.add_column(col, justify="right")
    for name, r in report["per_class"].items():
        per_class.add_row(name, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", f"{r['support']:,}")
    console.print(per_class)
    console.print("hamming loss {hamming_loss:.4f} · ranking loss {ranking_loss:.4f} · coverage error "
                  "{coverage_error:.3f} · LRAP {lrap:.4f} · mAP micro {map_micro:.4f} · mAP macro {map_macro:.4f}"
                  .format(**report), highlight=False)
    console.print("CF1 {cf1:.4f} · OF1 {of1:.4f} · precision@1 {precision_at_1:.4f} · precision@3 {precision_at_3:.4f} "
                  "· precision@5 {precision_at_5:.4f}".format(**report), highlight=False)


# -- mlrs predict ----------------------------------------------------------------------------
@app.command("predict", rich_help_panel=RESULTS)
def predict_command(
    model: str = typer.Argument(..., help="A run directory or a .keras file."),
    inputs: list[Path] = typer.Argument(..., help="Patch folders, band files of patches, or 12-band GeoTIFFs."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of {input, labels, scores}."),
    decision: DecisionOption = None,
    threshold: ThresholdOption = None,
    thresholds: ThresholdsOption = "fixed",
):
    """Predicted label sets, with per-class scores, for single patches."""
    check_rule_options(decision, threshold, thresholds)  # before Keras loads
    registry.check_paths(models=model, inputs=inputs)
    quiet_tensorflow()
    from keras_mlrs import runs  # the library loads with the command (Keras off the --help path)
    from keras_mlrs.data import read_patch

    net, rule = load_model_and_rule(model, thresholds=thresholds)
    rule = _decision(decision, threshold, net, rule)
    patches = [read_patch(p) for p in inputs]
    results = runs.predict(net, patches, decision=rule)
    for result, path in zip(results, inputs):
        result["input"] = str(path)
    if as_json:
        print(json.dumps(results, indent=1))
        return
    table = Table(title=f"Predictions ({rule.name}: {rule.describe()})")
    table.add_column("patch", style="bold cyan", overflow="fold")
    table.add_column("predicted labels")
    table.add_column(f"top 3 ({rule.confidence_name})")
    for r in results:
        top = sorted(r["scores"].items(), key=lambda kv: -kv[1])[:3]
        table.add_row(Path(r["input"]).name, "; ".join(r["labels"]) or "(none)", ", ".join(f"{n} {s:.3f}" for n, s in top))
    console.print(table)
