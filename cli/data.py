"""``mlrs data prepare`` and ``mlrs data verify``."""

import time
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from keras_mlrs.cli import registry
from keras_mlrs.cli.app import console, data_app, quiet_tensorflow
from keras_mlrs.errors import PrepareError


@data_app.command("prepare")
def data_prepare_command(
    archive: Path = typer.Argument(..., help="A BigEarthNet v1.0 or v2.0 folder, or a tar of one."),
    out: Path = typer.Option(..., "--out", help="Output folder for the shards and manifest.json."),
    format: str = typer.Option(None, "--format", help="v1 or v2 (default: detected)."),
    split: str = typer.Option("official", "--split", help="official (lists / v2 metadata) or random."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random split and of the shard order."),
    fractions: str = typer.Option("0.6,0.2,0.2", "--fractions", help="train,validation,test for --split random."),
    shard_size: int = typer.Option(512, "--shard-size", min=1, help="Patches per shard."),
    workers: int = typer.Option(None, "--workers", min=1, help="Parallel processes (default: all cores)."),
    strict: bool = typer.Option(False, "--strict", help="Abort at the first bad patch instead of skipping it."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an output folder holding another dataset."),
    include_snow_cloud: bool = typer.Option(False, "--include-snow-cloud", help="Keep patches with snow, cloud or shadow."),
    max_extract_gb: float = typer.Option(150.0, "--max-extract-gb", min=0, help="For a tar archive: the most it may expand to (its temporary extraction is removed at the end)."),
):
    """Turn a BigEarthNet archive into sharded TFRecords plus manifest.json (resumable)."""
    registry.check_paths(data=archive)  # before Keras loads
    quiet_tensorflow()
    # the library loads with the command (Keras off the --help path)
    from keras_mlrs.bigearthnet import SPLITS
    from keras_mlrs.data import prepare
    from keras_mlrs.data.splits import parse_fractions

    frac = parse_fractions(fractions)
    start = time.perf_counter()
    with Progress(
        TextColumn("[bold]preparing"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} patches/s"), TimeRemainingColumn(), console=console, transient=True,
    ) as bar:
        task = bar.add_task("prepare", total=None, rate="-")

        def progress(done, total):
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")

        manifest = prepare(
            archive, out, fmt=format, split=split, seed=seed, fractions=frac, shard_size=shard_size,
            workers=workers, strict=strict, overwrite=overwrite, include_snow_cloud=include_snow_cloud,
            progress=progress, max_extract_gb=max_extract_gb,
        )
    console.print(f"[bold]{out}[/bold]: split scheme {manifest['split_scheme']}", highlight=False)
    table = Table(title="Prepared patches")
    table.add_column("split", style="bold cyan")
    table.add_column("patches", justify="right")
    table.add_column("shards", justify="right")
    for name, entry in manifest["splits"].items():
        table.add_row(name, f"{entry['records']:,}", str(len(entry["shards"])))
    console.print(table)
    if manifest["skipped"]:
        console.print(f"[yellow]{len(manifest['skipped'])} patch(es) skipped[/yellow] (reasons in manifest.json):")
        for name, reason in list(manifest["skipped"].items())[:10]:
            console.print(f"  {name}: {reason}", highlight=False)
    empty = [s for s in SPLITS if s not in manifest["splits"]]
    if empty:
        console.print(f"[yellow]No patch in split(s): {', '.join(empty)}[/yellow]; "
                      "for a small subset use --split random --seed N --fractions 0.6,0.2,0.2.")


@data_app.command("verify")
def data_verify_command(
    folder: Path = typer.Argument(..., help="A folder written by mlrs data prepare."),
):
    """Check every shard against manifest.json (present, size, SHA-256); exits 1 naming the bad ones."""
    # the data layer only (no Keras): shards are files and hashes
    from keras_mlrs.data import verify

    result = verify(folder)
    if result["bad"]:  # the report on stdout, the error in one line on stderr
        for bad in result["bad"]:
            console.print(f"bad shard {folder / bad['file']} ({bad['split']}): {bad['problem']}", highlight=False)
        raise PrepareError(f"{len(result['bad'])} of {result['shards']} shard(s) failed verification; rerun "
                           f"mlrs data prepare with the same arguments and --out {folder} to rewrite them.")
    console.print(f"[bold]{folder}[/bold]: all {result['shards']} shard(s) match manifest.json "
                  f"({result['records']:,} patches).", highlight=False)

