"""``mlrs train``, ``mlrs evaluate``, ``mlrs predict`` and ``mlrs bench train``.

The loss options of ``mlrs train`` (``--gamma``, ``--margin``...) are generated from the
loss registry: every hyperparameter of every registered loss becomes an option, valid
with the losses that have it.
"""

import json
import time
from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table
from typer.core import TyperCommand

from cli.app import app, bench_app, console, err_console, quiet_tensorflow

# -- mlrs train ------------------------------------------------------------------------------


def _hparams() -> dict:
    """hyperparameter -> {loss: default}, read off the loss registry (imports Keras, so
    only when `mlrs train` itself is parsed, never for `mlrs --help`)."""
    quiet_tensorflow()
    from keras_mlrs import losses

    index: dict = {}
    for name in losses.names():
        for hparam, default in losses.spec(name).hyperparameters.items():
            index.setdefault(hparam, {})[name] = default
    return index


def _option_name(hparam: str) -> str:
    return "--" + hparam.replace("_", "-")


def _hparam_options() -> list:
    """Click options for every loss hyperparameter, made by Typer itself from a signature
    built off the registry."""
    import inspect

    params = []
    for name, owners in _hparams().items():
        kind = str if any(isinstance(d, str) for d in owners.values()) else float
        owners_text = ", ".join(f"{loss} (default {d!r})" for loss, d in owners.items())
        option = typer.Option(None, _option_name(name), help=f"Hyperparameter of {owners_text}.",
                              rich_help_panel="Loss hyperparameters")
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))

    def options(**kwargs):
        pass

    options.__signature__ = inspect.Signature(params)
    scratch = typer.Typer(add_completion=False)
    scratch.command()(options)
    return list(typer.main.get_command(scratch).params)


class _TrainCommand(TyperCommand):
    """`mlrs train` with one option per loss hyperparameter of the registry."""

    _extra = None

    def get_params(self, ctx):
        if _TrainCommand._extra is None:
            _TrainCommand._extra = _hparam_options()
        return [*super().get_params(ctx), *_TrainCommand._extra]

    def invoke(self, ctx):
        names = {p.name for p in _TrainCommand._extra or []}
        ctx.meta["loss_hparams"] = {k: ctx.params.pop(k) for k in list(ctx.params) if k in names}
        return super().invoke(ctx)


