"""``mlrs bench losses|data|train|explain``: benchmarks that print numbers measured side by side."""

import time
from pathlib import Path

import typer
from rich.table import Table

from keras_mlrs.cli.app import bench_app, console, quiet_tensorflow


@bench_app.command("losses")
def bench_losses_command(
    batch_size: int = typer.Option(1024, min=1, help="Batch size (the study's: 1024)."),
    features: int = typer.Option(1024, min=1, help="Input features of the benchmark model."),
    hidden: int = typer.Option(1024, min=1, help="Units of its two hidden layers."),
    rounds: int = typer.Option(15, min=1, help="Interleaved timing rounds."),
    steps: int = typer.Option(3, min=1, help="Timed training steps per loss per round."),
    loss: list[str] = typer.Option(None, "--loss", help="Losses to time (default: all)."),
):
    """Training-step time of each loss relative to bce, same model and batch, one run."""
    quiet_tensorflow()
    import keras  # the library loads with the command (Keras off the --help path)

    from keras_mlrs.core import losses
    from keras_mlrs.study import bench

    for name in loss or []:
        losses.spec(name)
    console.print(
        f"Timing {len(loss or losses.names())} losses: batch {batch_size}, "
        f"MLP {features}->{hidden}->{hidden}->19, backend {keras.backend.backend()}, "
        f"{rounds} interleaved rounds of {steps} steps..."
    )
    rows = bench.bench_losses(
        names=loss, batch_size=batch_size, features=features, hidden=hidden, rounds=rounds, steps_per_round=steps
    )
    table = Table(title="Training-step time relative to bce (median)")
    table.add_column("loss", style="bold cyan")
    table.add_column("step (ms)", justify="right")
    table.add_column("vs bce", justify="right")
    for row in rows:
        style = "green" if row["ratio"] <= 1.10 else "yellow"
        table.add_row(row["loss"], f"{row['step_ms']:.1f}", f"[{style}]{row['ratio']:.3f}x[/{style}]")
    console.print(table)


