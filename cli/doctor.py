"""``mlrs doctor``: what a user pastes into a bug report."""

import json

import typer
from rich.table import Table

from keras_mlrs.cli.app import TOOLS, app, console, quiet_tensorflow


@app.command("doctor", rich_help_panel=TOOLS)
def doctor_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Versions, backend, visible devices, XLA, the iNNvestigate engine, the Hugging Face cache."""
    quiet_tensorflow()
    # the library loads with the command (Keras off the --help path)
    from keras_mlrs.study.doctor import report

    info = report()
    if as_json:
        print(json.dumps(info, indent=1))
        return
    table = Table(title="mlrs doctor", show_header=False)
    table.add_column("item", style="bold cyan")
    table.add_column("value")
    for key, value in info.items():
        table.add_row(key, value)
    console.print(table)
