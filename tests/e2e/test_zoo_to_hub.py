"""The zoo and the study in one command, end to end on the bundled sample: `mlrs zoo
build` (two recipes, one epoch), `mlrs compare`, `mlrs zoo publish --to`, then a Hugging
Face cache seeded from the published folder and `mlrs pull` / `mlrs explain` through
`hf://` offline; the HTML report in headless Chromium; bad input as one-line errors.
TensorFlow backend (the CLI's)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard

from helpers import PNG, figure_title, one_line_error, run_mlrs_here, seed_hub_cache
from keras_mlrs import data, runs
from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.core.metrics import SCORES, STUDY_AVERAGES
from keras_mlrs.explain import heatmaps
from keras_mlrs.hub import recipes as zoo
from keras_mlrs.study import compare

RECIPES = ("bce", "sparsemax")
ORG = "test-org"


def patch_folder():
    return sorted(p for p in data.sample_path().iterdir() if p.is_dir())[0]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study's path through the CLI: `mlrs demo` (the sample prepared, bce and sparsemax
    trained narrow for one epoch into runs/), `mlrs zoo build` of bce (built by
    the demo in the zoo's layout) and focal, `mlrs zoo list`, `mlrs compare` of bce and
    sparsemax, and `mlrs zoo publish --to` of those two."""
    from typer.testing import CliRunner

    from keras_mlrs.cli.main import app

    runner = CliRunner()
    root = tmp_path_factory.mktemp("study")

    def mlrs(*args):
        result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.output

    demo = mlrs("demo", "--out", root, "--epochs", "1", "--units", "16")  # narrow: the pipeline is the point
    zoo_dir = root / "runs"
    build = mlrs("zoo", "build", "--data", root / "data", "--out", zoo_dir, "--losses", "bce,focal", "--epochs", "1",
                 "--model-param", "units=16")  # as narrow as the demo's (the study's width is tested in tests/models)
    listing = mlrs("zoo", "list", "--dir", zoo_dir, "--org", ORG, "--no-hub")  # the Hub is never asked in tests
    report = mlrs("compare", *(zoo_dir / r for r in RECIPES), "--out", root / "report", "--patch", patch_folder(),
                  "--class", "Urban fabric", "--class", "11", "--landscape-points", "3")
    published = mlrs("zoo", "publish", zoo_dir, "--org", ORG, "--to", root / "published", "--losses",
                     ",".join(RECIPES))
    return {"root": root, "zoo": zoo_dir, "demo": demo, "build": build, "list": listing, "compare": report,
            "publish": published}


def test_the_demo_runs_the_pipeline_on_the_sample(study):
    """`mlrs demo`, the main job: prepare, train two losses, evaluate, predict, explain."""
    assert "not accuracy" in study["demo"]
    summary = json.loads((study["root"] / "summary.json").read_text())
    assert set(summary["runs"]) == {"bce", "sparsemax"}
    assert summary["splits"] == {"train": 3, "validation": 1, "test": 1}
    for r in summary["runs"].values():
        assert (Path(r["run_dir"]) / runs.BEST).is_file()
        report = json.loads((Path(r["evaluation"]) / "report.json").read_text())
        assert report["split"] == "test" and report["patches"] == 1
        assert r["test"]["samples"] == report["samples"]
        assert set(r["prediction"]["predicted"]) <= set(data.CLASS_NAMES)
        assert r["prediction"]["true"]
    assert summary["runs"]["sparsemax"]["decision"] == "sparsemax(z) > 0"
    assert Path(summary["explanation"]).read_bytes()[:8] == PNG
    for r in summary["runs"].values():  # calibrated on the validation patch, beside the loss's own rule
        calibrated = r["calibrated"]
        assert calibrated["validation"]["calibrated"]["samples"] >= calibrated["validation"]["fixed"]["samples"]
        assert calibrated["validation"] == runs.read_calibration(r["run_dir"])["scores"]
        assert calibrated["calibration"] == str(Path(r["run_dir"]) / runs.CALIBRATION)
        assert 0 <= calibrated["test"]["samples"]["f1"] <= 1 and set(calibrated["predicted"]) <= set(CLASS_NAMES)
    assert "Per-class thresholds calibrated on the validation patch" in study["demo"]


def test_zoo_build_trains_each_recipe_once_and_skips_finished_ones(study):
    zoo_dir, build = study["zoo"], study["build"]
    assert "bce: already built (1 epochs), skipped" in build and "focal: training 1 epochs" in build
    for name in ("bce", "sparsemax", "focal"):
        state = runs.read_state(zoo_dir / name)
        assert state["finished"] and state["epoch"] == 1
        assert (zoo_dir / name / "evaluation-test" / "report.json").is_file()
    assert runs.RunDirectory(zoo_dir / "focal").config() == zoo.recipes()["focal"].config(
        study["root"] / "data", epochs=1, model_params={"units": 16})
    assert "ben19-kbranch-sparsemax" in study["list"] and "yes (1 epochs)" in study["list"]
    assert zoo.status(zoo_dir, zoo.recipes()["hamming"])["state"] == "not built"


