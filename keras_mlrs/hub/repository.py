"""The Hugging Face Hub: publish trained models with a model card, and load them back.

A published repository holds Keras' own folder layout (``config.json``,
``model.weights.h5``, ``metadata.json``: what ``keras.saving.load_model("hf://org/name")``
reads) plus a model card ``README.md`` (:mod:`~keras_mlrs.hub.card`) and the card's figures
under ``images/``, and ``calibration.json`` when the run was calibrated
(:func:`keras_mlrs.runs.calibrate`; applied by :func:`load_model_and_rule`).

* :func:`export` writes the exact repository content to a folder.
* :func:`push` uploads it (token from the standard ``huggingface_hub`` login).
* :func:`resolve` turns ``hf://ORG/NAME`` (or an exported folder) into a local folder, its
  card checked; :func:`from_pretrained` loads the model from it. Both go through the
  standard Hugging Face cache, so with ``HF_HUB_OFFLINE=1`` they work from the cache alone.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import huggingface_hub
import keras

from keras_mlrs.core import metrics
from keras_mlrs.data import read_patch
from keras_mlrs.errors import HubError, choose
from keras_mlrs.explain import heatmaps, render
from keras_mlrs.files import OWNER_MARK, atomic_folder, check_replaceable, save_model
from keras_mlrs.hub.card import (
    CARD_KEY,
    IMAGES,
    LICENSE,
    check_declaration,
    check_files,
    check_model,
    file_hashes,
    model_card,
    read_card,
)
from keras_mlrs.runs import plots
from keras_mlrs.runs.directory import CALIBRATION, CONFIG, HISTORY, RunDirectory
from keras_mlrs.runs.directory import load_model as load_local_model
from keras_mlrs.runs.evaluation import checkpoint_title, run_report, training_support
from keras_mlrs.runs.thresholds import (
    THRESHOLDS,
    calibrated_rule,
    calibration_file,
    decision_rule,
    read_calibration,
)
from keras_mlrs.version import __version__

_REPO_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")


def repo_id(text: str) -> str:
    """``ORG/NAME`` from ``ORG/NAME`` or ``hf://ORG/NAME``; anything else is refused."""
    name = str(text).removeprefix("hf://").strip("/")
    if not _REPO_ID.match(name) or ".." in name or "--" in name:
        raise HubError(f"'{text}' is not a Hub repository id; give ORG/NAME (letters, digits, '-', '_', '.'), "
                       "e.g. my-lab/ben19-kbranch-focal.")
    return name


# -- loading ---------------------------------------------------------------------------------
#: What :func:`export` writes, as its folders' owner mark names it.
EXPORT_KIND = "exported model (Hugging Face Hub repository)"


def is_exported_folder(path) -> bool:
    """Whether ``path`` is a folder in Keras' Hub layout (an export, or a downloaded snapshot)."""
    path = Path(path)
    return path.is_dir() and (path / "config.json").is_file()


def download(source: str, revision: str | None = None) -> Path:
    """The local snapshot of Hub repository ``source`` (``ORG/NAME`` or ``hf://ORG/NAME``)
    at ``revision``, from the standard Hugging Face cache, downloaded when missing and
    allowed (not with ``HF_HUB_OFFLINE=1``)."""
    name = repo_id(source)
    try:
        folder = huggingface_hub.snapshot_download(name, revision=revision, library_name="keras-mlrs",
                                                   library_version=__version__)
    except Exception as err:  # noqa: BLE001 - map huggingface_hub's errors to one line
        at = f" at revision '{revision}'" if revision else ""
        kind = type(err).__name__
        if kind in ("RepositoryNotFoundError", "GatedRepoError"):
            raise HubError(f"hf://{name} does not exist on the Hub or is private{at}; check the name, or log in "
                           "with `hf auth login` for a private repository.") from None
        if kind == "RevisionNotFoundError":
            raise HubError(f"hf://{name} has no revision '{revision}'; leave `revision` out for the main branch.") from None
        if huggingface_hub.constants.HF_HUB_OFFLINE:
            raise HubError(f"hf://{name}{at} is not in the local Hugging Face cache ({huggingface_hub.constants.HF_HUB_CACHE}) "
                           "and HF_HUB_OFFLINE is set, so it was not downloaded; unset HF_HUB_OFFLINE to download it "
                           "once.") from None
        raise HubError(f"hf://{name}{at} is not in the local Hugging Face cache and the Hub could not be reached "
                       f"({kind}); check the network (or a proxy), then try again.") from None
    return Path(folder)


