"""`mlrs zoo list` says what is on the Hub (huggingface_hub's API replaced: nothing reaches
the network) and `mlrs zoo build --seeds` refuses a count below one. Nothing is trained
here; tests/e2e/test_zoo_to_hub.py builds and publishes."""

import json

import huggingface_hub
import pytest

from helpers import one_line_error, run_mlrs_here
from keras_mlrs import runs
from keras_mlrs.hub import recipes as zoo

pytestmark = pytest.mark.backend_free  # tables and refusals: no Keras numerics


def rows(output):
    """The table's rows of `mlrs zoo list`, by recipe: the cells."""
    found = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] in zoo.recipes():
            found[cells[0]] = cells
    return found


@pytest.fixture
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")


def test_zoo_list_offline_says_not_checked_instead_of_implying_the_repositories_exist(wide, tmp_path, capsys,
                                                                                     monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    asked = []
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *a, **k: asked.append(a))
    result = run_mlrs_here(capsys, "zoo", "list", "--dir", tmp_path, "--org", "my-lab")
    assert result.returncode == 0, result.stderr
    table = rows(result.stdout)
    assert set(table) == set(zoo.recipes()) and asked == []
    assert all(cells[2] == f"my-lab/{zoo.recipes()[name].repo}" and cells[3] == "not checked: offline"
               for name, cells in table.items())
    assert "on the Hub" in result.stdout and "not checked (HF_HUB_OFFLINE is set)" in result.stdout
    assert "not a sign that it exists" in result.stdout


def test_zoo_list_online_shows_published_and_not_published(wide, tmp_path, capsys, monkeypatch):
    def model_info(self, repo, timeout=None, **kwargs):
        assert timeout is not None and timeout <= 10  # never an unbounded wait
        if repo != "my-lab/ben19-kbranch-focal":
            raise huggingface_hub.errors.RepositoryNotFoundError.__new__(huggingface_hub.errors.RepositoryNotFoundError)
        return object()

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    result = run_mlrs_here(capsys, "zoo", "list", "--dir", tmp_path, "--org", "my-lab")
    assert result.returncode == 0, result.stderr
    states = {name: cells[3] for name, cells in rows(result.stdout).items()}
    assert states.pop("focal") == "published" and set(states.values()) == {"not published"}
    assert f"On the Hub: 1 of {len(zoo.recipes())} recipes published under my-lab/" in result.stdout


def test_zoo_list_without_asking_the_hub(wide, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *a, **k: pytest.fail("the Hub was asked"))
    result = run_mlrs_here(capsys, "zoo", "list", "--dir", tmp_path, "--no-hub")
    assert result.returncode == 0, result.stderr
    assert {cells[3] for cells in rows(result.stdout).values()} == {"not checked"}


@pytest.mark.parametrize("seeds", ["0", "-2"])
def test_zoo_build_refuses_fewer_than_one_seed_in_one_line_writing_nothing(tmp_path, capsys, seeds):
    out = tmp_path / "zoo"
    one_line_error(run_mlrs_here(capsys, "zoo", "build", "--data", tmp_path / "data", "--out", out, "--seeds", seeds),
                   f"--seeds must be at least 1 (the number of seeds per recipe), got {seeds}")
    assert list(tmp_path.iterdir()) == []


def test_zoo_list_shows_the_other_seeds_built(wide, tmp_path, capsys):
    for name, seed, finished in (("bce", 0, True), ("bce-seed1", 1, True), ("bce-seed2", 2, False),
                                 ("bce-seedling", 0, True)):  # the last is no seed of bce's
        run = tmp_path / name
        (run / "evaluation-test").mkdir(parents=True)
        (run / runs.CONFIG).write_text(zoo.recipes()["bce"].config("", seed=seed).to_toml())
        (run / "state.json").write_text(json.dumps({"finished": finished, "epoch": 80, "history": [], "best": None}))
        (run / "evaluation-test" / "report.json").write_text("{}")
    result = run_mlrs_here(capsys, "zoo", "list", "--dir", tmp_path, "--no-hub")
    assert result.returncode == 0, result.stderr
    table = rows(result.stdout)
    assert table["bce"][-1] == "yes (80 epochs); seeds 1, 2: 1 of 2 built" and table["focal"][-1] == "no"