def test_compare_reports_each_runs_own_evaluation_with_every_section(study):
    root = study["root"]
    out = root / "report"
    result = json.loads((out / "report.json").read_text())
    assert list(result["runs"]) == list(RECIPES)
    for name in RECIPES:
        own = json.loads((study["zoo"] / name / "evaluation-test" / "report.json").read_text())
        for a in STUDY_AVERAGES:
            assert result["overall"][name][a] == {s: own[a][s] for s in SCORES}
        assert result["per_class_f1"][name] == {c: own["per_class"][c]["f1"] for c in CLASS_NAMES}
        history = runs.read_state(study["zoo"] / name)["history"]
        assert result["efficiency"][name]["epochs"] == len(history) == 1
        reached = result["efficiency"][name]["first_epoch_reaching_target"]
        assert reached == (1 if history[0]["val_f1_samples"] >= 0.55 else None)
    assert result["decision"] == {"bce": "sigmoid", "sparsemax": "sparsemax_support"}
    [lrp] = result["lrp"]
    assert lrp["patch"] == patch_folder().name and lrp["classes"] == [CLASS_NAMES[0], CLASS_NAMES[11]]
    md = (out / "report.md").read_text()
    for title in compare.SECTIONS.values():
        assert f"## {title}" in md
    # every figure: a 300 dpi PNG and a PDF, titled with the runs (and checkpoint), linked from the report
    for figure in ("per_class_f1.png", "learning_curves.png", f"lrp_{patch_folder().name}.png"):
        assert "bce, sparsemax" in figure_title(out / "figures" / figure), figure
        assert f"figures/{figure}" in md and f"figures/{figure.replace('.png', '.pdf')}" in md
    assert "test split" in figure_title(out / "figures" / "per_class_f1.png")
    assert "final epoch 1 each" in figure_title(out / "figures" / f"lrp_{patch_folder().name}.png")


def test_the_html_report_opens_in_headless_chromium_without_errors(study):
    """Every section is shown, every embedded figure decodes and is linked to its PNG and PDF
    files, a click on the LRP grid shows it enlarged (at its full resolution) until Escape,
    nothing is requested from the network, and no script or console error occurs."""
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
        images = page.evaluate("Array.from(document.querySelectorAll('figure img'))"
                               ".map(i => [i.alt, i.complete, i.naturalWidth])")
        # per-class F1, learning curves, the LRP grid, perturbation curves, a spectral profile per run, landscapes
        assert len(images) == 7 and all(done and width > 100 for _, done, width in images), images
        links = page.evaluate("Array.from(document.querySelectorAll('figcaption a')).map(a => a.getAttribute('href'))")
        figures = sorted(p.name for p in (page_file.parent / "figures").iterdir())
        assert sorted(Path(link).name for link in links) == figures and len(figures) == 14
        assert all((page_file.parent / link).is_file() for link in links)
        grid = f"section#lrp figure img[alt='LRP of {patch_folder().name}']"
        shown = page.evaluate(f"document.querySelector(\"{grid}\").getBoundingClientRect().width")
        assert not page.is_visible("#zoom")
        page.click(grid)
        assert page.is_visible("#zoom")
        natural, enlarged = page.evaluate("[document.querySelector('#zoom img').naturalWidth, "
                                          "document.querySelector('#zoom img').getBoundingClientRect().width]")
        assert natural == images[2][2] and enlarged == natural > shown  # the 300 dpi figure, pixel for pixel
        page.keyboard.press("Escape")
        assert not page.is_visible("#zoom")
        rows = page.evaluate("document.querySelectorAll('section#per-class tr').length")
        assert rows == 1 + len(CLASS_NAMES)
        browser.close()
    assert problems == []


def test_published_models_load_and_explain_offline_through_hf(study, tmp_path, capsys, monkeypatch):
    root = study["root"]
    folder = root / "published" / "ben19-kbranch-sparsemax"
    card = ModelCard.load(folder / "README.md")
    own = json.loads((study["zoo"] / "sparsemax" / "evaluation-test" / "report.json").read_text())
    f1 = {r.metric_config: r.metric_value for r in card.data.eval_results if r.metric_type == "f1"}
    assert f1 == pytest.approx({a: own[a]["f1"] for a in STUDY_AVERAGES}, abs=1e-6)
    assert card.data.to_dict()["keras_mlrs"]["recipe"] == "sparsemax"
    assert sorted(p.name for p in (root / "published").iterdir()) == ["ben19-kbranch-bce", "ben19-kbranch-sparsemax"]

    import huggingface_hub

    seed_hub_cache(folder, f"{ORG}/ben19-kbranch-sparsemax", tmp_path / "cache")
    # as HF_HUB_CACHE and HF_HUB_OFFLINE=1 set them (huggingface_hub reads both at import)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("COLUMNS", "200")
    pulled = run_mlrs_here(capsys, "pull", f"{ORG}/ben19-kbranch-sparsemax")
    assert pulled.returncode == 0, pulled.stderr
    assert "sparsemax(z) > 0" in pulled.stdout and "F1 (samples) (test)" in pulled.stdout
    patch = patch_folder()
    done = run_mlrs_here(capsys, "explain", patch, "--model", f"hf://{ORG}/ben19-kbranch-sparsemax", "-c",
                         "Urban fabric", "--out", tmp_path / "explained")
    assert done.returncode == 0, done.stderr
    local = heatmaps.explain_patch(runs.load_model(study["zoo"] / "sparsemax"), data.read_patch(patch), [0])
    np.testing.assert_allclose(np.load(tmp_path / "explained" / f"{patch.name}_lrp.npy"), local.relevance,
                               rtol=1e-5, atol=1e-7 * float(np.abs(local.relevance).max()))
    one_line_error(run_mlrs_here(capsys, "pull", f"{ORG}/ben19-kbranch-focal"),
                   f"hf://{ORG}/ben19-kbranch-focal is not in the local Hugging Face cache")