def resolve(source, revision: str | None = None) -> Path:
    """The local path behind a model ``source``: ``hf://ORG/NAME`` is downloaded (see
    :func:`download`), an exported folder is taken as it is, and either's card declaration
    is checked; other local paths (run directories, ``.keras`` files) come back unchanged,
    for :func:`keras_mlrs.runs.load_model`."""
    text = str(source)
    if text.startswith("hf://"):
        folder = download(text, revision)
    elif is_exported_folder(text):
        folder = Path(text)
    else:
        return Path(text)
    card = read_card(folder)
    meta = card.data.to_dict().get(CARD_KEY) if card else None
    check_declaration(meta, text)
    check_files(meta, folder, text)
    return folder


def load_model(source, revision: str | None = None, compile: bool = True, checkpoint: str | None = None):
    """A model from any source a command takes: a run directory (its ``checkpoint``, default
    the final epoch's), a ``.keras`` file, an exported folder or ``hf://ORG/NAME``
    (:func:`resolve`, then :func:`keras_mlrs.runs.load_model`)."""
    path = resolve(source, revision)
    return _checked(load_local_model(path, compile=compile, checkpoint=checkpoint), path, source)


def _checked(model, path: Path, source):
    """``model``, loaded from ``path`` for ``source``, after :func:`check_model` when it came
    from the Hub or an export (whose card spoke for it)."""
    if path != Path(str(source)) or is_exported_folder(path):
        check_model(model, str(source))
    return model


def load_model_and_rule(source, thresholds: str = "fixed", revision: str | None = None,
                        checkpoint: str | None = None):
    """A model from any source a command takes (as :func:`load_model`) and the decision rule
    to apply to its logits: ``(model, rule)``. ``thresholds="fixed"``: the rule of its loss;
    ``"calibrated"``: the per-class thresholds it carries (a run's ``calibration.json``,
    written by :func:`keras_mlrs.runs.calibrate`, or an export's or a Hub repository's), a
    one-line error when it has none or they were fitted on other weights."""
    choose("thresholds", thresholds, THRESHOLDS)
    path = resolve(source, revision)
    model = _checked(load_local_model(path, compile=True, checkpoint=checkpoint), path, source)
    return model, decision_rule(path, model, thresholds, name=str(source))


def from_pretrained(source: str, revision: str | None = None, compile: bool = True):
    """A published keras-mlrs model: ``"ORG/NAME"``, ``"hf://ORG/NAME"`` or a folder written
    by :func:`export`, loaded in Keras' safe mode (compiled, so its decision rule travels).

    Uses the standard Hugging Face cache (``HF_HUB_CACHE``), so with ``HF_HUB_OFFLINE=1`` a
    model downloaded once loads without a network. Raises :class:`HubError` for a repository
    that is not cached offline, does not exist, or whose card declares another nomenclature
    or band layout."""
    text = str(source)
    if not text.startswith("hf://") and not Path(text).exists():
        text = f"hf://{repo_id(text)}"
    return load_model(text, revision=revision, compile=compile)


# -- what is on the Hub ------------------------------------------------------------------------
#: What :func:`hub_status` says of a repository.
PUBLISHED, NOT_PUBLISHED, NOT_CHECKED = "published", "not published", "not checked: offline"


