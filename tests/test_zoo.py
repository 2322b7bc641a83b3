"""The zoo and the study in one command, end to end on the bundled sample: `mlrs zoo
build` (two recipes, one epoch), `mlrs compare`, `mlrs zoo publish --to`, then a Hugging
Face cache seeded from the published folder and `mlrs pull` / `mlrs explain` through
`hf://` offline; the HTML report in headless Chromium; bad input as one-line errors.
TensorFlow backend (the CLI's)."""

import json
import shutil

import numpy as np
import pytest
from conftest import one_line_error, run_mlrs, run_mlrs_here, seed_hub_cache
from huggingface_hub import ModelCard

from keras_mlrs import compare, data, losses, runs, zoo
from keras_mlrs.data.nomenclature import CLASS_NAMES
from keras_mlrs.explain import heatmaps

RECIPES = ("bce", "sparsemax")
ORG = "test-org"


def patch_folder():
    return sorted(p for p in data.sample_path().iterdir() if p.is_dir())[0]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Prepared sample, a zoo build of two recipes (1 epoch), their comparison and their
    published folders, all through the CLI."""
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()
    root = tmp_path_factory.mktemp("study")

    def mlrs(*args):
        result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.output

    mlrs("data", "prepare", data.sample_path(), "--out", root / "data", "--split", "random", "--workers", "1")
    first = mlrs("zoo", "build", "--data", root / "data", "--out", root / "zoo", "--losses", "bce", "--epochs", "1")
    again = mlrs("zoo", "build", "--data", root / "data", "--out", root / "zoo", "--losses", ",".join(RECIPES),
                 "--epochs", "1")
    listing = mlrs("zoo", "list", "--dir", root / "zoo", "--org", ORG)
    report = mlrs("compare", *(root / "zoo" / r for r in RECIPES), "--out", root / "report", "--patch", patch_folder(),
                  "--class", "Urban fabric", "--class", "11")
    published = mlrs("zoo", "publish", root / "zoo", "--org", ORG, "--to", root / "published")
    return {"root": root, "first": first, "again": again, "list": listing, "compare": report, "publish": published}


def test_every_registered_loss_has_a_recipe_with_the_study_setup():
    recipes = zoo.recipes()
    assert set(recipes) == set(losses.names())
    study = [r.name for r in recipes.values() if r.study]
    assert study == ["bce", "focal", "weighted_bce", "hamming", "huber", "ranking", "sparsemax"]
    assert list(recipes)[:7] == study
    for recipe in recipes.values():
        config = recipe.config("")
        assert (config.loss, config.model, config.model_params["fc_units"]) == (recipe.name, "kbranch", 1024)
        assert (config.optimizer, config.lr, config.batch_size, config.epochs, config.split) == (
            "rmsprop", 1e-4, 1024, 80, "official")
        assert recipe.repo_id("org") == f"org/ben19-kbranch-{recipe.name.replace('_', '-')}"


def test_zoo_build_trains_each_recipe_once_and_skips_finished_ones(study):
    root = study["root"]
    assert "trained" in study["first"]
    again = study["again"]
    assert "bce: already built (1 epochs), skipped" in again and "sparsemax: training 1 epochs" in again
    for name in RECIPES:
        state = runs.read_state(root / "zoo" / name)
        assert state["finished"] and state["epoch"] == 1
        assert (root / "zoo" / name / "evaluation-test" / "report.json").is_file()
    assert "ben19-kbranch-sparsemax" in study["list"] and "yes (1 epochs)" in study["list"]
    assert zoo.status(root / "zoo", zoo.recipes()["focal"])["state"] == "not built"


def test_compare_reports_each_runs_own_evaluation_with_every_section(study):
    root = study["root"]
    out = root / "report"
    result = json.loads((out / "report.json").read_text())
    assert list(result["runs"]) == list(RECIPES)
    for name in RECIPES:
        own = json.loads((root / "zoo" / name / "evaluation-test" / "report.json").read_text())
        for a in compare.AVERAGES:
            assert result["overall"][name][a] == {s: own[a][s] for s in compare.SCORES}
        assert result["per_class_f1"][name] == {c: own["per_class"][c]["f1"] for c in CLASS_NAMES}
        history = runs.read_state(root / "zoo" / name)["history"]
        assert result["efficiency"][name]["epochs"] == len(history) == 1
        reached = result["efficiency"][name]["first_epoch_reaching_target"]
        assert reached == (1 if history[0]["val_f1_samples"] >= 0.55 else None)
    assert result["decision"] == {"bce": "sigmoid", "sparsemax": "sparsemax_support"}
    [lrp] = result["lrp"]
    assert lrp["patch"] == patch_folder().name and lrp["classes"] == [CLASS_NAMES[0], CLASS_NAMES[11]]
    md = (out / "report.md").read_text()
    for title in compare.SECTIONS.values():
        assert f"## {title}" in md
    for figure in ("per_class_f1.png", "learning_curves.png", f"lrp_{patch_folder().name}.png"):
        assert (out / "figures" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/{figure}" in md


def test_compare_highlights_the_best_run_of_each_row_only_when_runs_differ():
    assert compare.best([0.5, 0.7, 0.7, None]) == {1, 2}
    assert compare.best([0.0, 0.0]) == set() and compare.best([None, 0.3]) == set()


def test_the_html_report_opens_in_headless_chromium_without_errors(study):
    """Every section is shown, every embedded figure decodes, nothing is requested from the
    network, and no script or console error occurs."""
    from playwright.sync_api import sync_playwright

    page_file = study["root"] / "report" / "report.html"
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: problems.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.on("requestfailed", lambda r: problems.append(f"failed {r.url}"))
        page.goto(page_file.resolve().as_uri())
        for anchor, title in compare.SECTIONS.items():
            assert page.is_visible(f"section#{anchor} h2"), anchor
            assert page.inner_text(f"section#{anchor} h2") == title
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        assert len(images) == 3 and all(done and width > 100 for _, done, width in images), images
        rows = page.evaluate("document.querySelectorAll('section#per-class tr').length")
        assert rows == 1 + len(CLASS_NAMES)
        browser.close()
    assert problems == []


def test_published_models_load_and_explain_offline_through_hf(study, tmp_path):
    root = study["root"]
    folder = root / "published" / "ben19-kbranch-sparsemax"
    card = ModelCard.load(folder / "README.md")
    own = json.loads((root / "zoo" / "sparsemax" / "evaluation-test" / "report.json").read_text())
    f1 = {r.metric_config: r.metric_value for r in card.data.eval_results if r.metric_type == "f1"}
    assert f1 == pytest.approx({a: own[a]["f1"] for a in compare.AVERAGES}, abs=1e-6)
    assert card.data.to_dict()["keras_mlrs"]["recipe"] == "sparsemax"
    assert sorted(p.name for p in (root / "published").iterdir()) == ["ben19-kbranch-bce", "ben19-kbranch-sparsemax"]

    seed_hub_cache(folder, f"{ORG}/ben19-kbranch-sparsemax", tmp_path / "cache")
    env = {"HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "KERAS_BACKEND": "tensorflow",
           "COLUMNS": "200"}
    pulled = run_mlrs("pull", f"{ORG}/ben19-kbranch-sparsemax", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert "sparsemax(z) > 0" in pulled.stdout and "F1 (samples) (test)" in pulled.stdout
    patch = patch_folder()
    done = run_mlrs("explain", patch, "--model", f"hf://{ORG}/ben19-kbranch-sparsemax", "-c", "Urban fabric",
                    "--out", tmp_path / "explained", env=env)
    assert done.returncode == 0, done.stderr
    local = heatmaps.explain_patch(runs.load_model(root / "zoo" / "sparsemax"), data.read_patch(patch), [0])
    np.testing.assert_allclose(np.load(tmp_path / "explained" / f"{patch.name}_lrp.npy"), local.relevance,
                               rtol=1e-5, atol=1e-7 * float(np.abs(local.relevance).max()))
    one_line_error(run_mlrs("pull", f"{ORG}/ben19-kbranch-focal", env=env),
                   f"hf://{ORG}/ben19-kbranch-focal is neither in the local Hugging Face cache")


def test_bad_zoo_and_compare_inputs_are_one_line_errors_that_write_nothing(study, tmp_path, capsys):
    root = study["root"]
    one_line_error(run_mlrs_here(capsys, "zoo", "build", "--data", root / "data", "--out", tmp_path / "z",
                                 "--losses", "focall"), "unknown zoo recipe 'focall'", "Did you mean 'focal'?")
    one_line_error(run_mlrs_here(capsys, "zoo", "publish", root / "zoo", "--org", "bad org", "--to", tmp_path / "p"),
                   "is not a Hub repository id; give ORG/NAME")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(root / "zoo" / "bce" / runs.CONFIG, unfinished / runs.CONFIG)
    one_line_error(run_mlrs_here(capsys, "compare", root / "zoo" / "bce", unfinished, "--out", tmp_path / "r"),
                   f"run {unfinished} has no finished model")
    incompatible = tmp_path / "incompatible"
    shutil.copytree(root / "published" / "ben19-kbranch-bce", incompatible)
    card = ModelCard.load(incompatible / "README.md")
    card.data.keras_mlrs = {**card.data.keras_mlrs, "nomenclature": "UC Merced (17 classes)"}
    card.save(incompatible / "README.md")
    one_line_error(run_mlrs_here(capsys, "explain", patch_folder(), "--model", incompatible, "-c", "0", "--out",
                                 tmp_path / "e"), "declares nomenclature 'UC Merced (17 classes)'")
    assert not any((tmp_path / n).exists() for n in ("z", "p", "r", "e"))
