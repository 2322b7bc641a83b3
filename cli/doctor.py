"""``mlrs doctor``: what a user pastes into a bug report."""

import typer
from rich.table import Table

from cli.app import app, console, quiet_tensorflow


@app.command("doctor")
def doctor_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Versions, backend, visible devices, XLA, the iNNvestigate engine, the Hugging Face cache."""
    quiet_tensorflow()
    from keras_mlrs.doctor import report

    info = report()
    if as_json:
        import json

        print(json.dumps(info, indent=1))
        return
    table = Table(title="mlrs doctor", show_header=False)
    table.add_column("item", style="bold cyan")
    table.add_column("value")
    for key, value in info.items():
        table.add_row(key, value)
    console.print(table)
