"""The Hugging Face Hub: publish trained models with a model card, and load them back.

A published repository holds Keras' own folder layout (``config.json``,
``model.weights.h5``, ``metadata.json``: what ``keras.saving.load_model("hf://org/name")``
reads) plus a model card ``README.md`` and the card's figures under ``images/``. The card's
YAML metadata carries the Hub's standard keys (``library_name: keras``, licence, tags,
datasets, ``pipeline_tag``, and ``model-index`` with the evaluated precision, recall and F1)
and a ``keras_mlrs`` section declaring what the model expects: the nomenclature and its
class order, the input layout and band order. Loading checks that section, so a model of
another nomenclature or band layout is refused instead of silently mislabelling classes.

* :func:`export` writes the exact repository content to a folder (``mlrs push --to``).
* :func:`push` uploads it (token from the standard ``huggingface_hub`` login).
* :func:`from_pretrained` loads ``ORG/NAME``, ``hf://ORG/NAME`` or an exported folder,
  through the standard Hugging Face cache; with ``HF_HUB_OFFLINE=1`` it works from the
  cache alone.
"""

from __future__ import annotations

import json
import re
import shutil
import string
import tempfile
from importlib import resources
from pathlib import Path

from keras_mlrs.errors import MlrsError
from keras_mlrs.files import atomic_folder

#: The nomenclature every keras-mlrs model predicts, in this class order.
NOMENCLATURE = "BigEarthNet-19"
#: The key of the model card's metadata section written and checked by keras-mlrs.
CARD_KEY = "keras_mlrs"
#: Tags of every published model (the loss is added as ``loss-<name>``).
TAGS = ("keras-mlrs", "remote-sensing", "sentinel-2", "bigearthnet", "multi-label-classification")
#: Folder of the card's figures inside a repository.
IMAGES = "images"
#: Default licence of published models (the project's).
LICENSE = "apache-2.0"
_REPO_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")


class HubError(MlrsError):
    """A Hub repository, model card or upload that cannot be used as asked."""


def repo_id(text: str) -> str:
    """``ORG/NAME`` from ``ORG/NAME`` or ``hf://ORG/NAME``; anything else is refused."""
    name = str(text).removeprefix("hf://").strip("/")
    if not _REPO_ID.match(name) or ".." in name or "--" in name:
        raise HubError(f"'{text}' is not a Hub repository id; give ORG/NAME (letters, digits, '-', '_', '.'), "
                       "e.g. my-lab/ben19-kbranch-focal.")
    return name


# -- what a model expects --------------------------------------------------------------------
def declaration(model) -> dict:
    """The card's ``keras_mlrs`` section for ``model``: nomenclature, classes, input layout,
    bands and their normalisation."""
    from keras_mlrs import __version__
    from keras_mlrs.data.bands import GROUPS, STACKED_BANDS, STATS_SOURCE
    from keras_mlrs.data.nomenclature import CLASS_NAMES
    from keras_mlrs.models import input_layout

    layout = input_layout(model)
    bands = {g: list(b) for g, b in GROUPS.items()} if layout == "groups" else {"stacked": list(STACKED_BANDS)}
    return {
        "version": __version__, "nomenclature": NOMENCLATURE, "classes": list(CLASS_NAMES),
        "input_layout": layout, "bands": bands, "input_dtype": "uint16",
        "normalisation": f"inside the model (BandNormalization layer). Statistics: {STATS_SOURCE}",
    }


def check_declaration(meta, source: str) -> None:
    """Refuse a model whose card declares another nomenclature, class order or band layout
    than keras-mlrs uses. A card without a ``keras_mlrs`` section is accepted (the model's
    own input and output shapes are checked when it is used)."""
    from keras_mlrs.data.bands import GROUPS, STACKED_BANDS
    from keras_mlrs.data.nomenclature import CLASS_NAMES

    if not meta:
        return
    if not isinstance(meta, dict):
        raise HubError(f"{source}: the model card's '{CARD_KEY}' metadata is not a mapping; the card is damaged.")
    nomenclature = meta.get("nomenclature")
    if nomenclature != NOMENCLATURE:
        raise HubError(f"{source} declares nomenclature '{nomenclature}', but keras-mlrs models predict "
                       f"{NOMENCLATURE}; use a model trained on {NOMENCLATURE}.")
    classes = meta.get("classes")
    if classes is not None and list(classes) != list(CLASS_NAMES):
        where = next((i for i, (a, b) in enumerate(zip(classes, CLASS_NAMES)) if a != b), min(len(classes), 19))
        raise HubError(f"{source} declares its {NOMENCLATURE} classes in another order or set (first difference at "
                       f"index {where}); keras-mlrs uses the paper's order (Urban fabric = 0 ... Marine waters = 18).")
    bands = meta.get("bands")
    expected = ({g: list(b) for g, b in GROUPS.items()}, {"stacked": list(STACKED_BANDS)})
    if bands is not None and bands not in expected:
        raise HubError(f"{source} declares the band layout {bands}, which is neither keras-mlrs' band groups "
                       f"{expected[0]} nor its stacked order {expected[1]['stacked']}; it cannot be fed correctly.")


