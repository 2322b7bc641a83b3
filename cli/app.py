"""The Typer application, its consoles, and helpers shared by the commands."""

import os
from importlib.metadata import PackageNotFoundError, version

import typer
from rich.console import Console

app = typer.Typer(
    name="mlrs",
    help="Multi-label remote-sensing image classification with Keras 3 (BigEarthNet-19).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: print numbers measured side by side.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
data_app = typer.Typer(help="BigEarthNet data: prepare archives into training-ready shards.", no_args_is_help=True)
app.add_typer(data_app, name="data")
zoo_app = typer.Typer(help="The model zoo: one checkpoint per loss, built and published to the Hub.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")

console = Console()
err_console = Console(stderr=True)


def quiet_tensorflow():
    """No TensorFlow log noise on the console: its C++ start-up messages (TensorFlow 2.21
    prints some through absl whatever TF_CPP_MIN_LOG_LEVEL says, so stderr is closed while
    Keras and TensorFlow load) and its Python logger's warnings."""
    import logging
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if "keras" not in sys.modules:
        sys.stderr.flush()
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        try:
            import keras  # noqa: F401  (loads the backend, TensorFlow included)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _version() -> str:
    try:
        return version("keras-mlrs")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def _version_callback(value: bool):
    if value:
        console.print(f"keras-mlrs {_version()}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
):
    """Multi-label remote-sensing image classification with Keras 3 (BigEarthNet-19)."""