def hub_status(repos, timeout: float = 5.0) -> tuple[dict, str]:
    """Whether each Hub repository of ``repos`` (``ORG/NAME``) exists, asked of the Hub:
    ``({repo: PUBLISHED | NOT_PUBLISHED | NOT_CHECKED}, why)``, where ``why`` says why some
    were not checked (``""`` when all were).

    Nothing is asked with ``HF_HUB_OFFLINE=1``. The repositories are asked at once, each
    request limited to ``timeout`` seconds and the whole to twice that: a Hub that cannot
    be reached (no network, a proxy, a timeout) leaves them NOT_CHECKED, never waiting
    longer. A private or gated repository counts as published only when it is
    visible with the standard login."""
    repos = [repo_id(r) for r in repos]
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return dict.fromkeys(repos, NOT_CHECKED), "HF_HUB_OFFLINE is set"
    api = huggingface_hub.HfApi(library_name="keras-mlrs", library_version=__version__)
    answers: dict = {}

    def ask(repo):
        try:
            api.model_info(repo, timeout=timeout)
            answers[repo] = (PUBLISHED, "")
        except Exception as err:  # noqa: BLE001 - each of huggingface_hub's answers (by name: across its versions)
            kind = type(err).__name__
            if kind == "GatedRepoError":  # exists; its files need an accepted licence
                answers[repo] = (PUBLISHED, "")
            elif kind in ("RepositoryNotFoundError", "DisabledRepoError"):
                answers[repo] = (NOT_PUBLISHED, "")
            else:
                answers[repo] = (NOT_CHECKED, f"the Hub could not be reached: {kind}")

    threads = [threading.Thread(target=ask, args=(repo,), daemon=True) for repo in dict.fromkeys(repos)]
    for thread in threads:  # daemon threads: one the network holds up never delays the exit
        thread.start()
    deadline = time.monotonic() + 2 * timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    done = dict(answers)  # a late answer does not change the result
    states = {repo: done.get(repo, (NOT_CHECKED, ""))[0] for repo in repos}
    why = next((w for _, w in done.values() if w), "")
    if not why and any(repo not in done for repo in repos):
        why = f"the Hub did not answer within {2 * timeout:g} s"
    return states, why


# -- publishing ------------------------------------------------------------------------------
def _publishable(model):
    """``model`` recompiled with a fresh optimizer: the repository carries the loss (and so
    the decision rule) and metrics, not the optimizer's training state."""
    optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(model.optimizer))
    model.compile(optimizer=optimizer, loss=model.loss, metrics=metrics.standard(model.loss.decision))
    return model


def export(run_dir, folder, repo: str, split: str = "test", license: str = LICENSE, recipe: dict | None = None,
           example_patch=None, say=lambda text: None) -> Path:
    """Write the Hub repository of a finished run to ``folder``: the model in Keras' Hub
    layout, the model card and its figures (learning curve, per-class F1, an LRP heatmap),
    and the run's calibrated thresholds when it has them (``calibration.json``, named in the
    card; :func:`keras_mlrs.runs.calibrate`).

    Args:
        run_dir: a finished run directory (``mlrs train``).
        folder: the output folder; built beside it and renamed into place when complete.
            An existing folder is replaced only when it is an export keras-mlrs wrote and
            holds nothing else (:func:`keras_mlrs.files.check_replaceable`).
        repo: the repository id ``ORG/NAME`` the card names.
        split: the split whose evaluation fills ``model-index`` (computed when missing).
        recipe: the zoo recipe the run was built from (named in the card), if any.
        example_patch: the patch of the card's LRP figure (default: a bundled sample patch).
    """
    run, repo, folder = RunDirectory(run_dir).finished(), repo_id(repo), Path(folder)
    check_replaceable(folder, EXPORT_KIND)
    say(f"evaluating {run.path.name} on the {split} split")
    model = load_local_model(run.path)
    calibration = None
    if calibration_file(run.path).is_file():  # thresholds of another checkpoint are refused before anything is written
        calibrated_rule(run.path, model)
        calibration = read_calibration(run.path)
    report = run_report(run.path, split, model=model)
    config, state = run.config(), run.state()
    model = _publishable(model)
    with atomic_folder(folder, EXPORT_KIND) as staging:
        save_model(model, staging / "model", zipped=False)
        for item in (staging / "model").iterdir():
            if item.is_dir() and not any(item.iterdir()):
                item.rmdir()  # the Hub keeps files, not empty folders
            else:
                item.rename(staging / item.name)
        (staging / "model").rmdir()
        images = staging / IMAGES
        plots.learning_curve(state["history"], images / "learning_curve.png", best_epoch=state["best"]["epoch"], run=repo)
        plots.per_class_f1({config.loss: report}, images / "per_class_f1.png", train_support=training_support(run.path),
                           title=f"F1 per class: {repo} ({checkpoint_title(report.get('checkpoint'))}) on the {split} split")
        say(f"explaining an example patch with LRP for {repo}")
        lrp = _lrp_example(model, images / "lrp_example.png", example_patch, label=f"{config.loss} loss")
        (staging / "training").mkdir()
        shutil.copyfile(run / CONFIG, staging / "training" / "config.toml")
        shutil.copyfile(run / HISTORY, staging / "training" / "history.csv")
        (staging / "training" / "evaluation.json").write_text(json.dumps(report, indent=1))
        if calibration is not None:
            shutil.copyfile(calibration_file(run.path), staging / CALIBRATION)
        card = model_card(model, repo, config, state, report, lrp, license=license, recipe=recipe,
                          files=file_hashes(staging), calibration=calibration)
        (staging / "README.md").write_text(card)
    return folder