def train_command(
    ctx: typer.Context,
    loss: str = typer.Option(None, "--loss", help="Loss to train with (see `mlrs losses`; default bce)."),
    loss_param: list[str] = typer.Option(None, "--loss-param", help="Loss hyperparameter as name=value (repeatable)."),
    data: str = typer.Option(None, "--data", help="Prepared shards, official TFRecords or a raw archive (default: the bundled sample)."),
    split: str = typer.Option(None, "--split", help="auto, official or random (raw archives; default auto)."),
    fractions: str = typer.Option(None, "--fractions", help="train,validation,test of --split random (default 0.6,0.2,0.2)."),
    model: str = typer.Option(None, "--model", help="Architecture: kbranch (default) or resnet50."),
    model_param: list[str] = typer.Option(None, "--model-param", help="Model parameter as name=value (repeatable), e.g. fc_units=128."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Epochs (default 80, the study's)."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Patches per step (default 1024, the study's)."),
    optimizer: str = typer.Option(None, "--optimizer", help="rmsprop (default, the study's), adam, adamw or sgd."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default 1e-4, the study's)."),
    seed: int = typer.Option(None, "--seed", min=0, help="Seed of weights, dropout, shuffling and random splits (default 0)."),
    mixed_precision: bool = typer.Option(None, "--mixed-precision/--no-mixed-precision", help="float16 compute (recommended on GPUs)."),
    jit: bool = typer.Option(None, "--jit/--no-jit", help="XLA-compile the training step (default: Keras' choice)."),
    distribute: str = typer.Option(None, "--distribute", help="none (default), mirrored (all local GPUs) or multiworker (TF_CONFIG)."),
    upsampling: str = typer.Option(None, "--upsampling", help="nearest (default) or bilinear, for stacked-layout models."),
    config: Path = typer.Option(None, "--config", help="TOML file with any of these options (the command line overrides it)."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Run directory (default runs/<loss>-<date>-<time>)."),
    resume: Path = typer.Option(None, "--resume", help="Continue the interrupted run in this directory."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
):
    """Train a model on BigEarthNet with any registered loss; writes a run directory."""
    quiet_tensorflow()
    from keras_mlrs import training
    from keras_mlrs.errors import InvalidParameterError

    hparams = ctx.meta.get("loss_hparams", {})
    given = {k: v for k, v in {
        "loss": loss, "data": data, "split": split, "model": model, "epochs": epochs, "batch_size": batch_size,
        "optimizer": optimizer, "lr": lr, "seed": seed, "mixed_precision": mixed_precision, "distribute": distribute,
        "upsampling": upsampling,
    }.items() if v is not None}
    if jit is not None:
        given["jit"] = jit
    if fractions is not None:
        given["fractions"] = fractions.split(",")  # parsed and checked by TrainConfig.validate
    if data is not None and data != "":
        given["data"] = str(Path(data).expanduser().resolve())
    loss_params = dict(training.parse_param(p) for p in loss_param or [])
    loss_params.update({k: _cli_value(v) for k, v in hparams.items() if v is not None})
    model_params = dict(training.parse_param(p) for p in model_param or [])
    if resume is not None:
        extra = [k for k in given] + (["loss params"] if loss_params else []) + (["model params"] if model_params else [])
        if extra or config is not None or run_dir is not None or overwrite:
            raise InvalidParameterError(
                f"--resume continues {resume} with its saved configuration; drop the other options "
                f"({', '.join(extra) or '--config/--run-dir/--overwrite'}) or start a new run."
            )
        _run_training(lambda **kw: training.resume(resume, **kw))
        return
    if loss_params:
        given["loss_params"] = loss_params
    if model_params:
        given["model_params"] = model_params
    if config is not None:
        cfg = training.TrainConfig.from_toml(config, overrides=given)
    else:
        cfg = training.TrainConfig.from_dict(given, source="command line")
    if run_dir is None:
        run_dir = Path("runs") / f"{cfg.loss}-{datetime.now():%Y%m%d-%H%M%S}"
    _run_training(lambda **kw: training.train(cfg, run_dir, overwrite=overwrite, **kw))


def _cli_value(value):
    """``--class-weights`` takes a scheme name or comma-separated numbers."""
    if isinstance(value, str) and "," in value:
        return [float(v) for v in value.split(",")]
    return value


def _run_training(start):
    from cli.progress import TrainingProgress

    progress = TrainingProgress(console)
    try:
        result = start(callbacks=[progress], on_start=progress.start)
    except KeyboardInterrupt:
        progress.stop()
        run = progress.run_dir
        if run is not None and (Path(run) / "state.json").exists():
            err_console.print(f"[yellow]interrupted[/yellow]: completed epochs are saved; continue with "
                              f"[bold]mlrs train --resume {run}[/bold]", highlight=False)
        else:
            err_console.print("[yellow]interrupted[/yellow] before the first epoch completed; nothing was saved.")
        raise typer.Exit(130) from None
    finally:
        progress.stop()
    _print_result(progress.run_dir, result)


def _overall_table(report, title) -> Table:
    """Precision, recall and F1 under each average of ``report`` (the study's Table 6.1)."""
    table = Table(title=title)
    table.add_column("average", style="bold cyan")
    for col in ("precision", "recall", "F1"):
        table.add_column(col, justify="right")
    for avg in ("micro", "macro", "weighted", "samples"):
        r = report[avg]
        table.add_row(avg, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}")
    return table


def _print_result(run_dir, result):
    console.print(_overall_table(result, f"Best model (epoch {result['best_epoch']}) on the validation split"))
    console.print(f"Run directory: [bold]{run_dir}[/bold] (best.keras, last.keras, history.csv, "
                  "learning_curve.png, metrics.json, config.toml, tensorboard/)", highlight=False)


app.command("train", cls=_TrainCommand)(train_command)


# -- mlrs evaluate ---------------------------------------------------------------------------
def _decision(decision, threshold, model):
    from keras_mlrs.runs import decision_of

    rule = decision_of(model, decision)
    if threshold is not None:
        if rule.name == "sparsemax_support":
            from keras_mlrs.errors import InvalidParameterError

            raise InvalidParameterError("--threshold does not apply to the sparsemax_support rule; "
                                        "choose --decision sigmoid or logit.")
        rule = type(rule)(threshold=threshold)
    return rule


@app.command("evaluate")
def evaluate_command(
    model: str = typer.Argument(..., help="A run directory or a .keras file."),
    data: str = typer.Option(None, "--data", help="Data to evaluate on (default: the run's own, else the bundled sample)."),
    split: str = typer.Option("test", "--split", help="train, validation or test."),
    split_scheme: str = typer.Option(None, "--split-scheme", help="For raw archives: official or random (default: the run's)."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Patches per batch."),
    decision: str = typer.Option(None, "--decision", help="Override the model's rule: sigmoid, logit or sparsemax_support."),
    threshold: float = typer.Option(None, "--threshold", help="Threshold of the sigmoid or logit rule."),
    out: Path = typer.Option(None, "--out", help="Folder for every output (default: <run>/evaluation-<split>, or ./evaluation-<model>-<split>)."),
    json_path: Path = typer.Option(None, "--json", help="Write the report as JSON here."),
    csv_dir: Path = typer.Option(None, "--csv", help="Write overall.csv and per_class.csv in this folder."),
    markdown_path: Path = typer.Option(None, "--markdown", help="Write the tables as Markdown here."),
    figure: Path = typer.Option(None, "--figure", help="Write the per-class F1 bar chart here (PNG)."),
):
    """The study's tables for a trained model: P/R/F1 micro/macro/weighted/samples, per class, ranking metrics."""
    quiet_tensorflow()
    from keras_mlrs import evaluation, runs

    net = runs.load_model(model)
    rule = _decision(decision, threshold, net)
    ds, path = evaluation.evaluation_data(net, model, split, data, split_scheme, batch_size)
    with console.status(f"evaluating on the {split} split..."):
        report = evaluation.evaluate(net, ds, decision=rule)
    report = {"model": str(model), "data": str(path), "split": split, **report}
    if not any((json_path, csv_dir, markdown_path, figure)):
        if out is None:
            src = Path(model)
            out = src / f"evaluation-{split}" if runs.is_run_dir(src) else Path(f"evaluation-{src.stem}-{split}")
        json_path, csv_dir, markdown_path, figure = (out / "report.json", out, out / "report.md",
                                                     out / "per_class_f1.png")
    title = f"{Path(model).name} on {split}"
    evaluation.write_report(report, json_path, csv_dir, markdown_path, figure, title=title)
    _print_report(report, title)
    written = [str(p) for p in (json_path, csv_dir, markdown_path, figure) if p]
    console.print("Written: " + ", ".join(written), highlight=False)


def _print_report(report, title):
    console.print(f"[bold]{title}[/bold]: {report['patches']:,} patches, decision rule "
                  f"{report['decision']['name']}", highlight=False)
    console.print(_overall_table(report, "Overall (Table 6.1)"))
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


# -- mlrs predict ----------------------------------------------------------------------------
@app.command("predict")
def predict_command(
    model: str = typer.Argument(..., help="A run directory or a .keras file."),
    inputs: list[Path] = typer.Argument(..., help="Patch folders, band files of patches, or 12-band GeoTIFFs."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of {input, labels, scores}."),
    decision: str = typer.Option(None, "--decision", help="Override the model's rule: sigmoid, logit or sparsemax_support."),
    threshold: float = typer.Option(None, "--threshold", help="Threshold of the sigmoid or logit rule."),
):
    """Predicted label sets, with per-class scores, for single patches."""
    quiet_tensorflow()
    from keras_mlrs import evaluation, runs
    from keras_mlrs.data import read_patch

    net = runs.load_model(model)
    rule = _decision(decision, threshold, net)
    patches = [read_patch(p) for p in inputs]
    results = evaluation.predict(net, patches, decision=rule)
    for result, path in zip(results, inputs):
        result["input"] = str(path)
    if as_json:
        print(json.dumps(results, indent=1))
        return
    table = Table(title=f"Predictions ({rule.name}: {rule.describe()})")
    table.add_column("input", style="bold cyan")
    table.add_column("predicted labels")
    table.add_column(f"top {rule.confidence_name}s")
    for r in results:
        top = sorted(r["scores"].items(), key=lambda kv: -kv[1])[:3]
        table.add_row(r["input"], "; ".join(r["labels"]) or "(none)", ", ".join(f"{n} {s:.3f}" for n, s in top))
    console.print(table)


# -- mlrs bench train ------------------------------------------------------------------------
@bench_app.command("train")
def bench_train_command(
    batch_size: int = typer.Option(1024, min=1, help="Batch size (the study's: 1024)."),
    steps: int = typer.Option(3, min=1, help="Timed steps per measurement per round."),
    rounds: int = typer.Option(2, min=1, help="Interleaved timing rounds."),
    model: str = typer.Option("kbranch", help="Architecture."),
    mixed_precision: bool = typer.Option(False, "--mixed-precision/--no-mixed-precision", help="float16 compute."),
):
    """Training throughput (patches/s) of a model at the study's batch size, and the share
    of step time spent waiting for input."""
    quiet_tensorflow()
    from keras_mlrs import bench

    console.print(f"Timing {model} training steps at batch {batch_size} ({rounds} rounds of {steps} steps)...")
    start = time.perf_counter()
    r = bench.bench_train(batch_size=batch_size, steps=steps, rounds=rounds, model=model,
                          mixed_precision=mixed_precision)
    table = Table(title=f"{model} training throughput, batch {batch_size} (medians; {r['device']}, "
                        f"backend {r['backend']})")
    table.add_column("measure", style="bold cyan")
    table.add_column("value", justify="right")
    table.add_row("step time, data in memory (s)", f"{r['compute_step_s']:.3f}")
    table.add_row("patches/s, data in memory", f"{r['compute_patches_per_s']:,.1f}")
    if r.get("loader_step_s") is not None:
        table.add_row("step time, data from prepared shards (s)", f"{r['loader_step_s']:.3f}")
        table.add_row("patches/s, data from prepared shards", f"{r['loader_patches_per_s']:,.1f}")
        table.add_row("share of step time waiting for input", f"{100 * r['input_wait_share']:.1f} %")
    console.print(table)
    console.print(f"({time.perf_counter() - start:.0f} s in all)")
