"""`mlrs data prepare` from the command line: the split scheme shown, library errors in the
command's own terms."""

import pytest
from typer.testing import CliRunner

from helpers import one_line_error, run_mlrs_here
from keras_mlrs import data
from keras_mlrs.cli.main import app

pytestmark = pytest.mark.backend_free


def test_prepare_on_the_sample_prints_the_split_scheme(tmp_path):
    result = CliRunner().invoke(
        app, ["data", "prepare", str(data.sample_path()), "--out", str(tmp_path / "p"), "--split", "random",
              "--seed", "2"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "random (seed 2" in result.output
    assert "validation" in result.output
    assert (tmp_path / "p" / "manifest.json").exists()


def test_bad_prepare_inputs_are_one_line_errors_naming_flags(sample, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    one_line_error(run_mlrs_here(capsys, "data", "prepare", tmp_path / "empty", "--out", tmp_path / "o"),
                   "not a BigEarthNet archive")
    assert not (tmp_path / "o").exists()
    one_line_error(run_mlrs_here(capsys, "data", "prepare", sample, "--out", tmp_path / "o", "--format", "v3"),
                   "unknown raw archive format 'v3'", "v1, v2")
    data.prepare(sample, tmp_path / "out", workers=1)
    # the library's `split='random'` and `overwrite=True` become the command's flags
    line = one_line_error(run_mlrs_here(capsys, "data", "prepare", sample, "--out", tmp_path / "out", "--split",
                                        "random"), "already holds a different dataset", "--out", "--overwrite")
    assert "`" not in line and "overwrite=True" not in line