def test_published_models_carry_their_calibrated_thresholds_through_hf(study, tmp_path, capsys, monkeypatch):
    """The demo calibrated its runs: `mlrs zoo publish` carries each one's calibration.json
    (its hash declared in the card, which describes it), `--thresholds calibrated` applies it
    from hf:// as from the run, and thresholds changed in the cache are refused."""
    import huggingface_hub

    repo, run = f"{ORG}/ben19-kbranch-bce", study["zoo"] / "bce"
    folder = study["root"] / "published" / "ben19-kbranch-bce"
    assert (folder / runs.CALIBRATION).read_bytes() == (run / runs.CALIBRATION).read_bytes()
    card = ModelCard.load(folder / "README.md")
    meta = card.data.to_dict()["keras_mlrs"]
    assert meta["calibration"]["decision"] == runs.read_calibration(run)["decision"] and runs.CALIBRATION in meta["files"]
    assert "## Calibrated thresholds" in card.text and f"mlrs evaluate hf://{repo} --thresholds calibrated" in card.text
    snapshot = seed_hub_cache(folder, repo, tmp_path / "cache")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("COLUMNS", "200")
    pulled = run_mlrs_here(capsys, "pull", repo)
    assert pulled.returncode == 0 and "calibrated thresholds" in pulled.stdout, pulled.stderr
    patch = data.read_patch(patch_folder())
    done = run_mlrs_here(capsys, "predict", f"hf://{repo}", patch_folder(), "--json", "--thresholds", "calibrated")
    assert done.returncode == 0, done.stderr
    model = runs.load_model(run)
    [local] = runs.predict(model, [patch], decision=runs.calibrated_rule(run, model))
    assert json.loads(done.stdout)[0]["labels"] == local["labels"]
    (snapshot / runs.CALIBRATION).resolve().write_text((folder / runs.CALIBRATION).read_text().replace("0.5", "0.6"))
    one_line_error(run_mlrs_here(capsys, "predict", f"hf://{repo}", patch_folder(), "--thresholds", "calibrated"),
                   "calibration.json is not the file its model card declares")


def test_bad_zoo_and_compare_inputs_are_one_line_errors_that_write_nothing(study, tmp_path, capsys):
    root = study["root"]
    one_line_error(run_mlrs_here(capsys, "zoo", "build", "--data", root / "data", "--out", tmp_path / "z",
                                 "--losses", "focall"), "unknown zoo recipe 'focall'", "Did you mean 'focal'?")
    one_line_error(run_mlrs_here(capsys, "zoo", "publish", study["zoo"], "--org", "bad org", "--to", tmp_path / "p"),
                   "is not a Hub repository id; give ORG/NAME")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(study["zoo"] / "bce" / runs.CONFIG, unfinished / runs.CONFIG)
    one_line_error(run_mlrs_here(capsys, "compare", study["zoo"] / "bce", unfinished, "--out", tmp_path / "r"),
                   f"run {unfinished} has no finished model")
    incompatible = tmp_path / "incompatible"
    shutil.copytree(root / "published" / "ben19-kbranch-bce", incompatible)
    card = ModelCard.load(incompatible / "README.md")
    card.data.keras_mlrs = {**card.data.keras_mlrs, "nomenclature": "UC Merced (17 classes)"}
    card.save(incompatible / "README.md")
    one_line_error(run_mlrs_here(capsys, "explain", patch_folder(), "--model", incompatible, "-c", "0", "--out",
                                 tmp_path / "e"), "declares nomenclature 'UC Merced (17 classes)'")
    assert not any((tmp_path / n).exists() for n in ("z", "p", "r", "e"))
    # folders of the user's that look like outputs are never replaced (a report.json, a config.json)
    for name, command in (("report.json", ["compare", study["zoo"] / "bce", "--out"]),
                          ("config.json", ["push", study["zoo"] / "bce", "--repo", "org/x", "--to"])):
        theirs = tmp_path / f"theirs-{name}"
        theirs.mkdir()
        (theirs / name).write_text("the user's")
        one_line_error(run_mlrs_here(capsys, *command, theirs), f"{theirs} exists and holds no", "written by keras-mlrs")
        assert [p.name for p in theirs.iterdir()] == [name] and (theirs / name).read_text() == "the user's"