def read_card(folder):
    """The :class:`huggingface_hub.ModelCard` of an exported or downloaded folder (None when
    it has no ``README.md``)."""
    from huggingface_hub import ModelCard

    path = Path(folder) / "README.md"
    if not path.is_file():
        return None
    try:
        return ModelCard.load(path)
    except Exception as err:  # noqa: BLE001 - any reason the card's YAML does not parse
        raise HubError(f"the model card {path} does not parse ({str(err).splitlines()[0]}); the repository is damaged.") from None


# -- loading ---------------------------------------------------------------------------------
def is_exported_folder(path) -> bool:
    """Whether ``path`` is a folder in Keras' Hub layout (an export, or a downloaded snapshot)."""
    path = Path(path)
    return path.is_dir() and (path / "config.json").is_file()


def download(source: str, revision: str | None = None) -> Path:
    """The local snapshot of Hub repository ``source`` (``ORG/NAME`` or ``hf://ORG/NAME``)
    at ``revision``, from the standard Hugging Face cache, downloaded when missing and
    allowed (not with ``HF_HUB_OFFLINE=1``)."""
    import huggingface_hub

    from keras_mlrs import __version__

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
            raise HubError(f"hf://{name} has no revision '{revision}'; leave --revision out for the main branch.") from None
        raise HubError(f"hf://{name}{at} is neither in the local Hugging Face cache nor reachable on the Hub ({kind}); "
                       "check the name, or connect once without HF_HUB_OFFLINE to download it.") from None
    return Path(folder)


def resolve(source, revision: str | None = None) -> Path:
    """The local folder behind ``source``: an exported folder as it is, else the snapshot
    of a Hub repository (see :func:`download`); its card's declaration is checked."""
    text = str(source)
    if not text.startswith("hf://") and is_exported_folder(text):
        folder = Path(text)
    elif not text.startswith("hf://") and Path(text).exists():
        raise HubError(f"{text} is not an exported model folder (no config.json); give a folder written by "
                       "`mlrs push --to`, a run directory, a .keras file or hf://ORG/NAME.")
    else:
        folder = download(text, revision)
    card = read_card(folder)
    check_declaration(card.data.to_dict().get(CARD_KEY) if card else None, text)
    return folder


def from_pretrained(source: str, revision: str | None = None, compile: bool = True):
    """A published keras-mlrs model: ``"ORG/NAME"``, ``"hf://ORG/NAME"`` or a folder written
    by :func:`export`, loaded in Keras' safe mode (compiled, so its decision rule travels).

    Uses the standard Hugging Face cache (``HF_HUB_CACHE``), so with ``HF_HUB_OFFLINE=1`` a
    model downloaded once loads without a network. Raises :class:`HubError` for a repository
    that is not cached offline, does not exist, or whose card declares another nomenclature
    or band layout."""
    from keras_mlrs import runs

    text = str(source)
    if not text.startswith("hf://") and not Path(text).exists():
        text = f"hf://{repo_id(text)}"
    return runs.load_model(text, compile=compile, revision=revision)


# -- publishing ------------------------------------------------------------------------------
def _publishable(model):
    """``model`` recompiled with a fresh optimizer: the repository carries the loss (and so
    the decision rule) and metrics, not the optimizer's training state."""
    import keras

    from keras_mlrs import metrics

    optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(model.optimizer))
    model.compile(optimizer=optimizer, loss=model.loss, metrics=metrics.standard(model.loss.decision))
    return model


