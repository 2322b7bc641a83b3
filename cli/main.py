"""The ``mlrs`` command: thin Typer commands over the ``keras_mlrs`` library, one module per
command group.

Keras (and so TensorFlow) is imported inside the commands that need it, so that
``mlrs --help`` and ``mlrs --version`` answer at once.
"""

import os
import signal
import sys
import warnings

from rich.text import Text

from keras_mlrs.cli.app import app, err_console, render_error
from keras_mlrs.errors import MlrsError, installed_backend, printable

# the commands register themselves on import, in this order: the order of `mlrs --help`
# isort: off
from keras_mlrs.cli import losses, classes, data, train, evaluate, calibrate, landscape, explain, explain_quality, compare, zoo, hub, bench, doctor, demo  # noqa: F401, E501
# isort: on


#: Set to 1 to see the full traceback of a user error (for bug reports).
DEBUG = "MLRS_DEBUG"


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """keras-mlrs' own warnings (a legitimate conversion, said once) as one line."""
    if filename.startswith(_PACKAGE):
        err_console.print(Text.assemble(("warning:", "bold yellow"), " ", str(message)), highlight=False, soft_wrap=True)
    else:
        _show_warning(message, category, filename, lineno, file, line)


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_show_warning = warnings.showwarning


def _terminated(signum, frame):
    """SIGTERM (``timeout``, ``docker stop``, a scheduler ending a job) ends the command as an
    error would: its cleanups run (temporary folders, half-written outputs, the other
    processes of a multiprocess run told), then it exits with 128 + 15."""
    raise SystemExit(128 + signum)


def main():
    """Entry point: runs the app, printing user errors on one line, in the command's terms,
    without a traceback (exit code 1; 2 stays Click's usage error). ``MLRS_DEBUG=1`` shows the
    traceback. SIGTERM exits with status 143 after the command's cleanups."""
    warnings.showwarning = _one_line_warning
    signal.signal(signal.SIGTERM, _terminated)
    try:
        installed_backend()  # a one-line error before any command imports Keras
        app()
    except MlrsError as err:
        if os.environ.get(DEBUG) == "1":
            raise
        err_console.print(Text.assemble(("error:", "bold red"), " ", render_error(printable(err))), highlight=False,
                          soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
