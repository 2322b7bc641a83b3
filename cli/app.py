"""The Typer application, its consoles, and what the command modules share: the rendering
of library errors in the command's own terms, the study's overall table, quiet TensorFlow."""

import logging
import os
import re
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from keras_mlrs.version import __version__

app = typer.Typer(
    name="mlrs",
    help="Multi-label remote-sensing image classification with Keras 3 (BigEarthNet-19).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
#: the panels of `mlrs --help`, in the order of a study
TRAINING, RESULTS, ZOO, TOOLS = "Data and training", "Results and explanations", "Model zoo and Hub", "Tools"
data_app = typer.Typer(help="BigEarthNet data: prepare archives into training-ready shards.", no_args_is_help=True)
app.add_typer(data_app, name="data", rich_help_panel=TRAINING)
zoo_app = typer.Typer(help="The model zoo: one checkpoint per loss, built and published to the Hub.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo", rich_help_panel=ZOO)
bench_app = typer.Typer(help="Benchmarks: print numbers measured side by side.", no_args_is_help=True)
app.add_typer(bench_app, name="bench", rich_help_panel=TOOLS)

console = Console()
err_console = Console(stderr=True)


#: options shared by the commands that apply a model's decision rule
DecisionOption = Annotated[str, typer.Option("--decision", help="Override the model's rule: sigmoid, logit or sparsemax_support.")]
ThresholdOption = Annotated[float, typer.Option("--threshold", help="Threshold of the sigmoid or logit rule.")]
ThresholdsOption = Annotated[str, typer.Option(
    "--thresholds", help="fixed: the loss's own rule (default, as in the study); calibrated: the per-class thresholds "
                         "fitted by mlrs calibrate, which the run, export or Hub repository carries.")]


def say(text: str) -> None:
    """A progress line of a long command."""
    console.print(f"[bold cyan]>[/bold cyan] {text}", highlight=False)


def quiet_tensorflow():
    """No TensorFlow log noise on the console: Keras and TensorFlow load quietly (see
    :func:`keras_mlrs._quietly`), then TensorFlow's C++ and Python loggers say only errors."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    import keras  # noqa: F401 - loads the backend (TensorFlow included)

    logging.getLogger("tensorflow").setLevel(logging.ERROR)


# -- library errors in the command's terms ------------------------------------------------------
#: library functions named in errors -> the command that does the same
COMMANDS = {
    "keras_mlrs.data.prepare": "mlrs data prepare",
    "keras_mlrs.runs.train": "mlrs train",
    "keras_mlrs.runs.resume": "mlrs train --resume",
    "keras_mlrs.runs.calibrate": "mlrs calibrate",
    "keras_mlrs.hub.export": "mlrs push --to",
    "keras_mlrs.hub.recipes.build": "mlrs zoo build",
}
#: library names in errors -> the command that shows them
NAMES = {"keras_mlrs.bigearthnet.CLASS_NAMES": "mlrs classes"}
#: library arguments named in errors whose flag is not ``--`` + the name with dashes
FLAGS = {"out_dir": "--out", "classes": "--class", "folder": "--to", "fmt": "--format", "patches": "--patch",
         "loss_params": "--loss-param", "model_params": "--model-param"}
_CODE = re.compile(r"`([^`]+)`")
_CALL = re.compile(r"^([a-z_][\w.]*)\((.*)\)$")
_SETTING = re.compile(r"^([a-z_]\w*)(?:=(.+))?$")


def flag(argument: str) -> str:
    """The command-line flag of a library argument."""
    return FLAGS.get(argument, "--" + argument.replace("_", "-"))


def _plain(value: str) -> str:
    """A Python literal of an error message as a command-line value."""
    value = value.strip()
    if value[:1] in "\"'" and value[-1:] == value[:1]:
        return value[1:-1]
    if value[:1] in "([" and value[-1:] in ")]":
        return ",".join(v.strip() for v in value[1:-1].split(","))
    return value


def _as_command_line(match: re.Match) -> str:
    code = match[1]
    if code in NAMES:
        return NAMES[code]
    call = _CALL.match(code)
    if call and call[1] in COMMANDS:
        args = " ".join(_plain(a) for a in call[2].split(",") if a.strip())
        return f"{COMMANDS[call[1]]} {args}".strip()
    setting = _SETTING.match(code)
    if setting and not call:
        name, value = setting[1], setting[2]
        if value is None or value == "True":
            return flag(name)
        if value == "False":
            return "--no-" + flag(name)[2:]
        return f"{flag(name)} {_plain(value)}"
    return match[0]


def render_error(message: str) -> str:
    """A library error message with its Python references (`` `overwrite=True` ``,
    `` `keras_mlrs.data.prepare()` ``) shown as the command's flags and commands."""
    return _CODE.sub(_as_command_line, message)


# -- what several commands print ---------------------------------------------------------------
def overall_table(report: dict, title: str) -> Table:
    """Precision, recall and F1 under each average of an evaluation report (the study's Table 6.1)."""
    # Keras-free constants, but core imports Keras: at use
    from keras_mlrs.core.metrics import REPORT_AVERAGES

    table = Table(title=title)
    table.add_column("average", style="bold cyan")
    for col in ("precision", "recall", "F1"):
        table.add_column(col, justify="right")
    for avg in REPORT_AVERAGES:
        r = report[avg]
        table.add_row(avg, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}")
    return table


def load_model(source, checkpoint: str | None = None):
    """The model behind a command's model argument: a run directory (its ``checkpoint``,
    default the final epoch's), a ``.keras`` file, an exported folder or ``hf://ORG/NAME``."""
    from keras_mlrs import hub  # the Hub layer imports Keras: loaded when a command needs a model

    return hub.load_model(source, checkpoint=checkpoint)


def load_model_and_rule(source, checkpoint: str | None = None, thresholds: str = "fixed"):
    """The model behind a command's model argument (as :func:`load_model`) and its decision
    rule: the loss's own (``fixed``) or the calibrated thresholds it carries."""
    from keras_mlrs import hub  # the Hub layer imports Keras: loaded when a command needs a model

    return hub.load_model_and_rule(source, thresholds=thresholds, checkpoint=checkpoint)


def _version_callback(value: bool):
    if value:
        console.print(f"keras-mlrs {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
):
    """Multi-label remote-sensing image classification with Keras 3 (BigEarthNet-19)."""
