"""The comparison report's pieces (the whole report is tested end to end in tests/e2e)."""

from keras_mlrs.study import compare


def test_compare_highlights_the_best_run_of_each_row_only_when_runs_differ():
    assert compare.best([0.5, 0.7, 0.7, None]) == {1, 2}
    assert compare.best([0.0, 0.0]) == set() and compare.best([None, 0.3]) == set()


def test_runs_get_short_unique_names(tmp_path):
    a, b = tmp_path / "x" / "bce", tmp_path / "y" / "bce"
    assert compare.run_names([a, tmp_path / "x" / "focal"]) == ["bce", "focal"]
    assert compare.run_names([a, b]) == ["x/bce", "y/bce"]


def test_lrp_during_training_from_kept_checkpoints(tiny_runs, tmp_path):
    """The thesis's Tables 6.12-6.13: the runs kept every epoch (--keep-every 1), so the report
    draws one row per run and one column per epoch, each cell that epoch's checkpoint; the
    scores it records are those of the checkpoints themselves. (The whole report, this
    section included, is tested end to end in tests/e2e.)"""
    from keras_mlrs import runs
    from keras_mlrs.explain import heatmaps

    patch = heatmaps.example_patch()
    names, run_dirs = ["bce", "sparsemax"], [tiny_runs["bce"][0], tiny_runs["sparsemax"][0]]
    grid = compare._training_grid(tmp_path, names, run_dirs, patch, ["Marine waters"], "lrp.epsilon", "rgb", print)
    assert grid["epochs"] == [1, 2] and grid["class"] == "Marine waters" and grid["patch"] == patch.name
    assert (tmp_path / grid["figure"].removeprefix("figures/")).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = runs.RunDirectory(tiny_runs["sparsemax"][0])
    first = heatmaps.explain_patch(runs.load_model(run.checkpoint(1)), patch, ["Marine waters"])
    assert grid["scores"]["sparsemax"]["1"] == first.scores[0]
    # a run that kept no epochs for it (no --keep-every): no figure, and the section says how to get one
    assert compare._training_grid(tmp_path, ["ranking"], [tiny_runs["ranking"][0]], patch, None, "lrp.epsilon", "rgb",
                                  print) is None
    result = {"runs": dict(zip(names, map(str, run_dirs))), "split": "test", "patches_evaluated": {"bce": 1},
              "decision": {"bce": "sigmoid"}, "checkpoint": {"bce": {"name": "last", "epoch": 2}}, "preset": "lrp.epsilon",
              "bands": "rgb", "lrp_training": None}
    text = compare._training_caption(result) + compare._models_sentence(result)
    assert "--keep-every" in text and "bce: final epoch 2" in text
