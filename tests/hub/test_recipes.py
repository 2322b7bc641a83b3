"""The zoo's recipes: one per registered loss, each with the study's setup; a build's plan
and run names with several seeds (training stubbed: nothing is trained here)."""

import json
from pathlib import Path

import pytest

from keras_mlrs import runs
from keras_mlrs.core import losses
from keras_mlrs.errors import MlrsError
from keras_mlrs.hub import recipes as zoo
from keras_mlrs.runs.config import recipe_key

pytestmark = pytest.mark.backend_free  # names, files and configurations: no Keras numerics


def test_every_registered_loss_has_a_recipe_with_the_study_setup():
    recipes = zoo.recipes()
    assert set(recipes) == set(losses.names())
    study = [r.name for r in recipes.values() if r.study]
    assert study == ["bce", "focal", "weighted_bce", "hamming", "huber", "ranking", "sparsemax"]
    assert list(recipes)[:7] == study
    for recipe in recipes.values():
        config = recipe.config("")
        assert (config.loss, config.model, config.model_params["units"]) == (recipe.name, "kbranch", 1024)
        assert (config.optimizer, config.lr, config.batch_size, config.epochs, config.split, config.keep_every) == (
            "tf1_rmsprop", 1e-4, 1024, 80, "official", 20)
        assert recipe.repo_id("org") == f"org/ben19-kbranch-{recipe.name.replace('_', '-')}"


def test_recipes_are_selected_by_name():
    assert [r.name for r in zoo.select(["focal", "bce", "focal"])] == ["focal", "bce"]
    assert len(zoo.select()) == len(losses.names())
    with pytest.raises(MlrsError, match="unknown zoo recipe 'focall'.*Did you mean 'focal'"):
        zoo.select(["focall"])


def test_one_seed_keeps_the_recipe_names_and_more_seeds_add_named_runs(tmp_path):
    recipes = zoo.recipes()
    assert [(p.name, p.seed) for p in zoo.plan(tmp_path, ["bce", "focal"])] == [("bce", 0), ("focal", 0)]
    planned = zoo.plan(tmp_path, ["bce", "focal"], seeds=3)
    assert [(p.name, p.recipe.name, p.seed) for p in planned] == [  # seed by seed: whole sets first
        ("bce", "bce", 0), ("focal", "focal", 0), ("bce-seed1", "bce", 1), ("focal-seed1", "focal", 1),
        ("bce-seed2", "bce", 2), ("focal-seed2", "focal", 2)]
    assert all(p.path == tmp_path / p.name for p in planned)
    assert [p.name for p in zoo.plan(tmp_path, ["two_way"], seeds=2)] == ["two_way", "two_way-seed1"]
    assert zoo.run_name(recipes["focal"]) == zoo.run_name(recipes["focal"], 0) == "focal"
    assert recipes["focal"].config("", seed=4).seed == 4 and recipes["focal"].config("").seed == recipes["focal"].seed == 0
    assert not any(tmp_path.iterdir())  # planning writes nothing


@pytest.mark.parametrize("seeds", [0, -1, True, 1.5, "2"])
def test_a_number_of_seeds_below_one_is_refused(tmp_path, seeds):
    with pytest.raises(MlrsError, match=r"`seeds` must be an integer >= 1"):
        zoo.plan(tmp_path, ["bce"], seeds=seeds)


@pytest.fixture
def stub_training(monkeypatch):
    """`build` with training and evaluation replaced: each 'run' is its config.toml, a
    finished state and a test report; the calls are recorded."""
    calls = []

    def train(config, run_dir, **kwargs):
        calls.append((Path(run_dir).name, config.seed))
        Path(run_dir).mkdir(parents=True)
        (Path(run_dir) / runs.CONFIG).write_text(config.to_toml())
        (Path(run_dir) / "state.json").write_text(json.dumps({"finished": True, "epoch": config.epochs, "history": [],
                                                             "best": None}))
        (Path(run_dir) / "evaluation-test").mkdir()
        (Path(run_dir) / "evaluation-test" / "report.json").write_text("{}")

    monkeypatch.setattr(zoo, "train", train)
    monkeypatch.setattr(zoo, "run_report", lambda run_dir, split: {"run": Path(run_dir).name})
    return calls


def test_build_trains_each_seed_into_its_run_and_records_the_seed(tmp_path, stub_training):
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text("{}")  # what `build` looks for: the training is stubbed
    out = tmp_path / "zoo"
    results = zoo.build(data, out, ["sparsemax", "bce"], epochs=1, seeds=2)
    assert stub_training == [("sparsemax", 0), ("bce", 0), ("sparsemax-seed1", 1), ("bce-seed1", 1)]
    assert {name: (r["recipe"], r["seed"], r["state"]) for name, r in results.items()} == {
        "sparsemax": ("sparsemax", 0, "trained"), "bce": ("bce", 0, "trained"),
        "sparsemax-seed1": ("sparsemax", 1, "trained"), "bce-seed1": ("bce", 1, "trained")}
    for name, r in results.items():
        config = runs.RunDirectory(out / name).config()
        assert (config.seed, config.loss, config.epochs) == (r["seed"], r["recipe"], 1)
        assert recipe_key(config) == recipe_key(runs.RunDirectory(out / r["recipe"]).config())
    assert zoo.seeds_in(out, zoo.recipes()["bce"]) == [1] and zoo.seeds_in(out, zoo.recipes()["focal"]) == []
    assert zoo.status(out, zoo.recipes()["bce"], 1)["state"] == "built"
    stub_training.clear()
    again = zoo.build(data, out, ["bce"], seeds=3)  # finished runs are skipped, the new seed trained
    assert stub_training == [("bce-seed2", 2)]
    assert [r["state"] for r in again.values()] == ["skipped", "skipped", "trained"]


def test_build_refuses_a_run_whose_seed_is_not_the_one_its_name_says(tmp_path, stub_training):
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text("{}")
    (tmp_path / "zoo" / "bce-seed1").mkdir(parents=True)
    (tmp_path / "zoo" / "bce-seed1" / runs.CONFIG).write_text(runs.TrainConfig(loss="bce", seed=5).to_toml())
    with pytest.raises(MlrsError, match="bce-seed1 holds a run with seed 5, not the seed 1"):
        zoo.build(data, tmp_path / "zoo", ["bce"], seeds=2)
    assert stub_training == []  # refused before any training
