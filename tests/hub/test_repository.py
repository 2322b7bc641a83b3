"""The Hugging Face Hub, offline: the exported repository and its model card, loading it
back from a folder and from a seeded cache (HF_HUB_OFFLINE=1), refusing incompatible
cards, and pushing through huggingface_hub's API (replaced by a recorder: nothing is
uploaded). TensorFlow backend (the CLI's)."""

import json
import shutil

import keras
import numpy as np
import pytest
from huggingface_hub import ModelCard

from helpers import one_line_error, run_mlrs_here, seed_hub_cache
from keras_mlrs import data, hub, runs
from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.core.decision import rule_of
from keras_mlrs.files import OWNER_MARK
from keras_mlrs.models import patch_inputs

REPO = "test-org/kbranch-tiny"


@pytest.fixture(scope="module")
def run(tiny_runs):
    """The session's finished sparsemax run of a narrow K-Branch CNN on the prepared sample."""
    return tiny_runs["sparsemax"][0]


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache of this test, with the Hub offline (as HF_HUB_CACHE and
    HF_HUB_OFFLINE=1 set them; the subprocess tests set the variables themselves)."""
    import huggingface_hub

    cache = tmp_path / "cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    return hub.export(run, tmp_path_factory.mktemp("export") / "repo", REPO)


def test_the_card_parses_offline_and_its_model_index_gives_the_evaluated_metrics(run, exported):
    card = ModelCard.load(exported / "README.md")
    report = json.loads((run / "evaluation-test" / "report.json").read_text())
    d = card.data
    assert (d.library_name, d.license, d.pipeline_tag) == ("keras", "apache-2.0", "image-classification")
    assert {"remote-sensing", "sentinel-2", "bigearthnet", "multi-label-classification", "loss-sparsemax"} <= set(d.tags)
    assert d.datasets == ["bigearthnet"]
    results = {(r.metric_type, r.metric_config): r for r in d.eval_results}
    assert len(results) == 9  # precision, recall, F1 x micro, macro, samples
    for (score, average), r in results.items():
        assert r.dataset_split == "test" and r.task_type == "image-classification"
        assert r.metric_value == pytest.approx(report[average][score], abs=1e-6)
    meta = d.to_dict()[hub.CARD_KEY]
    assert meta["nomenclature"] == "BigEarthNet-19" and meta["classes"] == list(CLASS_NAMES)
    assert meta["bands"]["b10m"] == ["B04", "B03", "B02", "B08"] and meta["input_layout"] == "groups"
    assert meta["loss"] == "sparsemax" and meta["decision"]["name"] == "sparsemax_support"
    text = card.text
    for needle in ("sparsemax_support", "Urban fabric", "Marine waters", "B8A", "RMSprop".lower(), "from_pretrained",
                   "keras.saving.load_model", "images/learning_curve.png", "images/lrp_example.png"):
        assert needle in text.lower() or needle in text, needle
    for image in ("learning_curve.png", "per_class_f1.png", "lrp_example.png"):
        assert (exported / "images" / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in exported.iterdir()) == [  # and the mark that it is keras-mlrs's (not uploaded)
        OWNER_MARK, "README.md", "config.json", "images", "metadata.json", "model.weights.h5", "training"]


def test_the_exported_folder_loads_with_plain_keras_and_keras_mlrs_alike(run, exported):
    original = runs.load_model(run)
    patch = data.read_patch(sorted(p for p in data.sample_path().iterdir() if p.is_dir())[0])
    x = patch_inputs(patch, "groups")
    plain = keras.saving.load_model(exported)  # the folder is Keras' own Hub layout
    ours = hub.from_pretrained(str(exported))
    for model in (plain, ours):
        np.testing.assert_array_equal(model.predict_on_batch(x), original.predict_on_batch(x))
        assert rule_of(model).name == "sparsemax_support"
    import h5py

    with h5py.File(exported / "model.weights.h5") as weights:  # no optimizer state is published
        assert sorted(weights["optimizer"]["vars"]) == ["0", "1"]  # iterations and learning rate only


def test_a_model_from_a_seeded_cache_loads_offline_by_every_name(run, exported, offline_cache):
    """keras_mlrs.from_pretrained('ORG/NAME'), 'hf://ORG/NAME' and a revision, offline, with the
    cache in the layout huggingface_hub writes; an uncached repository or revision is a
    one-line error."""
    import keras_mlrs

    seed_hub_cache(exported, REPO, offline_cache)
    seed_hub_cache(exported, REPO, offline_cache, commit="1" * 40, branch="v1")
    patch = sorted(p for p in data.sample_path().iterdir() if p.is_dir())[0]
    x = patch_inputs(data.read_patch(patch), "groups")
    expected = runs.load_model(run).predict_on_batch(x)
    for name, revision in ((REPO, None), (f"hf://{REPO}", None), (REPO, "v1")):
        np.testing.assert_array_equal(keras_mlrs.from_pretrained(name, revision=revision).predict_on_batch(x), expected)
    with pytest.raises(hub.HubError, match="hf://test-org/absent is not in the local Hugging Face cache .* and "
                                           "HF_HUB_OFFLINE is set"):
        keras_mlrs.from_pretrained("test-org/absent")
    with pytest.raises(hub.HubError, match="HF_HUB_OFFLINE"):
        keras_mlrs.from_pretrained(REPO, revision="v2")


def _with_card(exported, tmp_path, name, change):
    folder = tmp_path / name
    shutil.copytree(exported, folder)
    card = ModelCard.load(folder / "README.md")
    meta = card.data.to_dict()[hub.CARD_KEY]
    change(meta)
    setattr(card.data, hub.CARD_KEY, meta)
    card.save(folder / "README.md")
    return folder


def test_cards_declaring_another_nomenclature_class_order_or_band_layout_are_refused(exported, tmp_path):
    def other_nomenclature(meta):
        meta["nomenclature"] = "BigEarthNet-43"

    def alphabetical(meta):
        meta["classes"] = sorted(meta["classes"])  # the alphabetical-order trap of other libraries

    def rgb_first(meta):
        meta["bands"]["b10m"] = ["B02", "B03", "B04", "B08"]

    cases = {"nomenclature": (other_nomenclature, "declares nomenclature 'BigEarthNet-43'"),
             "order": (alphabetical, "in another order"), "bands": (rgb_first, "declares the band layout")}
    for name, (change, message) in cases.items():
        folder = _with_card(exported, tmp_path, name, change)
        with pytest.raises(hub.HubError, match=message):
            hub.from_pretrained(str(folder))
        with pytest.raises(hub.HubError, match=message):
            hub.load_model(folder)  # every --model takes the same path


def test_a_model_of_another_class_count_under_a_bigearthnet_19_card_is_refused(exported, tmp_path):
    """The card says BigEarthNet-19 but the weights are a 43-class model's: refused on load
    (here a card without file hashes, as older exports have, so the class count is what
    catches it)."""
    folder = _with_card(exported, tmp_path, "forty-three", lambda meta: meta.pop("files"))
    other = keras.Sequential([keras.Input((120, 120, 12)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(43)])
    keras.saving.save_model(other, tmp_path / "saved", zipped=False)
    for name in ("config.json", "model.weights.h5", "metadata.json"):
        shutil.copy(tmp_path / "saved" / name, folder / name)
    with pytest.raises(hub.HubError, match="the model outputs 43 logits, but keras-mlrs models predict the 19"):
        hub.load_model(folder)


def test_repository_ids_must_be_org_slash_name():
    assert hub.repo_id("hf://my-lab/ben19.kbranch_focal") == "my-lab/ben19.kbranch_focal"
    for bad in ("nonsense", "a/b/c", "org/", "/name", "org/na me", "org/-name", "org/na--me", "hf://"):
        with pytest.raises(hub.HubError, match="is not a Hub repository id; give ORG/NAME"):
            hub.repo_id(bad)


class RecordingApi:
    """Stands in for huggingface_hub.HfApi: records the calls and the uploaded content."""

    calls: list = []

    def __init__(self, token=None, **kwargs):
        RecordingApi.calls.append(("init", token))

    def create_repo(self, repo_id, private=False, exist_ok=False):
        RecordingApi.calls.append(("create_repo", repo_id, private, exist_ok))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, branch, exist_ok=False):
        RecordingApi.calls.append(("create_branch", repo_id, branch))

    def upload_folder(self, repo_id, folder_path, revision=None, commit_message=None, ignore_patterns=()):
        import fnmatch
        from pathlib import Path

        files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file()
                       and not any(fnmatch.fnmatch(str(p.relative_to(folder_path)), g) for g in ignore_patterns))
        card = ModelCard.load(Path(folder_path) / "README.md")
        RecordingApi.calls.append(("upload_folder", repo_id, revision, files, card.data.model_name))


def test_weights_changed_in_the_cache_are_refused(exported, offline_cache):
    """The card declares the SHA-256 of the model files: weights zeroed in the cache (here:
    the blob behind model.weights.h5) are refused instead of loading as a silently wrong model."""
    snapshot = seed_hub_cache(exported, REPO, offline_cache)
    meta = ModelCard.load(exported / "README.md").data.to_dict()[hub.CARD_KEY]
    assert set(meta["files"]) == {"config.json", "metadata.json", "model.weights.h5"}
    weights = (snapshot / "model.weights.h5").resolve()
    weights.write_bytes(bytes(weights.stat().st_size))
    with pytest.raises(hub.HubError, match="model.weights.h5 is not the file its model card declares"):
        hub.from_pretrained(REPO)


def test_an_unreachable_hub_is_named_as_such_when_not_offline(monkeypatch):
    import huggingface_hub

    def unreachable(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(hub.HubError, match="not in the local Hugging Face cache and the Hub could not be reached") as err:
        hub.download("test-org/absent")
    assert "HF_HUB_OFFLINE" not in str(err.value)


def test_push_creates_the_repository_and_branch_and_uploads_the_export(run, exported, monkeypatch):
    import huggingface_hub

    RecordingApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    url = hub.push(run, "hf://test-org/pushed", private=True, revision="v1", token="hf_test")
    assert url == "https://huggingface.co/test-org/pushed"
    kinds = [c[0] for c in RecordingApi.calls]
    assert kinds == ["init", "create_repo", "create_branch", "upload_folder"]
    assert RecordingApi.calls[1] == ("create_repo", "test-org/pushed", True, True)
    _, repo, revision, files, name = RecordingApi.calls[3]
    expected = sorted(str(p.relative_to(exported)) for p in exported.rglob("*") if p.is_file() and p.name != OWNER_MARK)
    assert (repo, revision, files, name) == ("test-org/pushed", "v1", expected, "test-org/pushed")  # not the mark

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(hub.HubError, match="not logged in to the Hugging Face Hub; run `hf auth login`"):
        hub.push(run, "test-org/pushed")


def test_bad_push_and_pull_inputs_are_one_line_errors(run, tmp_path, capsys, offline_cache):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / runs.CONFIG).write_text((run / runs.CONFIG).read_text())
    one_line_error(run_mlrs_here(capsys, "push", run, "--repo", "nonsense", "--to", tmp_path / "x"),
                   "'nonsense' is not a Hub repository id; give ORG/NAME")
    one_line_error(run_mlrs_here(capsys, "push", unfinished, "--repo", "a/b", "--to", tmp_path / "x"),
                   "has no finished model", "mlrs train --resume")
    one_line_error(run_mlrs_here(capsys, "pull", "test-org/absent"),
                   "hf://test-org/absent is not in the local Hugging Face cache", "HF_HUB_OFFLINE is set")
    assert not (tmp_path / "x").exists()
