"""The zoo's recipes: one per registered loss, each with the study's setup."""

import pytest

from keras_mlrs.core import losses
from keras_mlrs.errors import MlrsError
from keras_mlrs.hub import recipes as zoo


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
