"""``mlrs train``.

The loss options of ``mlrs train`` (``--gamma``, ``--margin``...) are generated from the
loss registry: every hyperparameter of every registered loss becomes an option, valid
with the losses that have it.
"""

import inspect
from datetime import datetime
from pathlib import Path

import typer
from typer.core import TyperCommand

from keras_mlrs.cli import registry
from keras_mlrs.cli.app import TRAINING, app, console, err_console, overall_table, quiet_tensorflow
from keras_mlrs.errors import MlrsError

# -- mlrs train ------------------------------------------------------------------------------


def _hparams() -> dict:
    """hyperparameter -> {loss: default}, from the registry's static description (no Keras)."""
    index: dict = {}
    for name, hparams in registry.LOSSES.items():
        for hparam, default in hparams.items():
            index.setdefault(hparam, {})[name] = default
    return index


def _option_name(hparam: str) -> str:
    return "--" + hparam.replace("_", "-")


def _hparam_options() -> list:
    """Click options for every loss hyperparameter, made by Typer itself from a signature
    built off the registry."""
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
    data: str = typer.Option(None, "--data", help="Prepared shards, official TFRecords or a raw archive; `sample` is the 6 bundled patches (when no such path exists)."),
    split: str = typer.Option(None, "--split", help="auto, official or random (raw archives; default auto)."),
    fractions: str = typer.Option(None, "--fractions", help="train,validation,test of --split random (default 0.6,0.2,0.2)."),
    model: str = typer.Option(None, "--model", help="Architecture: kbranch (default) or resnet50."),
    model_param: list[str] = typer.Option(None, "--model-param", help="Model parameter as name=value (repeatable), e.g. units=128 (the official K-Branch CNN)."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Epochs (default 80, the study's)."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Patches per step (default 1024, the study's)."),
    optimizer: str = typer.Option(None, "--optimizer", help="tf1_rmsprop (default: the study's, TensorFlow 1's RMSProp), rmsprop (Keras'), adam, adamw or sgd."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default 1e-4, the study's)."),
    seed: int = typer.Option(None, "--seed", min=0, help="Seed of weights, dropout, shuffling and random splits (default 0)."),
    keep_every: int = typer.Option(None, "--keep-every", min=0, help="Also keep the first and every N-th epoch's checkpoint (checkpoints/epoch-XXXX.keras), e.g. for LRP during training (default 0: last and best only)."),
    mixed_precision: bool = typer.Option(None, "--mixed-precision/--no-mixed-precision", help="float16 compute (recommended on GPUs)."),
    jit: bool = typer.Option(None, "--jit/--no-jit", help="XLA-compile the training step (default: Keras' choice)."),
    distribute: str = typer.Option(None, "--distribute", help="none (default); mirrored (TensorFlow: all local GPUs); data_parallel (JAX: all local devices); multiprocess (JAX: all devices of several processes or machines; docs/scaling.md)."),
    coordinator: str = typer.Option(None, "--coordinator", help="multiprocess: HOST:PORT of process 0 (or MLRS_COORDINATOR; none: JAX's cluster detection, e.g. SLURM)."),
    num_processes: int = typer.Option(None, "--num-processes", min=1, help="multiprocess: the number of processes (or MLRS_NUM_PROCESSES)."),
    process_id: int = typer.Option(None, "--process-id", min=0, help="multiprocess: this process's index, 0 for the coordinator (or MLRS_PROCESS_ID)."),
    connect_timeout: int = typer.Option(None, "--connect-timeout", min=1, help="multiprocess: seconds to wait for the other processes (default 120)."),
    pipeline: str = typer.Option(None, "--pipeline", help="auto (default: tf.data when TensorFlow is installed; numpy for prepared shards under PyTorch), tf.data, or numpy (prepared shards, no TensorFlow)."),
    upsampling: str = typer.Option(None, "--upsampling", help="nearest (default) or bilinear, for stacked-layout models."),
    config: Path = typer.Option(None, "--config", help="TOML file with any of these options (the command line overrides it)."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Run directory (default runs/<loss>-<date>-<time>)."),
    resume: Path = typer.Option(None, "--resume", help="Continue the interrupted run in this directory."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
):
    """Train a model on BigEarthNet with any registered loss; writes a run directory."""
    registry.check_names(loss=loss, model=model)  # a mistyped name answers before Keras loads
    registry.check_paths(data=data, configs=config, runs=resume)
    quiet_tensorflow()
    from keras_mlrs import runs  # the library loads with the command (Keras off the --help path)

    hparams = ctx.meta.get("loss_hparams", {})
    given = {k: v for k, v in {
        "loss": loss, "data": data, "split": split, "model": model, "epochs": epochs, "batch_size": batch_size,
        "optimizer": optimizer, "lr": lr, "seed": seed, "keep_every": keep_every, "mixed_precision": mixed_precision,
        "distribute": distribute, "pipeline": pipeline,
        "upsampling": upsampling,
    }.items() if v is not None}
    if jit is not None:
        given["jit"] = jit
    if fractions is not None:
        given["fractions"] = fractions.split(",")  # parsed and checked by TrainConfig.validate
    if data is not None:
        given["data"] = "" if data == SAMPLE and not Path(data).exists() else str(Path(data).expanduser().resolve())
    loss_params = dict(runs.parse_param(p) for p in loss_param or [])
    loss_params.update({k: _cli_value(v) for k, v in hparams.items() if v is not None})
    model_params = dict(runs.parse_param(p) for p in model_param or [])
    cluster = runs.Cluster.from_environment(coordinator=coordinator, num_processes=num_processes,
                                            process_id=process_id, timeout=connect_timeout)
    if resume is not None:
        extra = [k for k in given] + (["loss params"] if loss_params else []) + (["model params"] if model_params else [])
        if extra or config is not None or run_dir is not None or overwrite:
            raise MlrsError(
                f"--resume continues {resume} with its saved configuration; drop the other options "
                f"({', '.join(extra) or '--config/--run-dir/--overwrite'}) or start a new run."
            )
        _run_training(lambda **kw: runs.resume(resume, cluster=cluster, **kw))
        return
    if loss_params:
        given["loss_params"] = loss_params
    if model_params:
        given["model_params"] = model_params
    if config is not None:
        cfg = runs.TrainConfig.from_toml(config, overrides=given)
        named = "data" in given or "data" in runs.config.toml_keys(config)
    else:
        cfg = runs.TrainConfig.from_dict(given, source="command line")
        named = "data" in given
    if not named:  # 80 epochs on six patches is never what was meant
        raise MlrsError("give the data to train on: --data DIR (prepared shards, official TFRecords or a raw "
                        f"archive), or --data {SAMPLE} for the 6 patches bundled with keras-mlrs.")
    if run_dir is None:
        run_dir = Path("runs") / f"{cfg.loss}-{datetime.now():%Y%m%d-%H%M%S}"
    _run_training(lambda **kw: runs.train(cfg, run_dir, overwrite=overwrite, cluster=cluster, **kw))


#: `--data sample`: the bundled 6-patch sample.
SAMPLE = "sample"


def _cli_value(value):
    """``--class-weights`` takes a scheme name or comma-separated numbers."""
    if isinstance(value, str) and "," in value:
        return [float(v) for v in value.split(",")]
    return value


def _run_training(start):
    # a Keras callback: imported with the training
    from keras_mlrs.cli.progress import TrainingProgress

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


def _print_result(run_dir, result):
    if "samples" not in result:  # another process than 0 of a multiprocess run
        console.print(f"Process {result['process']} trained {result['epochs']} epoch(s); process 0 wrote the run "
                      f"directory {run_dir} and evaluated it.", highlight=False)
        return
    console.print(overall_table(result, f"Final model (epoch {result['epochs']}, the study's) on the validation split; "
                                        f"best validation sample-F1 at epoch {result['best_epoch']}"))
    logs = ", tensorboard/" if (Path(run_dir) / "tensorboard").is_dir() else ""  # none without TensorFlow
    console.print(f"Run directory: [bold]{run_dir}[/bold] (last.keras, best.keras, history.csv, "
                  f"learning_curve.png, metrics.json, config.toml{logs})", highlight=False)


app.command("train", cls=_TrainCommand, rich_help_panel=TRAINING)(train_command)