def export(run_dir, folder, repo: str, split: str = "test", license: str = LICENSE, recipe: dict | None = None,
           example_patch=None, say=lambda text: None) -> Path:
    """Write the Hub repository of a finished run to ``folder``: the model in Keras' Hub
    layout, the model card and its figures (learning curve, per-class F1, an LRP heatmap).

    Args:
        run_dir: a finished run directory (``mlrs train``).
        folder: the output folder; built beside it and renamed into place when complete.
            An existing folder is replaced only when it is itself an export.
        repo: the repository id ``ORG/NAME`` the card names.
        split: the split whose evaluation fills ``model-index`` (computed when missing).
        recipe: the zoo recipe the run was built from (named in the card), if any.
        example_patch: the patch of the card's LRP figure (default: a bundled sample patch).
    """
    import keras

    from keras_mlrs import evaluation, plots, runs
    from keras_mlrs.training import TrainConfig

    run_dir, repo, folder = runs.finished_run(run_dir), repo_id(repo), Path(folder)
    if folder.exists() and not (folder.is_dir() and (not any(folder.iterdir()) or is_exported_folder(folder))):
        raise HubError(f"{folder} exists and is not an exported model folder; choose another --to folder.")
    say(f"evaluating {run_dir.name} on the {split} split")
    report = evaluation.run_report(run_dir, split)
    config = TrainConfig.from_toml(run_dir / runs.CONFIG)
    state = runs.read_state(run_dir)
    model = _publishable(runs.load_model(run_dir))
    with atomic_folder(folder) as staging:
        keras.saving.save_model(model, staging / "model", zipped=False)
        for item in (staging / "model").iterdir():
            if item.is_dir() and not any(item.iterdir()):
                item.rmdir()  # the Hub keeps files, not empty folders
            else:
                item.rename(staging / item.name)
        (staging / "model").rmdir()
        images = staging / IMAGES
        plots.learning_curve(state["history"], images / "learning_curve.png", best_epoch=state["best"]["epoch"],
                             title=f"{repo}: validation F1 per epoch")
        plots.per_class_f1({config.loss: report}, images / "per_class_f1.png", title=f"F1 per class ({split} split)")
        say(f"explaining an example patch with LRP for {repo}")
        lrp = _lrp_example(model, images / "lrp_example.png", example_patch, label=f"{config.loss} loss")
        (staging / "training").mkdir()
        shutil.copyfile(run_dir / runs.CONFIG, staging / "training" / "config.toml")
        shutil.copyfile(run_dir / runs.HISTORY, staging / "training" / "history.csv")
        (staging / "training" / "evaluation.json").write_text(json.dumps(report, indent=1))
        card = model_card(model, repo, config, state, report, lrp, license=license, recipe=recipe)
        (staging / "README.md").write_text(card)
    return folder


def _lrp_example(model, path, patch=None, label: str | None = None) -> dict:
    """An LRP figure of one real patch (its true classes, at most four) for the card."""
    from keras_mlrs.data import read_patch
    from keras_mlrs.explain import heatmaps, render

    if patch is None:
        patch = heatmaps.example_patch()
    elif not hasattr(patch, "groups"):
        patch = read_patch(patch)
    classes = heatmaps.true_classes(patch)
    view = heatmaps.explain_patch(model, patch, classes, preset="lrp.epsilon")
    view.model = label or view.model
    render.heatmap_figure([view], path, title=f"{patch.name}: lrp.epsilon")
    return {"patch": patch.name, "classes": view.class_names, "preset": "lrp.epsilon"}


def _eval_results(report: dict, split: str) -> list:
    from huggingface_hub import EvalResult

    results = []
    for average in ("micro", "macro", "samples"):
        for score in ("precision", "recall", "f1"):
            results.append(EvalResult(
                task_type="image-classification", task_name="Multi-label image classification",
                dataset_type="bigearthnet", dataset_name="BigEarthNet-19 (Sentinel-2)", dataset_split=split,
                metric_type=score, metric_value=round(float(report[average][score]), 6),
                metric_name=f"{'F1' if score == 'f1' else score.capitalize()} ({average})", metric_config=average,
            ))
    return results


