"""`recipe_key`: one name for the runs of one recipe, whatever their seed, data path or way of
running; another for any change in what is trained."""

import pytest

from keras_mlrs.hub import recipes as zoo
from keras_mlrs.runs.config import NOT_RECIPE, TrainConfig, recipe_identity, recipe_key

pytestmark = pytest.mark.backend_free  # configurations only: no Keras numerics


def test_runs_of_one_recipe_share_a_key_whatever_the_seed_data_or_execution():
    focal = zoo.recipes()["focal"]
    key = recipe_key(focal.config("", seed=0))
    assert key.startswith("focal-") and len(key) == len("focal-") + 12
    assert recipe_key(focal.config("/data/ben19", seed=3)) == key
    varied = TrainConfig.from_dict({**focal.train, "seed": 7, "data": "/elsewhere", "keep_every": 0,
                                    "distribute": "mirrored", "pipeline": "numpy", "jit": False})
    assert recipe_key(varied) == key
    assert set(NOT_RECIPE) == {"seed", "data", "keep_every", "distribute", "pipeline", "jit"}


def test_defaults_written_out_or_left_out_and_int_or_float_spellings_are_one_recipe():
    assert recipe_key(TrainConfig(loss="focal")) == recipe_key(TrainConfig(loss="focal", loss_params={"gamma": 2}))
    assert recipe_key(TrainConfig(model_params={"units": 1024})) == recipe_key(TrainConfig(model_params={"units": 1024.0}))
    assert recipe_identity(TrainConfig(loss="focal"))["loss_params"]["gamma"] == 2.0
    assert "seed" not in recipe_identity(TrainConfig(seed=4)) and recipe_identity(TrainConfig())["epochs"] == 80


@pytest.mark.parametrize("change", [{"loss": "sparsemax", "loss_params": {}}, {"loss_params": {"gamma": 3.0}}, {"epochs": 1},
                                    {"model_params": {"units": 128}}, {"lr": 1e-3}, {"batch_size": 512},
                                    {"optimizer": "adam"}, {"mixed_precision": True}])
def test_a_change_in_what_is_trained_is_another_recipe(change):
    base = {"loss": "focal", "loss_params": {"gamma": 2.0}}
    assert recipe_key(TrainConfig.from_dict({**base, **change})) != recipe_key(TrainConfig.from_dict(base))


def test_the_key_survives_the_run_directory_config_toml(tmp_path):
    config = zoo.recipes()["weighted_bce"].config(tmp_path, seed=2)
    (tmp_path / "config.toml").write_text(config.to_toml())
    assert recipe_key(TrainConfig.from_toml(tmp_path / "config.toml")) == recipe_key(config)