@bench_app.command("data")
def bench_data_command(
    patches: int = typer.Option(2000, min=50, help="Patches (the sample replicated)."),
    batch_size: int = typer.Option(256, min=1, help="Loader batch size."),
    rounds: int = typer.Option(3, min=1, help="Interleaved timing rounds."),
    workdir: Path = typer.Option(None, help="Folder for the replicated archive, kept for later runs (default: a temporary folder, removed at the end)."),
):
    """Prepare and loader throughput (ours vs rasterio / official TFRecords / raw) and prepare's memory."""
    quiet_tensorflow()
    # the library loads with the command (Keras off the --help path)
    from keras_mlrs.study import bench

    console.print(f"Replicating the sample to {patches:,} patches and timing {rounds} interleaved rounds...")
    r = bench.bench_data(patches=patches, batch_size=batch_size, rounds=rounds, workdir=workdir)
    table = Table(title=f"BigEarthNet data throughput ({patches:,} patches; medians of {rounds} rounds, "
                        "ratios per round)")
    table.add_column("measure", style="bold cyan")
    table.add_column("ours", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("ratio", justify="right")
    p, lo, m, ratio = r["prepare_patches_per_s"], r["load_patches_per_s"], r["prepare_peak_rss_mib"], r["ratios"]
    table.add_row("prepare, patches/s per worker (vs rasterio per band file)",
                  f"{p['ours']:,.0f}", f"{p['rasterio']:,.0f}", f"{ratio['prepare_vs_rasterio']:.1f}x")
    table.add_row("load, patches/s (vs official int64 TFRecords)",
                  f"{lo['ours']:,.0f}", f"{lo['official']:,.0f}", f"{ratio['load_vs_official']:.1f}x")
    table.add_row("load, patches/s (vs raw archive on the fly)",
                  f"{lo['ours']:,.0f}", f"{lo['raw']:,.0f}", f"{ratio['load_vs_raw']:.1f}x")
    table.add_row("load shuffled, patches/s (vs official, shuffle buffer)", f"{lo['ours_shuffled']:,.0f}",
                  f"{lo['official_shuffled']:,.0f}", f"{ratio['load_shuffled_vs_official_shuffled']:.1f}x")
    table.add_row("load shuffled, numpy pipeline (no TensorFlow) vs tf.data", f"{lo['numpy_shuffled']:,.0f}",
                  f"{lo['ours_shuffled']:,.0f}", f"{ratio['numpy_vs_tf_data_shuffled']:.2f}x")
    table.add_row("prepare peak memory, MiB (4x data vs 1x)", f"{m['4x']:,.0f}", f"{m['1x']:,.0f}",
                  f"{ratio['prepare_memory_4x_vs_1x']:.2f}x")
    console.print(table)
    if r["workdir"]:
        console.print(f"Work folder (kept): {r['workdir']}")


@bench_app.command("train")
def bench_train_command(
    batch_size: int = typer.Option(1024, min=1, help="Batch size (the study's: 1024)."),
    steps: int = typer.Option(3, min=1, help="Timed steps per measurement per round."),
    rounds: int = typer.Option(2, min=1, help="Interleaved timing rounds."),
    model: str = typer.Option("kbranch", help="Architecture."),
    model_param: list[str] = typer.Option(None, "--model-param", help="Model parameter as name=value, e.g. units=128 (repeatable)."),
    mixed_precision: bool = typer.Option(False, "--mixed-precision/--no-mixed-precision", help="float16 compute."),
):
    """Training throughput (patches/s) of a model at the study's batch size, and the share
    of step time spent waiting for input."""
    quiet_tensorflow()
    # the library loads with the command (Keras off the --help path)
    from keras_mlrs.runs import parse_param
    from keras_mlrs.study import bench

    console.print(f"Timing {model} training steps at batch {batch_size} ({rounds} rounds of {steps} steps)...")
    start = time.perf_counter()
    r = bench.bench_train(batch_size=batch_size, steps=steps, rounds=rounds, model=model,
                          mixed_precision=mixed_precision, model_params=dict(parse_param(p) for p in model_param or []))
    table = Table(title=f"{model} training throughput, batch {batch_size} (medians; {r['device']}, "
                        f"backend {r['backend']})")
    table.add_column("measure", style="bold cyan")
    table.add_column("value", justify="right")
    table.add_row("parameters", f"{r['parameters']:,}")
    table.add_row("step time, data in memory (s)", f"{r['compute_step_s']:.3f}")
    table.add_row("patches/s, data in memory", f"{r['compute_patches_per_s']:,.1f}")
    if r.get("loader_step_s") is not None:
        table.add_row("step time, data from prepared shards (s)", f"{r['loader_step_s']:.3f}")
        table.add_row("patches/s, data from prepared shards", f"{r['loader_patches_per_s']:,.1f}")
        table.add_row("share of step time waiting for input", f"{100 * r['input_wait_share']:.1f} %")
    console.print(table)
    console.print(f"({time.perf_counter() - start:.0f} s in all)")


@bench_app.command("explain")
def bench_explain_command(
    batch_size: int = typer.Option(8, min=1, help="Patches per call."),
    classes: int = typer.Option(19, min=1, max=19, help="Classes explained per patch."),
    preset: str = typer.Option("lrp.epsilon", help="LRP preset, the same for both engines."),
    rounds: int = typer.Option(3, min=1, help="Timed calls per engine (the best is kept)."),
):
    """Heatmaps/s of the native engine and of iNNvestigate on the same K-Branch CNN, batch
    and preset, side by side, how far apart their heatmaps are, and the native engine's
    GFLOP/s against this device's peak measured in the same run (a float32 matmul)."""
    quiet_tensorflow()
    # the library loads with the command (Keras off the --help path)
    from keras_mlrs.study import bench

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
    console.print(f"native LRP work: {native['gflop_per_call']:.1f} GFLOP per call at {native['gflop_per_s']:.0f} GFLOP/s; "
                  f"this device's peak (float32 matmul, same run): {result['peak_gflop_per_s']:.0f} GFLOP/s; "
                  f"fraction of peak: {100 * result['fraction_of_peak']:.0f} %", highlight=False)
    console.print(f"largest difference, relative to each heatmap's largest value: {result['max_relative_difference']:.2e}")
