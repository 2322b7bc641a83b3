"""``mlrs push`` and ``mlrs pull``: the Hugging Face Hub."""

from pathlib import Path

import typer
from rich.table import Table

from keras_mlrs.cli import registry
from keras_mlrs.cli.app import ZOO, app, console, quiet_tensorflow, say


@app.command("push", rich_help_panel=ZOO)
def push_command(
    run: Path = typer.Argument(..., help="A finished run directory (mlrs train or mlrs zoo build)."),
    repo: str = typer.Option(..., "--repo", help="Hub repository ORG/NAME (created when missing)."),
    private: bool = typer.Option(False, "--private", help="Create the repository private."),
    revision: str = typer.Option(None, "--revision", help="Branch to publish to (created when missing)."),
    split: str = typer.Option("test", "--split", help="Split whose evaluation goes into the card's model-index."),
    license: str = typer.Option("apache-2.0", "--license", help="Licence of the published model (Hub licence id)."),
    to: Path = typer.Option(None, "--to", help="Write the exact repository content to this folder instead of uploading."),
):
    """Publish a trained model to the Hugging Face Hub with its model card (or --to a folder)."""
    registry.check_paths(runs=run)  # before Keras loads
    quiet_tensorflow()
    from keras_mlrs import hub  # the library loads with the command (Keras off the --help path)

    hub.repo_id(repo)
    if to is not None:
        folder = hub.export(run, to, repo, split=split, license=license, say=say)
        console.print(f"Wrote the repository hf://{hub.repo_id(repo)} to [bold]{folder}[/bold] "
                      f"({', '.join(sorted(p.name for p in folder.iterdir() if not p.name.startswith('.')))}).", highlight=False)
        return
    url = hub.push(run, repo, private=private, revision=revision, split=split, license=license, say=say)
    console.print(f"Published [bold]{url}[/bold]; load it with keras_mlrs.from_pretrained('{hub.repo_id(repo)}') "
                  f"or --model hf://{hub.repo_id(repo)}.", highlight=False)


@app.command("pull", rich_help_panel=ZOO)
def pull_command(
    repo: str = typer.Argument(..., help="Hub repository ORG/NAME (or hf://ORG/NAME)."),
    revision: str = typer.Option(None, "--revision", help="Branch, tag or commit (default: main)."),
):
    """Download a published model into the Hugging Face cache and check that it loads."""
    quiet_tensorflow()
    # the library loads with the command (Keras off the --help path)
    from keras_mlrs import hub, runs
    from keras_mlrs.core.decision import rule_of

    folder = hub.resolve(f"hf://{hub.repo_id(repo)}", revision)
    model = runs.load_model(folder)
    hub.check_model(model, f"hf://{hub.repo_id(repo)}")
    card = hub.read_card(folder)
    meta = card.data.to_dict().get(hub.CARD_KEY, {}) if card else {}
    table = Table(title=f"hf://{hub.repo_id(repo)}" + (f" @ {revision}" if revision else ""))
    table.add_column("", style="bold cyan")
    table.add_column("")
    table.add_row("local folder", str(folder))
    table.add_row("loss", f"{meta.get('loss', '?')} {meta.get('loss_params', '')}")
    table.add_row("decision rule", rule_of(model).describe())
    calibration = meta.get("calibration")
    if calibration:
        fixed, calibrated = calibration["scores"]["fixed"], calibration["scores"]["calibrated"]
        table.add_row("calibrated thresholds", f"{calibration['objective']} on the {calibration['split']} split: "
                      f"sample-F1 {fixed['samples']:.4f} -> {calibrated['samples']:.4f} (--thresholds calibrated)")
    table.add_row("inputs", f"{meta.get('input_layout', '?')}: {meta.get('bands', '?')}")
    table.add_row("parameters", f"{model.count_params():,}")
    for result in (card.data.eval_results or []) if card else []:
        table.add_row(f"{result.metric_name} ({result.dataset_split})", f"{result.metric_value:.4f}")
    console.print(table)
