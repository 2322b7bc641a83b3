"""``mlrs losses``: the loss registry."""

from rich.table import Table

from keras_mlrs.cli.app import TRAINING, app, console, quiet_tensorflow


@app.command("losses", rich_help_panel=TRAINING)
def losses_command():
    """List the registered losses: hyperparameters, decision rule, description."""
    quiet_tensorflow()
    from keras_mlrs.core import decision, losses  # Keras loads with the registry

    table = Table(title="Registered losses", show_lines=False)
    table.add_column("name", style="bold cyan")
    table.add_column("hyperparameters (defaults)")
    table.add_column("decision rule")
    table.add_column("description")
    for name in losses.names():
        spec = losses.spec(name)
        params = ", ".join(f"{k}={v!r}" for k, v in spec.hyperparameters.items()) or "-"
        rule = decision.get(spec.decision)
        table.add_row(name, params, f"{rule.name}: {rule.describe()}", spec.description)
    console.print(table)
