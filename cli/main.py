"""The ``mlrs`` command: thin Typer commands over the ``keras_mlrs`` library, one module per
command group.

Keras (and so TensorFlow) is imported inside the commands that need it, so that
``mlrs --help`` and ``mlrs --version`` answer at once.
"""

import sys

from rich.text import Text

from keras_mlrs.cli.app import app, err_console, render_error
from keras_mlrs.errors import MlrsError

# the commands register themselves on import, in this order: the order of `mlrs --help`
# isort: off
from keras_mlrs.cli import losses, classes, data, train, evaluate, explain, compare, zoo, hub, bench, doctor, demo  # noqa: F401, E501
# isort: on


def main():
    """Entry point: runs the app, printing user errors on one line, in the command's terms,
    without a traceback (exit code 2)."""
    try:
        app()
    except MlrsError as err:
        err_console.print(Text.assemble(("error:", "bold red"), " ", render_error(str(err))), highlight=False,
                          soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
