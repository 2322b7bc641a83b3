"""The comparison report's pieces (the whole report is tested end to end in tests/e2e)."""

from keras_mlrs.study import compare


def test_compare_highlights_the_best_run_of_each_row_only_when_runs_differ():
    assert compare.best([0.5, 0.7, 0.7, None]) == {1, 2}
    assert compare.best([0.0, 0.0]) == set() and compare.best([None, 0.3]) == set()


def test_runs_get_short_unique_names(tmp_path):
    a, b = tmp_path / "x" / "bce", tmp_path / "y" / "bce"
    assert compare.run_names([a, tmp_path / "x" / "focal"]) == ["bce", "focal"]
    assert compare.run_names([a, b]) == ["x/bce", "y/bce"]