def model_card(model, repo: str, config, state: dict, report: dict, lrp: dict, license: str = LICENSE,
               recipe: dict | None = None) -> str:
    """The model card (``README.md``): YAML metadata, then the text of ``zoo/model_card.md``."""
    from huggingface_hub import ModelCardData

    from keras_mlrs import decision, evaluation, losses
    from keras_mlrs.data.nomenclature import CLASS_NAMES

    spec = losses.spec(config.loss)
    split = report.get("split", "test")
    meta = declaration(model)
    meta.update({"loss": config.loss, "loss_params": {**spec.hyperparameters, **config.loss_params},
                 "decision": report["decision"], "recipe": (recipe or {}).get("name")})
    meta = {k: v for k, v in meta.items() if v is not None}
    data = ModelCardData(
        library_name="keras", license=license, tags=[*TAGS, f"loss-{config.loss.replace('_', '-')}"],
        datasets=["bigearthnet"], pipeline_tag="image-classification", model_name=repo,
        eval_results=_eval_results(report, split), metrics=["precision", "recall", "f1"], **{CARD_KEY: meta},
    )
    rule = decision.get(report["decision"]["name"], **{k: v for k, v in report["decision"].items() if k != "name"})
    params = meta["loss_params"]
    fields = {
        "repo": repo,
        "loss": config.loss,
        "loss_description": spec.description,
        "loss_params": ", ".join(f"`{k}={v!r}`" for k, v in params.items()) or "none",
        "decision": f"`{rule.name}`: {rule.describe()}",
        "recipe": f" It is the zoo recipe `{recipe['name']}`: {recipe.get('description', '')}" if recipe else "",
        "bands": _bands_table(meta),
        "layout": meta["input_layout"],
        "normalisation": meta["normalisation"],
        "classes": "\n".join(f"{i}. {name}" for i, name in enumerate(CLASS_NAMES)),
        "model": config.model,
        "model_params": ", ".join(f"`{k}={v!r}`" for k, v in config.model_params.items()) or "defaults",
        "parameters": f"{model.count_params():,}",
        "training": _training_table(config, state),
        "split": split,
        "patches": f"{report['patches']:,}",
        "overall": evaluation.overall_markdown(report),
        "per_class": evaluation.per_class_markdown(report),
        "lrp_patch": lrp["patch"],
        "lrp_classes": ", ".join(lrp["classes"]),
        "lrp_preset": lrp["preset"],
        "images": IMAGES,
    }
    body = string.Template(template_text()).substitute(fields)
    return f"---\n{data.to_yaml()}\n---\n\n{body}"


def template_text() -> str:
    """The model-card template shared by every published model (``zoo/model_card.md``)."""
    return resources.files("zoo").joinpath("model_card.md").read_text()


def _bands_table(meta) -> str:
    from keras_mlrs.data.bands import GROUP_SIZES

    rows = ["| input | bands, in order | size |", "| --- | --- | --- |"]
    for group, bands in meta["bands"].items():
        size = GROUP_SIZES.get(group, GROUP_SIZES["b10m"])
        rows.append(f"| `{group}` | {', '.join(bands)} | {size} × {size} × {len(bands)} uint16 |")
    return "\n".join(rows)


def _training_table(config, state) -> str:
    from dataclasses import asdict

    values = {k: v for k, v in asdict(config).items() if k not in ("data", "loss_params")}
    values["data"] = Path(config.data).name if config.data else "the bundled 6-patch sample"
    values["epochs trained"] = state["epoch"]
    values["best epoch (validation sample-F1)"] = f"{state['best']['epoch']} ({state['best']['value']:.4f})"
    rows = ["| option | value |", "| --- | --- |"]
    rows += [f"| {k} | `{v}` |" for k, v in values.items()]
    return "\n".join(rows)


def push(run_dir, repo: str, private: bool = False, revision: str | None = None, token: str | None = None,
         split: str = "test", license: str = LICENSE, recipe: dict | None = None, say=lambda text: None) -> str:
    """Publish a finished run to the Hub repository ``repo`` (created when missing; the
    branch ``revision`` too). The token is ``token`` or the standard ``huggingface_hub``
    login (``hf auth login`` or ``HF_TOKEN``). Returns the repository's URL."""
    import huggingface_hub

    from keras_mlrs import __version__, runs

    repo = repo_id(repo)
    runs.finished_run(run_dir)
    if token is None and huggingface_hub.get_token() is None:
        raise HubError("not logged in to the Hugging Face Hub; run `hf auth login` (or set HF_TOKEN), "
                       "or write the repository to a folder with --to DIR.")
    with tempfile.TemporaryDirectory(prefix="mlrs-push-") as tmp:
        folder = export(run_dir, Path(tmp) / "repo", repo, split=split, license=license, recipe=recipe, say=say)
        api = huggingface_hub.HfApi(token=token, library_name="keras-mlrs", library_version=__version__)
        say(f"uploading to hf://{repo}" + (f" (revision {revision})" if revision else ""))
        try:
            url = api.create_repo(repo, private=private, exist_ok=True)
            if revision:
                api.create_branch(repo, branch=revision, exist_ok=True)
            api.upload_folder(repo_id=repo, folder_path=folder, revision=revision,
                              commit_message=f"keras-mlrs {__version__}: publish {Path(run_dir).name}")
        except Exception as err:  # noqa: BLE001 - any Hub or network failure, in one line
            raise HubError(f"could not publish to hf://{repo}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                           " (check your login with `hf auth whoami` and the network).") from None
    return str(url)


__all__ = ["CARD_KEY", "NOMENCLATURE", "HubError", "check_declaration", "declaration", "download", "export",
           "from_pretrained", "is_exported_folder", "model_card", "push", "read_card", "repo_id", "resolve"]