def _lrp_example(model, path, patch=None, label: str | None = None) -> dict:
    """An LRP figure of one real patch (its true classes, at most four) for the card."""
    if patch is None:
        patch = heatmaps.example_patch()
    elif not hasattr(patch, "groups"):
        patch = read_patch(patch)
    classes = heatmaps.true_classes(patch)
    view = heatmaps.explain_patch(model, patch, classes, preset="lrp.epsilon")
    view.model = label or view.model
    render.heatmap_figure([view], path, title=f"LRP (lrp.epsilon) of patch {patch.name} by {view.model} (final epoch)")
    return {"patch": patch.name, "classes": view.class_names, "preset": "lrp.epsilon", "bands": view.bands_label}


def push(run_dir, repo: str, private: bool = False, revision: str | None = None, token: str | None = None,
         split: str = "test", license: str = LICENSE, recipe: dict | None = None, say=lambda text: None) -> str:
    """Publish a finished run to the Hub repository ``repo`` (created when missing; the
    branch ``revision`` too). The token is ``token`` or the standard ``huggingface_hub``
    login (``hf auth login`` or ``HF_TOKEN``). Returns the repository's URL."""
    repo = repo_id(repo)
    RunDirectory(run_dir).finished()
    if token is None and huggingface_hub.get_token() is None:
        raise HubError("not logged in to the Hugging Face Hub; run `hf auth login` (or set HF_TOKEN), "
                       "or write the repository to a folder with `keras_mlrs.hub.export()`.")
    with tempfile.TemporaryDirectory(prefix="mlrs-push-") as tmp:
        folder = export(run_dir, Path(tmp) / "repo", repo, split=split, license=license, recipe=recipe, say=say)
        api = huggingface_hub.HfApi(token=token, library_name="keras-mlrs", library_version=__version__)
        say(f"uploading to hf://{repo}" + (f" (revision {revision})" if revision else ""))
        try:
            url = api.create_repo(repo, private=private, exist_ok=True)
            if revision:
                api.create_branch(repo, branch=revision, exist_ok=True)
            api.upload_folder(repo_id=repo, folder_path=folder, revision=revision, ignore_patterns=[OWNER_MARK],
                              commit_message=f"keras-mlrs {__version__}: publish {Path(run_dir).name}")
        except Exception as err:  # noqa: BLE001 - any Hub or network failure, in one line
            raise HubError(f"could not publish to hf://{repo}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                           " (check your login with `hf auth whoami` and the network).") from None
    return str(url)


__all__ = ["NOT_CHECKED", "NOT_PUBLISHED", "PUBLISHED", "download", "export", "from_pretrained", "hub_status",
           "is_exported_folder", "load_model", "load_model_and_rule", "push", "repo_id", "resolve"]
