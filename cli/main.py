"""The ``mlrs`` command: thin Typer commands over the ``keras_mlrs`` library.

Keras (and so TensorFlow) is imported inside the commands that need it, so that
``mlrs --help`` and ``mlrs --version`` answer at once.
"""

import sys

from cli import commands, doctor, explain, hub, training  # noqa: F401 - they register their commands
from cli.app import app, err_console


def main():
    """Entry point: runs the app, printing user errors on one line without a traceback."""
    try:
        app()
    except Exception as err:  # noqa: BLE001 - user-facing boundary
        from keras_mlrs.errors import MlrsError

        if isinstance(err, MlrsError):
            err_console.print(f"[bold red]error:[/bold red] {err}", highlight=False, soft_wrap=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
