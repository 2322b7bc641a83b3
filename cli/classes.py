"""``mlrs classes``: the BigEarthNet-19 nomenclature."""

import typer
from rich.table import Table

from keras_mlrs.cli.app import TRAINING, app, console


@app.command("classes", rich_help_panel=TRAINING)
def classes_command(
    v1: bool = typer.Option(False, "--v1", help="Also the 43 CORINE labels of BigEarthNet v1.0 and their 19-class names."),
):
    """The 19 classes in the study's order (logit i is class i), with their training counts."""
    # BigEarthNet as data: no Keras
    from keras_mlrs.bigearthnet import CLASS_NAMES, CORINE_LABELS, CORINE_TO_19, TRAIN_CLASS_COUNTS

    table = Table(title="BigEarthNet-19 classes (the study's order)")
    table.add_column("index", justify="right")
    table.add_column("class", style="bold cyan")
    table.add_column("training patches", justify="right")
    for i, (name, count) in enumerate(zip(CLASS_NAMES, TRAIN_CLASS_COUNTS)):
        table.add_row(str(i), name, f"{count:,}")
    console.print(table)
    if v1:
        mapping = Table(title="BigEarthNet v1.0: the 43 CORINE labels and their BigEarthNet-19 class")
        mapping.add_column("CORINE label (v1.0)")
        mapping.add_column("BigEarthNet-19 class", style="bold cyan")
        for label in CORINE_LABELS:
            target = CORINE_TO_19[label]
            mapping.add_row(label, f"{CLASS_NAMES.index(target)}. {target}" if target else "(not in BigEarthNet-19)")
        console.print(mapping)
